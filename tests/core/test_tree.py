"""Tree structure: parents, tops, depth, orphans, duplicates, cycles, skew, error origin, counts.

Expected values are worked out by hand from the small trees written in each test.
"""

from __future__ import annotations

import collections

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core import Analysis, analyze, build_tree
from ml_tracelens.core.tree import dense_codes, repeated_pairs
from ml_tracelens.schema import SPAN_SCHEMA, empty_spans
from tests.factories import by_span, make_spans, parse_spans


def column(analysis: Analysis, name: str) -> dict[str, object]:
    return by_span(analysis.spans, name)


def test_roots_depth_and_top_of_a_simple_tree() -> None:
    result = analyze(parse_spans("A[0,100]; B[10,60](A); C[20,30](B); D[70,90](A)"))
    assert column(result, "is_root") == {"A": True, "B": False, "C": False, "D": False}
    assert column(result, "depth") == {"A": 0, "B": 1, "C": 2, "D": 1}
    assert column(result, "top_id") == {"A": "A", "B": "A", "C": "A", "D": "A"}
    assert result.spans.schema["depth"] == pl.Int32
    s = result.structure
    assert (s.spans, s.traces, s.roots, s.orphan_spans) == (4, 1, 1, 0)
    assert result.warnings() == []


def test_input_columns_and_row_order_are_kept() -> None:
    spans = parse_spans("C[20,30](B); A[0,100]; B[10,60](A)").with_columns(extra=pl.lit(7))
    result = analyze(spans)
    assert result.spans.get_column("span_id").to_list() == ["C", "A", "B"]
    assert result.spans.select([*list(SPAN_SCHEMA), "extra"]).equals(spans)
    new = ["is_root", "is_orphan", "top_id", "depth", "self_ns", "cp_ns", "has_error"]
    assert set(new) <= set(result.spans.columns)


def test_orphans_are_tops_of_their_subtrees_and_counted() -> None:
    # The root R is missing from the dump: X and Y point at it, Z hangs below X.
    spans = parse_spans("X[0,50](R); Z[10,20](X); Y[60,80](R)")
    result = analyze(spans)
    assert column(result, "is_orphan") == {"X": True, "Z": False, "Y": True}
    assert column(result, "is_root") == {"X": False, "Z": False, "Y": False}
    assert column(result, "top_id") == {"X": "X", "Z": "X", "Y": "Y"}
    assert column(result, "depth") == {"X": 0, "Z": 1, "Y": 0}
    # An orphan's tree gets a critical path of its own: X 40 + Z 10 = X's 50.
    assert column(result, "cp_ns") == {"X": 40, "Z": 10, "Y": 20}
    s = result.structure
    assert (s.orphan_spans, s.roots, s.traces_without_root) == (2, 0, 1)
    assert any("2 orphan spans (parent id not in the dump)" in w for w in result.warnings())


def test_parent_ids_only_match_within_the_same_trace() -> None:
    spans = pl.concat(
        [parse_spans("A[0,10]", trace_id="t1"), parse_spans("B[2,4](A)", trace_id="t2")]
    )
    result = analyze(spans)
    assert column(result, "is_orphan") == {"A": False, "B": True}
    assert result.structure.traces == 2


def test_several_roots_in_one_trace_are_reported() -> None:
    spans = pl.concat(
        [parse_spans("A[0,10]; B[20,30]; C[21,22](B)"), parse_spans("D[0,5]", trace_id="t2")]
    )
    s = analyze(spans).structure
    assert (s.roots, s.traces, s.traces_with_multiple_roots) == (3, 2, 1)


def test_conflicting_duplicates_are_rekeyed_and_children_attach_to_the_first() -> None:
    spans = make_spans(
        [
            ("A", None, 0, 100),
            ("B", "A", 10, 40),
            ("B", "A", 50, 90, {"name": "other"}),
            ("C", "B", 20, 30),
            ("B", "A", 60, 70, {"name": "third"}),
        ]
    )
    result = analyze(spans)
    ids = result.spans.get_column("span_id").to_list()
    assert ids == ["A", "B", "B~dup1", "C", "B~dup2"]
    assert column(result, "top_id") == dict.fromkeys(ids, "A")
    assert column(result, "depth") == {"A": 0, "B": 1, "B~dup1": 1, "C": 2, "B~dup2": 1}
    # C hangs below the first B: its self time is 30 - 10, the duplicates have no children.
    assert column(result, "self_ns")["B"] == 20
    assert result.structure.conflicting_duplicates == 2
    assert any("kept apart" in w for w in result.warnings())


