"""Spans derived from log lines (log_spans.py), checked against hand-computed times.

``fixtures/logs/stages.jsonl`` holds two requests logged stage by stage ("stage finished" at the
line's time, ``duration_ms`` earlier it started), one stage line keyed by a trace id only, and
lines that must not become spans (no stage, no duration, unreadable duration, no request id).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest

from ml_tracelens.ingest import load
from ml_tracelens.ingest.log_spans import DERIVED_ROOT_NAME, spans_from_logs
from ml_tracelens.readers import json_logs
from ml_tracelens.readers.base import ReadOptions
from ml_tracelens.schema import SPAN_SCHEMA, logs_from_columns
from tests.conftest import FIXTURES

STAGES = FIXTURES / "logs" / "stages.jsonl"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
MS = 1_000_000
T0 = 1_795_683_136 * 1_000_000_000  # 2026-11-26T08:52:16Z


def t(ms: int) -> int:
    """Milliseconds after 08:52:16Z as epoch ns."""
    return T0 + ms * MS


NONE = pl.Series([], dtype=pl.String)


def stage_logs() -> pl.DataFrame:
    return json_logs.parse_logs(STAGES.read_bytes(), "stages.jsonl", ReadOptions()).logs


def test_the_epoch_constant() -> None:
    from datetime import UTC, datetime

    assert int(datetime(2026, 11, 26, 8, 52, 16, tzinfo=UTC).timestamp()) * 1_000_000_000 == T0


def test_roots_and_stages_have_the_hand_computed_times() -> None:
    spans = spans_from_logs(stage_logs(), known_trace_ids=NONE).spans
    assert spans.schema == SPAN_SCHEMA
    columns = [
        "trace_id",
        "span_id",
        "parent_id",
        "service",
        "name",
        "kind",
        "start_ns",
        "end_ns",
        "duration_ns",
        "status",
        "status_message",
    ]
    assert spans.select(columns).rows() == [
        # a derived root per request of several sequential stages, earliest first
        ("r-1", "root:r-1", None, "api", DERIVED_ROOT_NAME, "server", t(80), t(262), 182 * MS, "unset", None),
        ("r-2", "root:r-2", None, "api", DERIVED_ROOT_NAME, "server", t(970), t(1500), 530 * MS, "unset", None),
        # stages in log order; span ids name the log row (0-based) they came from
        ("r-1", "log:1", "root:r-1", "api", "preprocess", "internal", t(80), t(100), 20 * MS, "unset", None),
        ("r-1", "log:2", "root:r-1", "api", "infer", "internal", t(100), t(250), 150 * MS, "unset", None),
        ("r-1", "log:3", "root:r-1", "api", "postprocess", "internal", t(250), t(262), 12 * MS, "unset", None),
        ("r-2", "log:4", "root:r-2", "api", "preprocess", "internal", t(970), t(1000), 30 * MS, "unset", None),
        ("r-2", "log:5", "root:r-2", "worker", "infer", "internal", t(1000), t(1500), 500 * MS, "error", "CUDA out of memory"),
        # a request of one line: that line is its root, no derived root above it
        (TRACE, "log:7", None, None, "infer", "internal", t(1960), t(2000), 40 * MS, "unset", None),
    ]  # fmt: skip
    assert spans.get_column("source").to_list() == [
        f"stages.jsonl:{n}" for n in (2, 5, 2, 3, 4, 5, 6, 8)
    ]
    roots = spans.filter(pl.col("name") == DERIVED_ROOT_NAME)
    assert set(roots.get_column("attributes")) == {'{"tracelens.derived":"logs"}'}
    assert orjson.loads(spans.item(3, "attributes")) == {"model": "resnet"}  # the log's attributes


def test_an_error_stage_without_an_error_field_takes_the_message() -> None:
    logs = logs_from_columns(
        {
            "time_ns": [1_000, 2_000],
            "level": ["fatal", "warn"],
            "message": ["stage crashed", "slow"],
            "correlation_id": ["q", "q"],
            "stage": ["a", "b"],
            "duration_ns": [100, 200],
        }
    )
    # At microsecond resolution "a" would nest in "b" (it starts within 1 µs of it): measure
    # these nanosecond times exactly.
    spans = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(2, 0)]).spans
    assert spans.select("name", "status", "status_message", "start_ns", "end_ns").rows() == [
        ("request", "unset", None, 900, 2_000),
        ("a", "error", "stage crashed", 900, 1_000),
        ("b", "unset", None, 1_800, 2_000),
    ]


def test_requests_with_real_spans_are_not_duplicated() -> None:
    spans = spans_from_logs(stage_logs(), known_trace_ids=pl.Series([TRACE, "other"])).spans
    assert TRACE not in spans.get_column("trace_id").to_list()
    assert spans.height == 7  # r-1: root + 3 stages, r-2: root + 2 stages


def test_a_request_id_linked_to_a_trace_joins_it() -> None:
    # The first line pairs r-9 with a trace; the stage line carries only r-9.
    logs = logs_from_columns(
        {
            "time_ns": [1_000, 5_000, 6_000],
            "level": ["info", "info", "info"],
            "trace_id": ["ab" * 16, None, None],
            "correlation_id": ["r-9", "r-9", "r-10"],
            "stage": [None, "infer", "infer"],
            "duration_ns": [None, 3_000, 1_000],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)]).spans
    assert derived.select("trace_id", "name", "start_ns", "end_ns").rows() == [
        ("ab" * 16, "infer", 2_000, 5_000),
        ("r-10", "infer", 5_000, 6_000),
    ]
    known = spans_from_logs(
        logs, known_trace_ids=pl.Series(["ab" * 16]), resolutions=[(3, 0)]
    ).spans
    assert known.get_column("trace_id").unique().to_list() == ["r-10"]


def test_lines_that_are_not_stages_make_no_spans() -> None:
    logs = stage_logs()
    not_stages = logs.filter(pl.col("source").is_in([f"stages.jsonl:{n}" for n in (1, 7, 9, 10)]))
    assert not_stages.height == 4
    assert spans_from_logs(not_stages, known_trace_ids=NONE).spans.is_empty()
    assert spans_from_logs(logs.clear(), known_trace_ids=NONE).spans.schema == SPAN_SCHEMA


@pytest.fixture
def traced_dump(tmp_path: Path) -> Path:
    """The stage log plus a Collector-style OTLP line holding a real span of TRACE."""
    span = {
        "traceId": TRACE,
        "spanId": "00f067aa0ba902b7",
        "name": "infer",
        "kind": 2,
        "startTimeUnixNano": str(t(1960)),
        "endTimeUnixNano": str(t(2000)),
        "status": {},
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    document = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    (tmp_path / "traces.otlp.jsonl").write_bytes(orjson.dumps(document) + b"\n")
    (tmp_path / "app.jsonl").write_bytes(STAGES.read_bytes())
    return tmp_path


def test_ingest_derives_spans_only_for_requests_without_traces(traced_dump: Path) -> None:
    telemetry = load([str(traced_dump / "traces.otlp.jsonl"), str(traced_dump / "app.jsonl")])
    assert [i.format for i in telemetry.inputs] == ["otlp-json", "json-logs"]
    assert telemetry.logs.height == 10
    assert telemetry.derived_spans == 7
    spans = telemetry.spans
    assert spans.filter(pl.col("trace_id") == TRACE).get_column("span_id").to_list() == [
        "00f067aa0ba902b7"
    ]
    assert sorted(spans.filter(pl.col("name") == "request").get_column("trace_id")) == [
        "r-1",
        "r-2",
    ]
    alone = load([str(traced_dump / "app.jsonl")])
    assert alone.derived_spans == 8  # the trace's one stage line is its own root
