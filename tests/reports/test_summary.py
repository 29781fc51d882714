"""`tracelens summary`'s facts as a reader sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.conftest import SAMPLE_DATA
from tests.render._terminal import CONTROL_SEQUENCE, run_on_terminal


def services_fact(path: Path) -> str:
    result = CliRunner().invoke(app, ["summary", str(path), "--no-cache", "-q"])
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("services "))
    return line.split("|", 1)[1].strip()


def stage_line(request: str, stage: str, end: str, **extra: str) -> str:
    line = {"timestamp": end, "request_id": request, "stage": stage, "duration_ms": 1.5}
    return json.dumps(line | extra)


@pytest.mark.parametrize(
    ("services", "shown"),
    [
        ((), "0"),
        (("gateway",), "1: gateway"),
        (("model-server", "gateway", "gateway"), "2: gateway, model-server"),
    ],
)
def test_services_are_counted_and_named(
    services: tuple[str, ...], shown: str, tmp_path: Path
) -> None:
    lines = [stage_line("r-1", "infer", "2026-03-02T09:00:00.010Z")]
    lines += [
        stage_line(f"r-{index}", "infer", "2026-03-02T09:00:00.020Z", service=service)
        for index, service in enumerate(services, start=2)
    ]
    path = tmp_path / "app.log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert services_fact(path) == shown


@pytest.mark.parametrize("columns", [60, 80])
def test_fact_names_wrap_whole_on_a_narrow_terminal(columns: int) -> None:
    sample = str(SAMPLE_DATA / "app.log.jsonl")
    piped = CliRunner().invoke(app, ["summary", sample, "--no-cache", "-q"])
    facts = piped.stdout.split("\nSummary", 1)[1].splitlines()[3:]
    names = [line.split("|", 1)[0].strip() for line in facts if "|" in line]
    assert "requests under a derived root (no log line covers them)" in names
    _, screen, _ = run_on_terminal(["summary", sample, "--no-cache", "-q"], columns=columns)
    lines = CONTROL_SEQUENCE.sub("", screen.decode()).replace("\r\n", "\n").split("\n")
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["what", "value"])
    value_column = lines[header].index("value")
    rows = [line[:value_column] for line in lines[header + 2 :] if line.strip()]
    # The name column read top to bottom is every name whole, in order: wrapped, not shortened.
    assert " ".join(" ".join(rows).split()) == " ".join(" ".join(names).split())
