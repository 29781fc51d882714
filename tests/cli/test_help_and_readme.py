"""Every command has help, appears in the README, and the README's commands stay true."""

from __future__ import annotations

import re
import shlex

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


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_reads_plainly_and_ends_with_examples(name: str) -> None:
    from typer.testing import CliRunner

    text = CliRunner().invoke(app, [name, "--help"], terminal_width=100).stdout
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: tracelens {name} [OPTIONS]")
    assert "{" not in usage
    assert usage == usage.replace("paths", "PATHS")
    examples = text.rstrip().split("Examples:", 1)[1].strip().splitlines()
    assert 2 <= len(examples) <= 3
    assert examples[0].strip().split()[:2] == ["tracelens", name]
    assert all(line.strip().startswith("tracelens ") for line in examples)


def _runnable_examples() -> list[tuple[str, str]]:
    from ml_tracelens.cli.help import EXAMPLES

    found = []
    for name, text in EXAMPLES.items():
        for line in text.splitlines():
            command = line.strip()
            if not command.startswith("tracelens "):
                continue
            words = shlex.split(command.split("#", 1)[0])
            paths = [
                w
                for w in words[2:]
                if "/" in w or w.endswith((".jsonl", ".json", ".parquet", ".gz"))
            ]
            if (
                "|" not in command
                and ">" not in command
                and all(p.startswith("sample_data/") for p in paths)
            ):
                found.append((name, command))
    return found


@pytest.mark.parametrize(("name", "command"), _runnable_examples())
def test_help_examples_on_the_sample_data_run(
    name: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    monkeypatch.chdir(REPO)
    words = shlex.split(command.split("#", 1)[0])[1:]
    result = CliRunner().invoke(app, words)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()


#: The commands that read inputs and analyse them (`convert` writes, `formats` and `schema` read
#: nothing).
ANALYSIS_COMMANDS = sorted(set(COMMANDS) - {"convert", "formats", "schema"})
#: "Options every analysis command takes" (README) that each of them accepts.
EVERY_ANALYSIS_OPTION = (
    "--format",
    "--output",
    "--strict",
    "--field",
    "--log-time",
    "--no-cache",
    "--no-derived-stages",
)


#: `report` writes one format only, HTML.
NOT_TAKEN = {"report": {"--format"}}


@pytest.mark.parametrize("name", ANALYSIS_COMMANDS)
def test_every_analysis_command_takes_the_shared_options(name: str) -> None:
    taken = {
        option
        for param in COMMANDS[name].params
        for option in (*param.opts, *getattr(param, "secondary_opts", ()))
    }
    expected = set(EVERY_ANALYSIS_OPTION) - NOT_TAKEN.get(name, set())
    assert expected <= taken, expected - taken
