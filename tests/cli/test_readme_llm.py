"""The README's "LLM serving" section: every command it shows runs as written and prints the
lines shown under it (a ``...`` stands for lines left out)."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
SECTION = README.split("## LLM serving", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```\n\$ (tracelens .*?)\n(.*?)```", SECTION, flags=re.S)


def test_the_section_shows_commands() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("command", "shown"), BLOCKS, ids=[c[:60] for c, _ in BLOCKS])
def test_each_command_runs_and_prints_what_is_shown(
    command: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    line, _, jq = command.partition(" | jq ")
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    # check and diff show a failing gate on purpose: exit 1
    expected_code = 1 if line.split()[1] in ("check", "diff") else 0
    assert result.exit_code == expected_code, result.stderr
    lines = [s for s in shown.splitlines() if s.strip() and s.strip() != "..."]
    if jq:
        keys = re.search(r"\{([^}]*)\}", jq)
        assert keys is not None
        wanted = [k.strip() for k in keys.group(1).split(",")]
        rows = json.loads(result.stdout)["rows"]
        printed = [json.dumps({k: r[k] for k in wanted}, separators=(",", ":")) for r in rows]
        assert printed == lines
    else:
        out = [s.rstrip() for s in result.stdout.splitlines()]
        for item in lines:
            assert item.rstrip() in out, item