def test_duplicate_span_ids_in_different_traces_are_not_duplicates() -> None:
    spans = pl.concat([parse_spans("A[0,10]", trace_id=t) for t in ("t1", "t2", "t3")])
    result = analyze(spans)
    assert result.structure.conflicting_duplicates == 0
    assert result.spans.get_column("span_id").to_list() == ["A", "A", "A"]


@pytest.mark.parametrize(
    ("rows", "broken", "roots"),
    [
        # A -> B -> A: the smaller id, A, becomes the root.
        ([("B", "A", 1, 9), ("A", "B", 0, 10)], 1, {"A"}),
        # A span that is its own parent.
        ([("S", "S", 0, 5)], 1, {"S"}),
        # A three-cycle with a tail T hanging off it, and a separate healthy tree.
        (
            [
                ("C", "A", 2, 8),
                ("B", "C", 1, 9),
                ("A", "B", 0, 10),
                ("T", "B", 3, 4),
                ("R", None, 0, 10),
                ("K", "R", 1, 2),
            ],
            1,
            {"A", "R"},
        ),
        # Two cycles in one trace.
        ([("X", "Y", 0, 1), ("Y", "X", 0, 1), ("P", "Q", 0, 1), ("Q", "P", 0, 1)], 2, {"P", "X"}),
    ],
)
def test_cycles_are_broken_at_the_smallest_span_id(
    rows: list[tuple[object, ...]], broken: int, roots: set[str]
) -> None:
    result = analyze(make_spans(rows))
    assert result.structure.cycles_broken == broken
    got_roots = set(result.spans.filter("is_root").get_column("span_id"))
    assert got_roots == roots
    # The breaker lost its parent id; everything else is unchanged and reaches a root.
    parents = column(result, "parent_id")
    for span_id, parent_id, *_ in rows:
        assert parents[span_id] == (None if span_id in roots else parent_id)
    assert set(result.spans.get_column("top_id")) == roots
    assert any("parent cycle" in w for w in result.warnings())


def test_cycle_depths_count_from_the_new_root() -> None:
    result = analyze(make_spans([("C", "A", 2, 8), ("B", "C", 1, 9), ("A", "B", 0, 10)]))
    # A is the root now: A <- C <- B.
    assert column(result, "depth") == {"C": 1, "B": 2, "A": 0}


def test_a_10000_deep_chain_gets_depths_and_one_top() -> None:
    depth = 10_000
    rows = [(f"s{i}", f"s{i - 1}" if i else None, i, 2 * depth - i) for i in range(depth)]
    result = analyze(make_spans(rows))
    assert result.spans.get_column("depth").to_list() == list(range(depth))
    assert set(result.spans.get_column("top_id")) == {"s0"}
    # Every span of a nested chain is on the path: each keeps one unit at either end.
    assert result.spans.get_column("cp_ns").to_list() == [2] * (depth - 1) + [2]


def test_untimed_spans_stay_in_the_tree_and_are_counted() -> None:
    result = analyze(parse_spans("A[0,100]; U[?,?](A); C[10,20](U); D[30,40](A)"))
    assert column(result, "top_id") == dict.fromkeys("AUCD", "A")
    assert column(result, "depth") == {"A": 0, "U": 1, "C": 2, "D": 1}
    assert column(result, "self_ns") == {"A": 90, "U": None, "C": 10, "D": 10}
    # U has no timing, so nothing below it can be placed on the path.
    assert column(result, "cp_ns") == {"A": 90, "U": None, "C": 0, "D": 10}
    assert result.structure.untimed_spans == 1
    assert any("1 span without start or end time" in w for w in result.warnings())


def test_negative_and_zero_durations_are_counted_and_negative_ones_not_timed() -> None:
    result = analyze(parse_spans("A[0,100]; N[50,40](A); Z[60,60](A); B[10,20](N)"))
    assert column(result, "self_ns") == {"A": 100, "N": None, "Z": 0, "B": 10}
    assert column(result, "cp_ns") == {"A": 100, "N": None, "Z": 0, "B": 0}
    s = result.structure
    assert (s.negative_durations, s.zero_durations) == (1, 1)
    assert any("ending before they start" in w for w in result.warnings())


