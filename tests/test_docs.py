"""Every command has help, appears in the README, and the README's commands stay true."""

from __future__ import annotations

import re

import pytest
import typer

from ml_tracelens.cli import app
from tests.conftest import REPO

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_and_is_documented(name: str) -> None:
    assert COMMANDS[name].help, f"{name} has no help"
    assert f"tracelens {name}" in README, f"{name} is not in the README"


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    run_command, test_command = commands
    assert "tracelens latency sample_data/" in run_command
    assert test_command in (REPO / ".ci" / "run").read_text()
