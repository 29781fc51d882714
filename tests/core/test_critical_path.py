"""Critical path: the five vectors of algorithms.md, then clipping, ties, and shapes at scale.

Expected values are walked by hand with steps 1-3 of algorithms.md (comments show the walk).
"""

from __future__ import annotations

import polars as pl
import pytest

from ml_tracelens.core import analyze, build_tree, critical_path
from ml_tracelens.core.tree import group_keys
from tests.factories import by_span, make_spans, parse_spans


def cp_of(text: str) -> dict[str, object]:
    return by_span(critical_path(parse_spans(text)))


# algorithms.md, "Critical path", the vectors table verbatim.
@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ("A[0,100]; B[10,60](A)", {"A": 50, "B": 50}),
        ("A[0,100]; B[10,60](A); C[20,30](B)", {"A": 50, "B": 40, "C": 10}),
        (
            "A[0,100]; B[10,70](A); C[25,45](B); D[30,50](B)",
            {"A": 40, "B": 40, "C": 0, "D": 20},
        ),
        (
            "A[0,80]; B[10,30](A); C[20,45](A); D[40,65](A)",
            {"A": 35, "B": 20, "C": 0, "D": 25},
        ),
        ("A[0,100]; B[10,30](A); C[30,50](A)", {"A": 60, "B": 20, "C": 20}),
    ],
)
def test_critical_path_follows_the_vectors_of_algorithms_md(
    spans: str, expected: dict[str, int]
) -> None:
    assert cp_of(spans) == expected


def test_child_overflowing_an_edge_is_cut_at_it() -> None:
    # B[60,130] is cut to [60,100]; C[-20,20] to [0,20]. Walk A: B (A gets 0), then C ends
    # at 20 <= 60: A gets [20,60] 40, C gets [0,20] and A nothing before it.
    assert cp_of("A[0,100]; B[60,130](A); C[-20,20](A)") == {"A": 40, "B": 40, "C": 20}


def test_clipping_cascades_to_grandchildren() -> None:
    # B is cut to [50,100]; its child C[90,140] is cut to [90,100] inside the cut B.
    assert cp_of("A[0,100]; B[50,150](A); C[90,140](B)") == {"A": 50, "B": 40, "C": 10}


def test_child_wholly_outside_is_dropped_with_its_subtree() -> None:
    # O[120,200] lies after A; its child P[130,140] would otherwise look like the last to end.
    result = analyze(parse_spans("A[0,100]; B[10,20](A); O[120,200](A); P[130,140](O)"))
    assert by_span(result.spans) == {"A": 90, "B": 10, "O": 0, "P": 0}
    assert by_span(result.spans, "outside_parent") == {
        "A": False,
        "B": False,
        "O": True,
        "P": False,
    }


def test_equal_ends_prefer_the_later_start_then_the_larger_span_id() -> None:
    # B and C end together; C starts later, so C is walked and B (ending at 60 > 40) is not:
    # A keeps [60,100] and [0,40].
    assert cp_of("A[0,100]; B[10,60](A); C[40,60](A)") == {"A": 80, "B": 0, "C": 20}
    # Identical intervals: the larger span id wins, whichever row comes first.
    assert cp_of("A[0,10]; B[2,6](A); C[2,6](A)") == {"A": 6, "B": 0, "C": 4}
    assert cp_of("A[0,10]; C[2,6](A); B[2,6](A)") == {"A": 6, "C": 4, "B": 0}


def test_touching_sequential_siblings_are_all_on_the_path() -> None:
    assert cp_of("A[0,40]; B[0,10](A); C[10,20](A); D[20,30](A); E[30,40](A)") == {
        "A": 0,
        "B": 10,
        "C": 10,
        "D": 10,
        "E": 10,
    }


def test_zero_length_children_own_nothing_and_do_not_hang() -> None:
    assert cp_of("A[0,10]; Z[10,10](A); Y[5,5](A); B[2,5](A)") == {
        "A": 7,
        "Z": 0,
        "Y": 0,
        "B": 3,
    }


def test_of_parallel_stages_the_path_takes_the_one_that_ends_last() -> None:
    # gateway -> validate, fetch_features || profile_lookup, preprocess, inference, postprocess.
    spans = parse_spans(
        """
        gw[0,100]
        validate[1,5](gw)
        features[5,30](gw)
        profile[5,25](gw)
        pre[30,40](gw)
        infer[40,90](gw)
        post[90,98](gw)
        """
    )
    # Walk: post [90,98], infer [40,90], pre [30,40], features (ends 30) [5,30], then
    # profile ends at 25 > 5: skipped; validate [1,5]. gw keeps [98,100] and [0,1].
    assert by_span(critical_path(spans)) == {
        "gw": 3,
        "validate": 4,
        "features": 25,
        "profile": 0,
        "pre": 10,
        "infer": 50,
        "post": 8,
    }


