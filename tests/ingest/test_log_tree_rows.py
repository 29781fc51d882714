"""The parent rows ``log_spans`` hands to the analysis are the rows resolving the ids finds.

Log-derived trees are built in ``log_spans``; ``analyze`` takes their parent rows instead of
resolving parent ids again. These tests resolve the ids independently (a dict of
(trace id, span id) -> row) and check the rows row by row, and that the analysis is the same
either way.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core import analyze
from ml_tracelens.core.tree import build_tree
from ml_tracelens.ingest.log_spans import spans_from_logs
from ml_tracelens.schema import logs_from_columns

NONE = pl.Series([], dtype=pl.String)
BASE = 1_795_683_136 * 1_000_000_000

#: Own span ids a line may carry: plain ones, repeats, and ones spelled like the made ids.
OWN_IDS = [None, "a1", "a2", "a3", "log:0", "log:3", "root:q0"]


def resolved_by_ids(spans: pl.DataFrame) -> list[int | None]:
    """Each span's parent row, found by its (trace id, parent id) among the rows' own ids."""
    rows: dict[tuple[str, str], int] = {}
    for row, (trace, own) in enumerate(spans.select("trace_id", "span_id").iter_rows()):
        rows.setdefault((trace, own), row)
    return [
        None if parent is None else rows.get((trace, parent))
        for trace, parent in spans.select("trace_id", "parent_id").iter_rows()
    ]


@st.composite
def stage_logs(draw: st.DrawFn) -> pl.DataFrame:
    """Stage lines of a few requests: intervals that nest or not (so some requests get a
    derived root), some lines with their own span id (repeated, or spelled like a made id),
    some requests with parent ids."""
    columns: dict[str, list[Any]] = {
        key: [] for key in ("time_ns", "correlation_id", "stage", "duration_ns", "span_id")
    }
    columns["parent_span_id"] = []
    for request in range(draw(st.integers(1, 4))):
        with_parent_ids = draw(st.booleans())
        for line in range(draw(st.integers(1, 8))):
            start = draw(st.integers(0, 50))
            end = draw(st.integers(start, 60))
            own = draw(st.sampled_from(OWN_IDS))
            columns["time_ns"].append(BASE + end)
            columns["correlation_id"].append(f"q{request}")
            columns["stage"].append(f"s{line}")
            columns["duration_ns"].append(end - start)
            columns["span_id"].append(own)
            parent = draw(st.sampled_from(OWN_IDS[1:4])) if with_parent_ids and line else None
            columns["parent_span_id"].append(parent)
    return logs_from_columns(columns)


@settings(max_examples=200, deadline=None)
@given(logs=stage_logs())
def test_parent_rows_are_what_the_ids_resolve_to(logs: pl.DataFrame) -> None:
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(logs.height, 0)])
    if derived.parent_rows is None:
        own = derived.spans.get_column("span_id")
        assert own.str.starts_with("log:").any() or own.str.starts_with("root:").any()
        return
    assert derived.parent_rows.to_list() == resolved_by_ids(derived.spans)
    by_rows = analyze(derived.spans, parent_rows=derived.parent_rows)
    by_ids = analyze(derived.spans)
    assert by_rows.spans.equals(by_ids.spans)
    assert by_rows.structure == by_ids.structure


def test_own_ids_spelled_like_made_ones_leave_the_ids_to_be_resolved() -> None:
    logs = logs_from_columns(
        {
            "time_ns": [BASE + 10, BASE + 20, BASE + 20],
            "correlation_id": ["q"] * 3,
            "stage": ["a", "b", "c"],
            "duration_ns": [10, 10, 5],
            "span_id": ["log:0", None, None],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)])
    assert derived.parent_rows is None


def test_rows_that_disagree_with_the_ids_are_not_used() -> None:
    logs = logs_from_columns(
        {
            "time_ns": [BASE + 100, BASE + 40, BASE + 90],
            "correlation_id": ["q"] * 3,
            "stage": ["root", "a", "b"],
            "duration_ns": [100, 30, 40],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)])
    assert derived.parent_rows is not None
    assert derived.parent_rows.to_list() == [None, 0, 0]
    wrong = pl.Series("parent", [None, 2, 0], dtype=derived.parent_rows.dtype)
    tree = build_tree(derived.spans, wrong)
    assert tree.parent.to_list() == [None, 0, 0]
    short = derived.parent_rows.head(2)
    assert build_tree(derived.spans, short).parent.to_list() == [None, 0, 0]


def test_a_log_dump_hands_its_trees_to_the_analysis(tmp_path: Any) -> None:
    from ml_tracelens import ingest

    path = tmp_path / "app.log.jsonl"
    path.write_text(
        '{"timestamp": "2026-01-01T00:00:00.100Z", "request_id": "r1", "stage": "POST /p",'
        ' "duration_ms": 100}\n'
        '{"timestamp": "2026-01-01T00:00:00.050Z", "request_id": "r1", "stage": "infer",'
        ' "duration_ms": 30}\n'
    )
    telemetry = ingest.load([str(path)])
    assert telemetry.span_parents is not None
    assert telemetry.span_parents.to_list() == resolved_by_ids(telemetry.spans)
