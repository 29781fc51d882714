"""`tracelens traces`: one row per request, filters, sorting, the JSON rows, real fixtures.

Expected rows come from the hand-built dump below or from plain ``json`` counts over the shared
fixtures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core import analyze
from ml_tracelens.reports import traces
from ml_tracelens.schema import logs_from_columns
from tests.factories import (
    T1,
    T2,
    T3,
    A,
    B,
    C,
    make_spans,
    ms_span,
    predict_request,
    write_by_service,
)

runner = CliRunner()
T5 = "5af7651916cd43dd8448eb211c80319c"
KEYS = {
    "trace_id",
    "correlation_id",
    "stage",
    "service",
    "start",
    "duration_ms",
    "spans",
    "errors",
    "error",
}


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """T1 (start +0 s): 100 ms root, 4 spans, D fails, root has no status -> request failed.
    T2 (+1 s): 5 ms health check. T3 (+2 s): 250 ms, root status OK, its child fails -> the
    request did not fail. T5 (+3 s): only an orphan (its parent is not in the dump), 30 ms."""
    spans = [
        *predict_request(),
        ("gateway", ms_span(T3, A, None, "POST /predict", 2000, 2250, ok=True)),
        ("model-server", ms_span(T3, B, A, "model.inference", 2010, 2200, error="OOM")),
        ("worker", ms_span(T5, C, "ffffffffffffffff", "late.stage", 3000, 3030)),
    ]
    return write_by_service(tmp_path / "dump.otlp.jsonl", spans)


def run_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["traces", *args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def ids(document: dict[str, Any]) -> list[str]:
    return [row["trace_id"] for row in document["rows"]]


def test_one_row_per_request_by_start_time_with_its_root_spans_and_errors(dump: Path) -> None:
    document = run_json(str(dump))
    assert document["report"] == "traces"
    rows = document["rows"]
    assert all(set(row) == KEYS for row in rows)
    assert ids(document) == [T1, T2, T3, T5]  # by start time
    by_id = {row["trace_id"]: row for row in rows}
    assert by_id[T1] == {
        "trace_id": T1,
        "correlation_id": "req-8f3a",
        "stage": "POST /predict",
        "service": "gateway",
        "start": "2023-11-14T22:13:20.000000Z",
        "duration_ms": 100.0,
        "spans": 4,
        "errors": 1,
        "error": True,
    }
    assert (by_id[T3]["errors"], by_id[T3]["error"], by_id[T3]["spans"]) == (1, False, 2)
    assert by_id[T3]["duration_ms"] == pytest.approx(250.0)
    assert by_id[T5]["stage"] == "late.stage"
    assert by_id[T5]["service"] == "worker"
    assert by_id[T2]["correlation_id"] is None
    assert by_id[T2]["start"] == "2023-11-14T22:13:21.000000Z"


def test_slowest_errors_where_sort_and_top_choose_and_order_the_rows(dump: Path) -> None:
    assert ids(run_json(str(dump), "--slowest", "2")) == [T3, T1]
    assert ids(run_json(str(dump), "--errors")) == [T1]
    assert ids(run_json(str(dump), "--where", "stage = 'model.inference'")) == [T1, T3]
    assert ids(run_json(str(dump), "--where", "error")) == [T1, T3]
    assert ids(run_json(str(dump), "--sort", "spans")) == [T1, T3, T2, T5]
    assert ids(run_json(str(dump), "--sort", "duration_ms", "--top", "1")) == [T3]
    assert ids(run_json(str(dump), "--slowest", "3", "--sort", "start")) == [T1, T3, T5]


def test_bad_options_exit_2(dump: Path) -> None:
    result = runner.invoke(app, ["traces", str(dump), "--sort", "nope"])
    assert result.exit_code == 2
    assert "--sort" in result.stderr
    assert runner.invoke(app, ["traces", str(dump), "--slowest", "0"]).exit_code == 2
    result = runner.invoke(app, ["traces", str(dump), "--where", "stage = 'nothing'"])
    assert result.exit_code == 2


def test_the_terminal_and_csv_show_every_row(dump: Path) -> None:
    result = runner.invoke(app, ["traces", str(dump)])
    assert result.exit_code == 0
    assert T1 in result.stdout
    assert "req-8f3a" in result.stdout
    assert "late.stage" in result.stdout
    csv_out = runner.invoke(app, ["traces", str(dump), "--format", "csv"]).stdout.splitlines()
    assert csv_out[0].split(",")[:3] == ["trace_id", "correlation_id", "stage"]
    assert len(csv_out) == 5


def test_a_log_lines_correlation_id_other_than_the_trace_id_names_the_request() -> None:
    spans = make_spans([("r", None, 0, 10)], trace_id=T2)
    logs = logs_from_columns(
        {
            "time_ns": [5, 6],
            "level": ["info", "info"],
            "message": ["a", "b"],
            "trace_id": [T2, T2],
            "correlation_id": [T2, "corr-2"],
        }
    )
    report = traces.build(analysed=analyze(spans).spans, logs=logs)
    (row,) = report.tables[0].rows
    assert row["correlation_id"] == "corr-2"  # a correlation id equal to the trace id says nothing


def test_a_zipkin_trace_is_one_row_counted_as_in_the_file(shared_fixtures: Path) -> None:
    path = shared_fixtures / "zipkin" / "smartthings-oauth-authorization.json"
    records = json.loads(path.read_text())
    (root,) = [r for r in records if not r.get("parentId")]
    (row,) = run_json(str(path))["rows"]
    assert row["trace_id"] == root["traceId"]
    assert row["spans"] == len(records)
    assert row["errors"] == sum("error" in r.get("tags", {}) for r in records)
    assert row["stage"] == root["name"]
    assert row["duration_ms"] == pytest.approx(root["duration"] / 1000)


def test_every_demo_trace_is_a_row_counted_as_in_the_file_in_start_order(
    shared_fixtures: Path,
) -> None:
    path = shared_fixtures / "otlp" / "otel-demo-capture.otlp.jsonl"
    spans: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    trace_id = s["traceId"].lower()
                    spans[trace_id] += 1
                    errors[trace_id] += s.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR")
    rows = run_json(str(path))["rows"]
    assert len(rows) == len(spans)  # every trace listed, the one without a root included
    assert {row["trace_id"]: row["spans"] for row in rows} == dict(spans)
    assert {row["trace_id"]: row["errors"] for row in rows} == {t: errors[t] for t in spans}
    starts = [row["start"] for row in rows]
    assert starts == sorted(starts)