def test_children_past_their_parent_are_flagged_and_counted_by_service_pair() -> None:
    spans = parse_spans(
        """
        A[0,100]{service=api}
        In[10,20](A){service=model}
        Early[-5,50](A){service=model}
        Late[90,110](A){service=model}
        Out[120,130](A){service=db}
        Edge[100,100](A){service=db}
        U[?,?](A){service=db}
        Sub[121,125](Out){service=db}
        """
    )
    result = analyze(spans)
    assert column(result, "skewed") == {
        "A": False,
        "In": False,
        "Early": True,
        "Late": True,
        "Out": True,
        "Edge": False,
        "U": False,
        "Sub": False,
    }
    assert {k for k, v in column(result, "outside_parent").items() if v} == {"Out"}
    s = result.structure
    assert (s.skewed_spans, s.outside_parent_spans) == (3, 1)
    assert s.skew_by_service_pair == {("api", "model"): 2, ("api", "db"): 1}
    # Out and its subtree are left off the path; A keeps everything In/Early/Late do not own.
    cp = column(result, "cp_ns")
    assert (cp["Out"], cp["Sub"]) == (0, 0)
    assert sum(v for v in cp.values() if v) == 100
    warnings = result.warnings()
    assert any("api -> model (2)" in w for w in warnings)
    assert any("wholly outside" in w for w in warnings)


def test_error_origin_separates_originated_from_propagated() -> None:
    spans = parse_spans(
        """
        A[0,100]{status=error}
        B[10,60](A){status=error}
        C[20,30](B){status=error}
        D[40,50](B){status=ok}
        E[70,90](A){status=error}
        F[75,80](E)
        """
    )
    result = analyze(spans)
    assert column(result, "has_error") == {
        "A": True,
        "B": True,
        "C": True,
        "D": False,
        "E": True,
        "F": False,
    }
    originated = {k for k, v in column(result, "error_originated").items() if v}
    assert originated == {"C", "E"}


def test_error_origin_reaches_up_a_deep_chain() -> None:
    depth = 3000
    rows = [
        (f"s{i}", f"s{i - 1}" if i else None, i, 10_000 - i, {"status": "error"})
        for i in range(0, depth, 1)
    ]
    result = analyze(make_spans(rows))
    originated = result.spans.filter("error_originated").get_column("span_id").to_list()
    assert originated == [f"s{depth - 1}"]


def test_an_empty_frame_analyses_to_nothing_and_warns_of_nothing() -> None:
    result = analyze(empty_spans())
    assert result.spans.height == 0
    assert result.structure.spans == 0
    assert result.structure.traces == 0
    assert result.warnings() == []


def test_merged_duplicates_from_ingest_are_carried_into_warnings() -> None:
    result = analyze(parse_spans("A[0,10]"), merged_duplicates=4)
    assert result.structure.merged_duplicates == 4
    assert result.warnings() == ["4 identical duplicate spans merged"]


def test_build_tree_exposes_parent_rows() -> None:
    tree = build_tree(parse_spans("B[1,2](A); A[0,10]; C[3,4](B)"))
    assert tree.parent.to_list() == [1, None, 0]
    assert tree.top.to_list() == [1, 1, 1]


def test_rekeyed_ids_that_collide_with_real_ids_do_not_multiply_rows() -> None:
    spans = make_spans([("A", None, 0, 10), ("A", None, 0, 5), ("A~dup1", None, 0, 7)])
    result = analyze(spans)
    assert result.spans.height == 3
    assert result.spans.get_column("span_id").to_list() == ["A", "A~dup1", "A~dup1"]
    assert result.structure.conflicting_duplicates == 1


def test_null_trace_and_span_ids_do_not_crash() -> None:
    spans = make_spans(
        [
            ("A", None, 0, 10, {"trace_id": None}),
            ("B", "A", 2, 4, {"trace_id": None}),
            (None, "A", 5, 6),
            (None, "A", 6, 7),
        ]
    )
    result = analyze(spans)
    assert result.spans.height == 4
    # Spans without a trace id group together; spans without an id are nobody's parent.
    assert by_span(result.spans.slice(0, 2), "depth") == {"A": 0, "B": 1}
    assert result.spans.get_column("is_orphan").to_list() == [False, False, True, True]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "", "é", "a" * 20, "0"]))))
def test_dense_codes_number_values_by_first_appearance(values: list[str | None]) -> None:
    codes, first = dense_codes(pl.Series("v", values, dtype=pl.String))
    seen: dict[str, int] = {}
    for value in values:
        if value is not None:
            seen.setdefault(value, len(seen))
    assert codes.name == "v"
    assert codes.dtype == pl.UInt32
    assert codes.to_list() == [None if v is None else seen[v] for v in values]
    assert [values[row] for row in first.to_list()] == list(seen)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["t1", "t2", None]), st.sampled_from(["a", "b", "c", None])))
)
def test_repeated_pairs_mark_every_row_whose_pair_recurs(
    rows: list[tuple[str | None, ...]],
) -> None:
    frame = pl.DataFrame(rows, schema={"x": pl.String, "y": pl.String}, orient="row")
    counts = collections.Counter(rows)
    assert repeated_pairs(frame, "x", "y").to_list() == [counts[row] > 1 for row in rows]
