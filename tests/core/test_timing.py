"""Self time: the table of algorithms.md, plus the cases that table does not spell out."""

from __future__ import annotations

import polars as pl
import pytest

from ml_tracelens.core import analyze, build_tree, self_times
from tests.factories import by_span, make_spans, parse_spans


def self_of(text: str, **kwargs: object) -> dict[str, object]:
    return by_span(self_times(parse_spans(text, **kwargs)), "self_ns")


# algorithms.md, "Self time": parent [0,10] and its children -> the parent's self time.
@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ("", 10),
        ("B[1,5](A); C[6,10](A)", 2),
        ("B[2,6](A); C[2,6](A)", 6),
        ("B[1,5](A); C[3,8](A)", 3),
        ("B[8,15](A)", 8),
        ("B[-5,2](A)", 8),
    ],
)
def test_self_time_is_the_time_no_child_covers(children: str, expected: int) -> None:
    assert self_of(f"A[0,10]; {children}")["A"] == expected


def test_children_keep_their_own_self_time() -> None:
    # The parallel children of the table's third row each keep their 4, so the trace's
    # self times sum to 14 > 10: why the share of latency comes from the critical path.
    assert self_of("A[0,10]; B[2,6](A); C[2,6](A)") == {"A": 6, "B": 4, "C": 4}


def test_only_direct_children_count() -> None:
    # C lies inside B, so it takes nothing more from A.
    assert self_of("A[0,100]; B[10,60](A); C[20,30](B)") == {"A": 50, "B": 40, "C": 10}


def test_independent_of_child_order() -> None:
    forward = self_of("A[0,50]; B[1,5](A); C[3,8](A); D[20,30](A); E[25,40](A)")
    backward = self_of("E[25,40](A); D[20,30](A); C[3,8](A); B[1,5](A); A[0,50]")
    # Union: [1,8] 7 + [20,40] 20 = 27.
    assert forward == backward
    assert forward["A"] == 50 - 27


def test_nested_overlaps_and_touching_children() -> None:
    # [1,9] covers [2,3] and [4,8]; [9,12] touches it; [20,30] and [30,40] touch: union 8+3+20.
    spans = "A[0,50]; B[1,9](A); C[2,3](A); D[4,8](A); E[9,12](A); F[20,30](A); G[30,40](A)"
    assert self_of(spans)["A"] == 50 - 31


def test_zero_length_children_and_parent() -> None:
    assert self_of("A[0,10]; B[5,5](A)") == {"A": 10, "B": 0}
    assert self_of("A[5,5]; B[5,5](A); C[2,8](A)") == {"A": 0, "B": 0, "C": 6}


def test_children_without_timing_cover_nothing() -> None:
    assert self_of("A[0,10]; U[?,?](A); N[8,2](A); B[1,3](A)") == {
        "A": 8,
        "U": None,
        "N": None,
        "B": 2,
    }


def test_untimed_parent_has_no_self_time_but_its_children_do() -> None:
    assert self_of("U[?,?]; B[1,3](U); C[2,9](B)") == {"U": None, "B": 1, "C": 7}


def test_parents_across_traces_are_kept_apart() -> None:
    spans = pl.concat(
        [
            parse_spans("A[0,10]; B[0,10](A)", trace_id="t1"),
            parse_spans("A[0,10]; C[0,4](A)", trace_id="t2"),
        ]
    )
    result = self_times(spans)
    assert result.rows() == [("t1", "A", 0), ("t1", "B", 10), ("t2", "A", 6), ("t2", "C", 4)]


def test_large_timestamps_do_not_overflow() -> None:
    # Real epoch nanoseconds, and a span over most of the Int64 range (keys go to Int128).
    base = 1_700_000_000_000_000_000
    spans = make_spans(
        [
            ("A", None, base, base + 10_000),
            ("B", "A", base + 1_000, base + 4_000),
            ("C", "A", base + 3_000, base + 20_000),
            ("W", None, -(2**61), 2**62),
            ("X", "W", -(2**61), 0),
        ]
    )
    assert by_span(self_times(spans), "self_ns") == {
        "A": 1_000,
        "B": 3_000,
        "C": 17_000,
        "W": 2**62,
        "X": 2**61,
    }


def test_self_times_accepts_a_prepared_tree_and_matches_analyze() -> None:
    spans = parse_spans("A[0,100]; B[10,70](A); C[25,45](B); D[30,50](B)")
    from_tree = self_times(build_tree(spans))
    assert from_tree.get_column("self_ns").to_list() == [40, 35, 20, 20]
    assert analyze(spans).spans.get_column("self_ns").to_list() == [40, 35, 20, 20]
