"""Every command's output, byte for byte, over the shipped samples and the shared fixtures.

A refactoring must not change what users see: each case below runs one command line and
compares its exit code, stdout and stderr with the file recorded under ``tests/golden/``. When
an output changes on purpose, record it again and review the diff like code:

    TRACELENS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/acceptance/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.conftest import GOLDEN, REPO, SHARED_FIXTURES

UPDATE = os.environ.get("TRACELENS_UPDATE_GOLDEN") == "1"

LOGS = "sample_data/app.log.jsonl"
STAGE_LOGS = "sample_data/stages.log.jsonl"
OTLP = "sample_data/traces.otlp.jsonl"
JAEGER = "sample_data/traces.jaeger.json"
ZIPKIN = "sample_data/traces.zipkin.json"
DEMO = "../shared/fixtures/otlp/otel-demo-capture.otlp.jsonl"
ZIPKIN_FIXTURES = "../shared/fixtures/zipkin"
LLM = "sample_data/llm.otlp.jsonl"
LLM_LOGS = "sample_data/llm.log.jsonl"
#: A request of the samples with a failed stage, by its correlation id (logs and spans have it).
FAILED_REQUEST = "req-eaf584"
#: Stands for a file the command writes; its content is recorded after the streams.
JUNIT_FILE = "{junit}"

REPORTS = ("summary", "latency", "errors", "bottlenecks", "traces", "models")
FORMATS = ("table", "json", "csv", "markdown")


def _cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    # Every report in every format, from logs and from spans of the same requests.
    for source, path in (("logs", LOGS), ("otlp", OTLP)):
        for report in REPORTS:
            for fmt in FORMATS:
                cases.append((f"{report}-{source}.{fmt}", [report, path, "--format", fmt]))
    # Every reader, through the reports that show most of what it read.
    for source, path in (
        ("stage-logs", STAGE_LOGS),
        ("jaeger", JAEGER),
        ("zipkin", ZIPKIN),
        ("demo", DEMO),
        ("zipkin-fixtures", ZIPKIN_FIXTURES),
    ):
        for report in ("summary", "latency", "errors", "bottlenecks"):
            cases.append((f"{report}-{source}.table", [report, path]))
            cases.append((f"{report}-{source}.json", [report, path, "--format", "json"]))
    # Options that change the shape of a report.
    cases += [
        ("latency-by-service.table", ["latency", OTLP, "--by", "service"]),
        ("latency-wide.table", ["latency", LOGS, "--wide"]),
        ("latency-where.json", ["latency", OTLP, "--where", "service == 'model-server'",
                                "--format", "json"]),
        ("latency-log-time-start.json", ["latency", STAGE_LOGS, "--log-time", "start",
                                         "--format", "json"]),
        ("traces-slowest.table", ["traces", OTLP, "--slowest", "5"]),
        ("models-window.json", ["models", OTLP, "--window", "20s", "--format", "json"]),
        ("traces-errors.csv", ["traces", LOGS, "--errors", "--format", "csv"]),
        ("formats.table", ["formats"]),
        ("formats.json", ["formats", "--format", "json"]),
    ]  # fmt: skip
    for fmt in ("table", "json", "markdown"):
        cases.append((f"show-otlp.{fmt}", ["show", FAILED_REQUEST, OTLP, "--format", fmt]))
        cases.append((f"show-logs.{fmt}", ["show", FAILED_REQUEST, LOGS, "--format", fmt]))
    cases.append(("show-attrs.table", ["show", FAILED_REQUEST, OTLP, "--attrs"]))
    cases.append(("show-unknown.table", ["show", "no-such-request", OTLP]))
    budgets = ["--budget", "model.inference:p95<=150ms", "--budget", "error_rate<=5%"]
    for fmt in FORMATS:
        cases.append((f"check.{fmt}", ["check", OTLP, *budgets, "--format", fmt]))
    cases.append(("check.junit", ["check", OTLP, *budgets, "--quiet", "--junit", JUNIT_FILE]))
    cases.append(("check-failing.table", ["check", OTLP, "--budget", "p50<1ms"]))
    for fmt in ("table", "json", "csv", "markdown"):
        cases.append((f"diff-logs-otlp.{fmt}", ["diff", LOGS, OTLP, "--format", fmt]))
    cases.append(("diff-long.table", ["diff", JAEGER, OTLP, "--long"]))
    # HTML pages: the same bytes every run (no time of the run in them).
    for report in ("latency", "errors", "bottlenecks"):
        cases.append((f"{report}-otlp.html", [report, OTLP, "--format", "html"]))
    cases += [
        ("latency-logs.html", ["latency", LOGS, "--format", "html"]),
        ("show-logs.html", ["show", FAILED_REQUEST, LOGS, "--format", "html"]),
        ("check.html", ["check", OTLP, *budgets, "--format", "html"]),
        ("diff-logs-otlp.html", ["diff", LOGS, OTLP, "--format", "html"]),
        ("report-otlp.html", ["report", OTLP, "--exemplars", "3"]),
    ]
    # LLM serving: the report, and the derived stages in the span reports.
    for fmt in FORMATS:
        cases.append((f"llm.{fmt}", ["llm", LLM, "--format", fmt]))
    cases += [
        ("llm-logs.table", ["llm", LLM_LOGS]),
        ("llm-by-operation.json", ["llm", LLM, "--by", "operation,provider", "--format", "json"]),
        ("latency-llm.table", ["latency", LLM]),
        ("latency-llm-no-derived.table", ["latency", LLM, "--no-derived-stages"]),
        ("bottlenecks-llm.table", ["bottlenecks", LLM]),
        ("summary-llm.table", ["summary", LLM]),
        ("show-llm.table", ["show", "82eb8c2cdc95d302ccf53110b4431cce", LLM]),
        ("summary-llm-logs.table", ["summary", LLM_LOGS]),
        ("check-llm.table", ["check", LLM, "--budget", "llm.ttft.p95 < 500ms",
                             "--budget", "llm.tpot.p50 <= 40ms", "--budget", "llm.queue_share < 20%",
                             "--budget", "llm.output_tps.p50 >= 30",
                             "--budget", "mixtral-8x7b-instruct:llm.output_tps.p50 >= 30"]),
        ("diff-llm.table", ["diff", LLM, "sample_data/llm.slower.otlp.jsonl", "--bootstrap", "4000",
                            "--fail-on", "mixtral-8x7b-instruct:llm.tpot:p50>+10%"]),
    ]  # fmt: skip
    # why: the planted cause of the samples (a degraded feature-store shard) among the slow.
    for fmt in FORMATS:
        cases.append((f"why-otlp.{fmt}", ["why", OTLP, "--slow", "p95", "--format", fmt]))
    cases.append(("why-failed.table", ["why", OTLP, "--failed"]))
    cases.append(("why-jaeger.json", ["why", JAEGER, "--slow", ">100ms", "--format", "json"]))
    cases.append(("why-logs.table", ["why", LOGS, "--slow", "p95", "--all"]))
    cases.append(("why-stage.table", ["why", OTLP, "--slow", "p95", "--stage", "fetch_features"]))
    cases.append(("why-no-selection.table", ["why", OTLP]))
    for fmt in ("table", "json"):
        cases.append(
            (
                f"show-compare.{fmt}",
                ["show", FAILED_REQUEST, OTLP, "--compare", "typical", "--format", fmt],
            )
        )
    cases.append(
        ("show-compare-logs.table", ["show", FAILED_REQUEST, LOGS, "--compare", "typical"])
    )
    return cases


CASES = _cases()


def _record(exit_code: int, stdout: str, stderr: str) -> str:
    return f"exit code: {exit_code}\n--- stdout\n{stdout}--- stderr\n{stderr}"


@pytest.mark.parametrize(("name", "args"), CASES, ids=[name for name, _ in CASES])
def test_output_is_unchanged(
    name: str, args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if any(a.startswith("../shared") for a in args) and not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(tmp_path / "cache"))
    written = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, [str(written) if a == JUNIT_FILE else a for a in args])
    actual = _record(result.exit_code, result.stdout, result.stderr)
    if JUNIT_FILE in args:
        actual += f"--- {JUNIT_FILE}\n{written.read_text()}"
    golden = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(actual)
    assert golden.is_file(), f"no recorded output: run with TRACELENS_UPDATE_GOLDEN=1 ({name})"
    assert actual == golden.read_text()


def test_every_recorded_output_has_a_case() -> None:
    recorded = {path.name for path in GOLDEN.iterdir()}
    assert recorded == {name for name, _ in CASES}
