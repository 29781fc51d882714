"""`show --compare`: two hand-built trees aligned by stage path and occurrence index."""

from __future__ import annotations

import io

import polars as pl
import pytest

from ml_tracelens.core import analyze
from ml_tracelens.exceptions import NotFound
from ml_tracelens.render.table import render_report
from ml_tracelens.reports import compare
from ml_tracelens.reports.documents import ComparePayload
from ml_tracelens.schema import empty_logs
from tests.factories import parse_spans

MS = 1_000_000


def trees(*texts: tuple[str, str]) -> pl.DataFrame:
    frames = [parse_spans(text, trace_id=trace, scale=MS) for trace, text in texts]
    return analyze(pl.concat(frames)).spans


# A: the root runs a, inference twice (a retry), then post. B: a, one slower inference, post,
# then a cache write A does not have. Every child is sequential, so each is on the critical path.
A = "R[0,100]{name=POST}; a[0,10](R){name=a}; i1[10,40](R){name=inference}; i2[40,70](R){name=inference}; p[70,90](R){name=post}"
B = "R[0,80]{name=POST}; a[0,10](R){name=a}; i1[10,50](R){name=inference}; p[50,60](R){name=post}; c[60,70](R){name=cache}"


def test_repeated_stages_pair_in_order_and_one_sided_spans_are_listed() -> None:
    spans = trees(("ta", A), ("tb", B))
    aligned, only_a, only_b = compare.align(
        spans.filter(pl.col("trace_id") == "ta"), spans.filter(pl.col("trace_id") == "tb")
    )
    assert [(r["path"], r["a_ms"], r["b_ms"], r["delta_ms"]) for r in aligned] == [
        ("POST", 100.0, 80.0, -20.0),
        ("POST > a #1", 10.0, 10.0, 0.0),
        ("POST > inference #1", 30.0, 40.0, 10.0),
        ("POST > post #1", 20.0, 10.0, -10.0),
    ]
    # Sequential children: each child's critical-path time is its duration; the root keeps
    # its own time outside its children (A: 100 - 90 = 10 ms; B: 80 - 70 = 10 ms).
    assert [(r["a_cp_ms"], r["b_cp_ms"]) for r in aligned] == [
        (10.0, 10.0),
        (10.0, 10.0),
        (30.0, 40.0),
        (20.0, 10.0),
    ]
    assert only_a == ["POST > inference #2"]
    assert only_b == ["POST > cache #1"]


def test_children_of_repeated_parents_keep_their_parents_occurrence() -> None:
    a = "R[0,100]; t1[0,40](R){name=retry}; c1[5,30](t1){name=call}; t2[50,90](R){name=retry}; c2[55,80](t2){name=call}"
    b = "R[0,60]; t1[0,40](R){name=retry}; c1[5,35](t1){name=call}"
    spans = trees(("ta", a), ("tb", b))
    aligned, only_a, only_b = compare.align(
        spans.filter(pl.col("trace_id") == "ta"), spans.filter(pl.col("trace_id") == "tb")
    )
    assert [r["path"] for r in aligned] == ["R", "R > retry #1", "R > retry #1 > call #1"]
    assert only_a == ["R > retry #2", "R > retry #2 > call #1"]
    assert only_b == []


def test_attributes_that_differ_are_named() -> None:
    spans = analyze(
        pl.concat(
            [
                parse_spans("R[0,10]", trace_id="ta", attributes='{"node": "gpu-1", "x": 1}'),
                parse_spans(
                    "R[0,10]", trace_id="tb", attributes='{"node": "gpu-7", "x": 1, "y": 2}'
                ),
            ]
        )
    ).spans
    aligned, _, _ = compare.align(
        spans.filter(pl.col("trace_id") == "ta"), spans.filter(pl.col("trace_id") == "tb")
    )
    assert aligned[0]["attrs_changed"] == ["node", "y"]


def test_typical_is_the_median_other_request_of_the_same_root_stage() -> None:
    texts = [
        ("a0", "R[0,95]{name=POST}"),
        ("b1", "R[0,10]{name=POST}"),
        ("b2", "R[0,20]{name=POST}"),
        ("b3", "R[0,30]{name=POST}"),
        ("b4", "R[0,40]{name=POST}"),
        ("g1", "R[0,25]{name=GET}"),  # another root stage: never typical for a POST
    ]
    spans = trees(*texts)
    # The others of stage POST: 10, 20, 30, 40 ms: the lower middle one is 20 ms.
    assert compare.typical_trace(spans, "a0") == "b2"
    report = compare.build(analysed=spans, logs=empty_logs(), ident="a0", other="typical")
    assert isinstance(report.payload, ComparePayload)
    assert (report.payload.b.trace_id, report.payload.b.chosen_by) == ("b2", "typical")
    assert report.payload.a.duration_ms == 95.0
    only = trees(("a0", "R[0,95]{name=POST}"), ("g1", "R[0,25]{name=GET}"))
    with pytest.raises(NotFound, match="no other timed request"):
        compare.typical_trace(only, "a0")


def test_the_combined_tree_holds_both_requests_with_their_own_spans_under_their_parents() -> None:
    spans = trees(("ta", A), ("tb", B))
    merged = compare.combined(
        spans.filter(pl.col("trace_id") == "ta"), spans.filter(pl.col("trace_id") == "tb")
    )
    assert [(m.path, m.a is not None, m.b is not None) for m in merged] == [
        ("POST", True, True),
        ("POST > a #1", True, True),
        ("POST > inference #1", True, True),
        ("POST > inference #2", True, False),
        ("POST > post #1", True, True),
        ("POST > cache #1", False, True),
    ]
    root = merged[0]
    # Self time: the root's time outside its children (A: 100 - 90; B: 80 - 70), offsets from
    # each request's own start.
    assert root.a is not None
    assert root.b is not None
    assert (root.a.self_ms, root.b.self_ms) == (10.0, 10.0)
    cache = merged[-1]
    assert cache.b is not None
    assert (cache.b.offset_ms, cache.b.ms, cache.b.self_ms) == (60.0, 10.0, 10.0)


def test_the_terminal_draws_both_requests_on_one_axis() -> None:
    spans = trees(("ta", A), ("tb", B))
    report = compare.build(analysed=spans, logs=empty_logs(), ident="ta", other="tb")
    out = io.StringIO()
    text = render_report(report, out, wide=False)
    lines = text.splitlines()
    bars = [line for line in lines if line.count("|") == 2 and not line.startswith("span")]
    # A line per side of each span: four aligned spans twice, one span of each request alone.
    assert len(bars) == 4 * 2 + 2
    (only_a,) = [line for line in bars if "(only in A)" in line]
    (only_b,) = [line for line in bars if "(only in B)" in line]
    assert " A " in only_a
    assert " B " in only_b
    # The axis is the longer request (100 ms) over the bar's width; A's second inference runs
    # 40-70 ms, so its bar starts 40% in and covers 30%.
    axis = only_a.split("|")[1]
    assert axis.index("█") == round(0.4 * len(axis))
    assert axis.count("█") == round(0.3 * len(axis))
    assert any("-20.0ms" in line for line in bars)  # the root: B - A