def test_every_top_gets_its_own_path_across_interleaved_traces() -> None:
    t1 = parse_spans("A[0,100]; B[10,60](A)", trace_id="t1")
    t2 = parse_spans("A[0,50]; B[0,50](A); X[60,70](gone)", trace_id="t2")
    mixed = pl.concat([t2.slice(1), t1.slice(1), t1.slice(0, 1), t2.slice(0, 1)])
    result = critical_path(mixed)
    by_key = {(t, s): v for t, s, v in result.rows()}
    assert by_key == {
        ("t1", "A"): 50,
        ("t1", "B"): 50,
        ("t2", "A"): 0,
        ("t2", "B"): 50,
        ("t2", "X"): 10,
    }


def test_untimed_top_has_no_path() -> None:
    assert cp_of("U[?,?]; B[1,3](U)") == {"U": None, "B": 0}


def test_every_one_of_many_sequential_children_is_on_the_path() -> None:
    # 2,000 sequential calls with gaps of 1: every call is on the path, the root keeps the gaps.
    n = 2_000
    rows = [("root", None, 0, 3 * n + 1)] + [
        (f"c{i}", "root", 3 * i + 1, 3 * i + 3) for i in range(n)
    ]
    cp = critical_path(make_spans(rows)).get_column("cp_ns").to_list()
    assert cp == [n + 1] + [2] * n


def test_flat_trace_of_overlapping_children_picks_a_greedy_chain() -> None:
    # Children [i, i+10] for i in 0..99 under [0,110]: the walk takes [100,110], then the
    # child ending at 100 ([90,100]), ... every tenth child: 11 children of 10 each.
    rows = [("root", None, 0, 110)] + [(f"c{i:03d}", "root", i, i + 10) for i in range(101)]
    cp = by_span(critical_path(make_spans(rows)))
    on_path = sorted(k for k, v in cp.items() if v and k != "root")
    assert on_path == [f"c{i:03d}" for i in range(0, 101, 10)]
    assert cp["root"] == 0


def test_critical_path_accepts_a_prepared_tree() -> None:
    tree = build_tree(parse_spans("A[0,100]; B[10,60](A)"))
    assert critical_path(tree).get_column("cp_ns").to_list() == [50, 50]


def test_group_keys_use_int64_when_they_fit() -> None:
    assert group_keys(1_000_000, 10**12) == (pl.Int64, 2**40)
    assert group_keys(1_000_000, 2**60)[0] == pl.Int128


# --- slack (algorithms.md, "Trees from log lines", step 4) -------------------------------------
# A request logged with millisecond end times (ε = 10 here): true stages pre[996,1030],
# inf[1026,1090] (logged end floored, so they seem to overlap by 4) and post[1093,1100] under
# the root R[994,1100].
COARSE = "R[994,1100]; pre[996,1030](R); inf[1026,1090](R); post[1093,1100](R)"


def cp_with_slack(text: str, slack: int) -> dict[str, object]:
    spans = parse_spans(text).with_columns(slack_ns=pl.lit(slack, dtype=pl.Int64))
    return by_span(critical_path(spans))


def test_without_slack_a_rounded_neighbour_drops_off_the_path() -> None:
    # Walk R (bound 1100): post (R gets 0), T=1093: inf ends 1090 (R gets 3), T=1026: pre ends
    # 1030 > 1026, so R takes [994,1026] = 32 and pre's real work is lost.
    assert cp_with_slack(COARSE, 0) == {"R": 35, "pre": 0, "inf": 64, "post": 7}
    assert cp_of(COARSE) == {"R": 35, "pre": 0, "inf": 64, "post": 7}


def test_slack_keeps_the_rounded_neighbour_on_the_path() -> None:
    # T=1026: pre ends 1030 <= 1026 + 10 and starts before 1026: picked, clipped to [996,1026]
    # (30); R keeps [994,996] (2) + [1090,1093] (3) = 5. Sections still sum to 106.
    result = cp_with_slack(COARSE, 10)
    assert result == {"R": 5, "pre": 30, "inf": 64, "post": 7}
    assert sum(result.values()) == 1100 - 994  # type: ignore[arg-type]


def test_a_cut_reaches_down_the_first_picks() -> None:
    # pre is cut to [996,1026]; its child c[1000,1030] is its first pick and takes that bound:
    # c gets [1000,1026] = 26, pre keeps [996,1000] = 4.
    text = COARSE + "; c[1000,1030](pre)"
    result = cp_with_slack(text, 10)
    assert result == {"R": 5, "pre": 4, "c": 26, "inf": 64, "post": 7}
    assert sum(result.values()) == 1100 - 994  # type: ignore[arg-type]


def test_a_sibling_within_the_slack_that_starts_later_is_not_picked() -> None:
    # Bound 60 after B[60,100]: C[62,65] ends within 60 + 10 but starts after 60; A[0,50] ends
    # at 50 and is the next pick. C is nested in B's time but A's child (parent ids say so).
    result = cp_with_slack("P[0,100]; A[0,50](P); B[60,100](P); C[62,65](P)", 10)
    assert result == {"P": 10, "A": 50, "B": 40, "C": 0}
