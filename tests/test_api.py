"""The library API: the README example runs, and every report the library returns is the
document the CLI prints for the same options (the CLI is a layer over it, nothing more)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import ml_tracelens as tl
from ml_tracelens.cli import app
from ml_tracelens.exceptions import InputError, NotFound, UsageError
from tests.conftest import REPO

OTLP = "sample_data/traces.otlp.jsonl"
LOGS = "sample_data/app.log.jsonl"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def otlp() -> tl.AnalysedTelemetry:
    # Relative, as the CLI runs below are: the inputs' paths are part of the JSON.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        return tl.load(OTLP)


def cli_json(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def test_the_readme_example_runs() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Library") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {})


@pytest.mark.parametrize(
    ("call", "command"),
    [
        (lambda t: tl.summary(t), ["summary", OTLP]),
        (lambda t: tl.latency(t), ["latency", OTLP]),
        (lambda t: tl.latency(t, by="service,stage", top=3), ["latency", OTLP, "--by",
                                                               "service,stage", "--top", "3"]),
        (lambda t: tl.latency(t, where="duration_ms > 20", services=["model-server"]),
         ["latency", OTLP, "--where", "duration_ms > 20", "--service", "model-server"]),
        (lambda t: tl.errors(t, top=3), ["errors", OTLP, "--top", "3"]),
        (lambda t: tl.bottlenecks(t, tail=0.9), ["bottlenecks", OTLP, "--tail", "0.9"]),
        (lambda t: tl.traces(t, slowest=4), ["traces", OTLP, "--slowest", "4"]),
        (lambda t: tl.show(t, "req-eaf584", critical_only=True),
         ["show", "req-eaf584", OTLP, "--critical-only"]),
        (lambda t: tl.check(t, ["p95<=120ms", "model.inference:error_rate<1%"]),
         ["check", OTLP, "--budget", "p95<=120ms", "--budget", "model.inference:error_rate<1%"]),
        (lambda t: tl.models(t), ["models", OTLP]),
    ],
    ids=["summary", "latency", "latency-by", "latency-filtered", "errors", "bottlenecks",
         "traces", "show", "check", "models"],
)  # fmt: skip
def test_a_report_is_the_document_the_cli_prints(
    otlp: tl.AnalysedTelemetry, call: object, command: list[str]
) -> None:
    assert callable(call)
    result = call(otlp)
    assert isinstance(result, tl.Result)
    assert result.to_json() == cli_json(*command).rstrip("\n")


def test_diff_of_two_loads_is_the_cli_diff(otlp: tl.AnalysedTelemetry) -> None:
    baseline = tl.load(LOGS)
    for long in (False, True):
        result = tl.diff(baseline, otlp, fail_on=["p95>+50%"], long=long)
        args = ["diff", LOGS, OTLP, "--fail-on", "p95>+50%", *(["--long"] if long else [])]
        assert result.to_json() == cli_json(*args).rstrip("\n")


def test_rows_are_the_json_rows_as_a_frame(otlp: tl.AnalysedTelemetry) -> None:
    for result in (tl.latency(otlp), tl.errors(otlp), tl.traces(otlp), tl.check(otlp, ["p50<1s"])):
        document = json.loads(result.to_json())
        assert isinstance(result.rows, pl.DataFrame)
        assert result.rows.to_dicts() == document["rows"]
        for key, frame in result.tables.items():
            assert frame.to_dicts() == document[key]


def test_typed_columns(otlp: tl.AnalysedTelemetry) -> None:
    rows = tl.latency(otlp).rows
    assert rows.schema["stage"] == pl.String
    assert rows.schema["count"] == pl.Int64
    assert rows.schema["p95_ms"] == pl.Float64
    assert "distribution" not in rows.columns  # a terminal aid, not data


def test_spans_carry_the_analysis(otlp: tl.AnalysedTelemetry) -> None:
    spans = otlp.spans
    assert {"self_ns", "cp_ns", "error_originated", "depth"} <= set(spans.columns)
    # The spans' critical-path time adds up to the tree tops' durations (algorithms.md).
    tops = spans.filter(pl.col("span_id") == pl.col("top_id"))
    assert spans.get_column("cp_ns").sum() == tops.get_column("duration_ns").sum()


def test_gates_say_whether_they_passed(otlp: tl.AnalysedTelemetry) -> None:
    assert tl.check(otlp, ["p50<10s"]).passed
    failed = tl.check(otlp, ["p50<1ms"])
    assert not failed.passed


def test_errors_are_domain_errors_worded_for_the_library(otlp: tl.AnalysedTelemetry) -> None:
    with pytest.raises(UsageError, match=r"^budget 'p42<1s': unknown metric"):
        tl.check(otlp, ["p42<1s"])
    with pytest.raises(NotFound):
        tl.show(otlp, "no-such-request")
    with pytest.raises(InputError, match="no such file"):
        tl.load(REPO / "sample_data" / "missing.jsonl")


def test_a_path_list_and_one_path_read_alike(tmp_path: Path) -> None:
    one = tl.latency(tl.load(REPO / OTLP, cache=False)).rows
    listed = tl.latency(tl.load([str(REPO / OTLP)], cache=False)).rows
    assert one.equals(listed)
