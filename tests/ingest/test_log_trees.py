"""Span trees from log lines (log_spans.py): algorithms.md's vectors, the nesting rule against a
brute-force reading of it, and random trees logged as lines that must rebuild to themselves."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.ingest import log_nesting, log_spans
from ml_tracelens.ingest.log_spans import (
    DERIVED_ROOT_NAME,
    NO_DURATION,
    NO_REQUEST,
    NO_STAGE,
    NO_TIME,
    spans_from_logs,
    timestamp_resolution_ns,
)
from ml_tracelens.schema import logs_from_columns
from tests.references import brute_force_parents

NONE = pl.Series([], dtype=pl.String)
runner = CliRunner()
MS = 1_000_000
BASE = 1_795_683_136 * 1_000_000_000  # any instant well after the epoch


def lines(*specs: tuple[Any, ...], request: str = "q", **extra: list[Any]) -> pl.DataFrame:
    """Stage lines ``(stage, start, end)`` in units of ``unit`` ns after BASE, logged the
    default way: the timestamp is the end, the duration end - start."""
    unit = extra.pop("unit", [1])[0]
    return logs_from_columns(
        {
            "time_ns": [BASE + end * unit for _, _, end in specs],
            "level": ["info"] * len(specs),
            "correlation_id": [request] * len(specs),
            "stage": [stage for stage, _, _ in specs],
            "duration_ns": [round((end - start) * unit) for _, start, end in specs],
            **extra,
        }
    )


def parents(derived: log_spans.DerivedSpans) -> dict[str, str | None]:
    """stage -> its parent's stage (None for the root)."""
    spans = derived.spans
    names = dict(zip(spans.get_column("span_id"), spans.get_column("name"), strict=True))
    return {
        name: names.get(parent) if parent is not None else None
        for name, parent in zip(
            spans.get_column("name"), spans.get_column("parent_id"), strict=True
        )
    }


# --- algorithms.md, "Trees from log lines": the vectors -----------------------------------------


def test_the_request_line_is_the_root_and_stages_nest_by_time() -> None:
    derived = spans_from_logs(
        lines(("req", 0, 100), ("a", 10, 60), ("b", 20, 30), ("c", 65, 90)),
        known_trace_ids=NONE,
        resolutions=[(4, 0)],
    )
    assert parents(derived) == {"req": None, "a": "req", "b": "a", "c": "req"}
    assert derived.derived_roots == 0
    assert derived.span_lines == 4


def test_without_a_covering_line_a_derived_root_covers_the_request() -> None:
    derived = spans_from_logs(
        lines(("a", 10, 60), ("c", 65, 90)), known_trace_ids=NONE, resolutions=[(2, 0)]
    )
    assert parents(derived) == {
        DERIVED_ROOT_NAME: None,
        "a": DERIVED_ROOT_NAME,
        "c": DERIVED_ROOT_NAME,
    }
    root = derived.spans.filter(pl.col("name") == DERIVED_ROOT_NAME)
    assert root.select("start_ns", "end_ns").row(0) == (BASE + 10, BASE + 90)
    assert derived.derived_roots == 1


def test_a_coarse_clock_nests_within_its_resolution() -> None:
    # True P[0,9.2] and X[0,4.9] ms; end times floored to the millisecond: P[-0.2,9], X[-0.9,4].
    logs = logs_from_columns(
        {
            "time_ns": [BASE + 9 * MS, BASE + 4 * MS],
            "correlation_id": ["q", "q"],
            "stage": ["P", "X"],
            "duration_ns": [9_200_000, 4_900_000],
        }
    )
    assert timestamp_resolution_ns(logs.get_column("time_ns")) == MS
    nested = spans_from_logs(logs, known_trace_ids=NONE)
    assert parents(nested) == {"P": None, "X": "P"}
    assert nested.slack_ns.to_list() == [MS, MS]
    # Without the slack X starts 0.7 ms before P and is P's sibling under a derived root.
    exact = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(2, 0)])
    assert parents(exact) == {
        DERIVED_ROOT_NAME: None,
        "P": DERIVED_ROOT_NAME,
        "X": DERIVED_ROOT_NAME,
    }


@pytest.mark.parametrize(
    ("times", "resolution"),
    [([1_000_000, 5_000_000], MS), ([1_000, 5_000_000], 1_000), ([1_000, 5_000_001], 0), ([], 0)],
)
def test_timestamp_resolution_is_the_coarsest_unit_every_time_is_a_multiple_of(
    times: list[int], resolution: int
) -> None:
    assert timestamp_resolution_ns(pl.Series(times, dtype=pl.Int64)) == resolution


def test_equal_intervals_nest_in_line_order() -> None:
    derived = spans_from_logs(
        lines(("outer", 0, 10), ("inner", 0, 10)), known_trace_ids=NONE, resolutions=[(2, 0)]
    )
    assert parents(derived) == {"outer": None, "inner": "outer"}


def test_partial_overlaps_are_siblings_under_the_smallest_interval_containing_both() -> None:
    derived = spans_from_logs(
        lines(("req", 0, 100), ("a", 10, 50), ("b", 40, 70), ("big", 5, 95)),
        known_trace_ids=NONE,
        resolutions=[(4, 0)],
    )
    assert parents(derived) == {"req": None, "big": "req", "a": "big", "b": "big"}


def test_log_time_start_reads_the_timestamp_as_the_start() -> None:
    logs = logs_from_columns(
        {
            "time_ns": [BASE, BASE + 10],
            "correlation_id": ["q", "q"],
            "stage": ["req", "a"],
            "duration_ns": [100, 20],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, log_time="start", resolutions=[(2, 0)])
    spans = derived.spans.select("name", "start_ns", "end_ns").rows()
    assert spans == [("req", BASE, BASE + 100), ("a", BASE + 10, BASE + 30)]
    assert parents(derived) == {"req": None, "a": "req"}


def test_parent_ids_decide_over_time() -> None:
    # By time "b" would nest under "a"; the ids say both are children of the root.
    logs = lines(
        ("req", 0, 100),
        ("a", 10, 60),
        ("b", 20, 30),
        span_id=["r-1", "a-1", "b-1"],
        parent_span_id=[None, "r-1", "r-1"],
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)])
    assert parents(derived) == {"req": None, "a": "req", "b": "req"}
    assert derived.spans.get_column("span_id").to_list() == ["r-1", "a-1", "b-1"]


def test_several_tops_by_parent_ids_get_a_derived_root() -> None:
    logs = lines(
        ("a", 10, 60), ("b", 20, 30), ("c", 40, 50), span_id=["a1", "b1", "c1"],
        parent_span_id=[None, None, "a1"],
    )  # fmt: skip
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)])
    assert parents(derived) == {
        DERIVED_ROOT_NAME: None,
        "a": DERIVED_ROOT_NAME,
        "b": DERIVED_ROOT_NAME,
        "c": "a",
    }
    assert derived.derived_roots == 1


def test_a_parent_id_no_line_has_makes_an_orphan_not_a_top() -> None:
    # As a span whose parent is not in the dump: it keeps the id, and calls for no derived root.
    logs = lines(("a", 10, 60), ("b", 20, 30), span_id=["a1", "b1"], parent_span_id=["gone", "a1"])
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(2, 0)])
    spans = derived.spans
    names = spans.get_column("name")
    ids = dict(zip(names, spans.get_column("span_id"), strict=True))
    assert dict(zip(names, spans.get_column("parent_id"), strict=True)) == {
        "a": "gone",
        "b": ids["a"],
    }
    logs = lines(("a", 10, 60), ("b", 20, 30), span_id=["a1", "b1"], parent_span_id=["x", "y"])
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(2, 0)])
    assert derived.derived_roots == 0
    assert derived.spans.get_column("parent_id").to_list() == ["x", "y"]


def test_error_lines_make_error_spans_with_their_message() -> None:
    logs = lines(
        ("req", 0, 100),
        ("a", 10, 60),
        ("b", 70, 80),
        error=[False, True, True],
        error_message=[None, "HTTP 500", None],
        message=["done", "a failed", "b failed"],
    )
    spans = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(3, 0)]).spans
    assert spans.select("name", "status", "status_message").rows() == [
        ("req", "unset", None),
        ("a", "error", "HTTP 500"),
        ("b", "error", "b failed"),
    ]


def test_every_line_that_is_no_span_is_counted_by_reason() -> None:
    logs = logs_from_columns(
        {
            "time_ns": [BASE, BASE, None, BASE, BASE, BASE, BASE],
            "correlation_id": ["q", "q", "q", "q", None, "q", "q"],
            "stage": [None, "a", "b", "c", "d", "e", "f"],
            "duration_ns": [None, None, 5, None, 5, 5, None],
            "unread_reason": [
                None,
                None,
                None,
                "duration not a number",
                None,
                None,
                "negative duration",
            ],
            "source": [f"app.log:{n}" for n in range(1, 8)],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE)
    assert derived.not_spans == {
        NO_STAGE: 1,
        NO_DURATION: 1,
        NO_TIME: 1,
        "duration not a number": 1,
        NO_REQUEST: 1,
        "negative duration": 1,
    }
    assert derived.span_lines == 1
    assert sum(derived.not_spans.values()) + derived.span_lines == logs.height
    assert derived.unreadable_stage_lines == {
        NO_TIME: 1,
        "duration not a number": 1,
        "negative duration": 1,
    }
    assert derived.problems == [
        ("app.log:3", NO_TIME),
        ("app.log:4", "duration not a number"),
        ("app.log:7", "negative duration"),
    ]


# --- the rule against a brute-force reading of it (tests/references.py) -----------------------


def derived_parent_indexes(intervals: list[tuple[int, int]], eps: int) -> list[int | None]:
    logs = logs_from_columns(
        {
            "time_ns": [BASE + end for _, end in intervals],
            "correlation_id": ["q"] * len(intervals),
            "stage": [f"s{i}" for i in range(len(intervals))],
            "duration_ns": [end - start for start, end in intervals],
        }
    )
    derived = spans_from_logs(logs, known_trace_ids=NONE, resolutions=[(len(intervals), eps)])
    spans = derived.spans.filter(pl.col("name") != DERIVED_ROOT_NAME)
    index = {sid: int(name[1:]) for sid, name in zip(spans["span_id"], spans["name"], strict=True)}
    by_stage = dict(zip(spans["name"], spans["parent_id"], strict=True))
    return [index.get(by_stage[f"s{i}"]) for i in range(len(intervals))]  # type: ignore[arg-type]


interval_lists = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(intervals=interval_lists, eps=st.sampled_from([0, 1, 3]))
def test_nesting_follows_the_rule_on_any_intervals(
    intervals: list[tuple[int, int]], eps: int
) -> None:
    assert derived_parent_indexes(intervals, eps) == brute_force_parents(intervals, eps)


def test_big_requests_nest_by_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    intervals = [(s, s + rng.randint(0, 50)) for s in (rng.randint(0, 400) for _ in range(90))]
    want = brute_force_parents(intervals, 2)
    assert derived_parent_indexes(intervals, 2) == want  # above PAIRED_MAX_LINES: keyed join
    monkeypatch.setattr(log_nesting, "PAIRED_MAX_LINES", 1000)
    assert derived_parent_indexes(intervals, 2) == want  # the paired join


# --- random trees logged as lines rebuild to themselves ------------------------------------------


@st.composite
def trees(draw: st.DrawFn, *, time_determined: bool) -> list[tuple[int, int, int | None]]:
    """(start, end, parent index) in creation order: a root, then per span one shape of
    children: sequential, parallel (two leaves overlapping in time), one equal to it, or one of
    zero length. ``time_determined`` keeps to what time alone can tell (siblings never start
    together and never contain each other); otherwise siblings may also start together."""
    spans: list[tuple[int, int, int | None]] = [(0, draw(st.integers(20, 400)), None)]
    frontier = [0]
    shapes = ["none", "sequential", "parallel", "equal", "zero"]
    if not time_determined:
        shapes.append("together")
    while frontier and len(spans) < 25:
        parent = frontier.pop(0)
        start, end = spans[parent][:2]
        shape = draw(st.sampled_from(shapes))
        if shape == "equal":
            spans.append((start, end, parent))
            frontier.append(len(spans) - 1)
        elif shape == "zero" and end - start >= 2:
            at = draw(st.integers(start + 1, end - 1))
            spans.append((at, at, parent))
        elif shape == "sequential" and end - start >= 6:
            cuts = sorted(draw(st.sets(st.integers(start + 1, end - 1), min_size=2, max_size=4)))
            for a, b in itertools.pairwise(cuts):
                spans.append((a, b, parent))
                frontier.append(len(spans) - 1)
        elif shape == "parallel" and end - start >= 6:
            a = draw(st.integers(start + 1, end - 4))
            x = draw(st.integers(a + 2, end - 1))
            b = draw(st.integers(a + 1, x - 1))
            spans.append((a, x, parent))
            spans.append((b, draw(st.integers(x + 1, end)), parent))
        elif shape == "together" and end - start >= 4:
            a = draw(st.integers(start, end - 2))
            spans.append((a, draw(st.integers(a + 1, end)), parent))
            spans.append((a, draw(st.integers(a, end)), parent))
    return spans


def logged(
    spans: list[tuple[int, int, int | None]], order: list[int], *, with_ids: bool
) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {
        "time_ns": [BASE + spans[i][1] for i in order],
        "correlation_id": ["q"] * len(order),
        "stage": [f"s{i}" for i in order],
        "duration_ns": [spans[i][1] - spans[i][0] for i in order],
    }
    if with_ids:
        columns["span_id"] = [f"{i + 1:016x}" for i in order]
        columns["parent_span_id"] = [
            None if spans[i][2] is None else f"{spans[i][2] + 1:016x}"
            for i in order  # type: ignore[operator]
        ]
    return logs_from_columns(columns)


@settings(max_examples=150, deadline=None)
@given(tree=trees(time_determined=True), seed=st.integers(0, 2**16))
def test_trees_rebuild_from_shuffled_lines_by_time(
    tree: list[tuple[int, int, int | None]], seed: int
) -> None:
    # Equal intervals are the one case the line order decides: they keep their creation order.
    order = list(range(len(tree)))
    random.Random(seed).shuffle(order)
    order = _keep_twins_in_order(order, tree)
    derived = spans_from_logs(
        logged(tree, order, with_ids=False), known_trace_ids=NONE, resolutions=[(len(tree), 0)]
    )
    want = {f"s{i}": None if p is None else f"s{p}" for i, (_, _, p) in enumerate(tree)}
    assert parents(derived) == want
    assert derived.derived_roots == 0


def _has_twin(i: int, tree: list[tuple[int, int, int | None]]) -> bool:
    return any(j != i and tree[j][:2] == tree[i][:2] for j in range(len(tree)))


def _keep_twins_in_order(order: list[int], tree: list[tuple[int, int, int | None]]) -> list[int]:
    """``order`` with the spans that share an interval put back in creation order."""
    twins = sorted(i for i in order if _has_twin(i, tree))
    slots = [k for k, i in enumerate(order) if _has_twin(i, tree)]
    result = list(order)
    for slot, i in zip(slots, twins, strict=True):
        result[slot] = i
    return result


@settings(max_examples=150, deadline=None)
@given(tree=trees(time_determined=False), seed=st.integers(0, 2**16))
def test_any_tree_rebuilds_from_shuffled_lines_with_parent_ids(
    tree: list[tuple[int, int, int | None]], seed: int
) -> None:
    order = list(range(len(tree)))
    random.Random(seed).shuffle(order)
    derived = spans_from_logs(
        logged(tree, order, with_ids=True), known_trace_ids=NONE, resolutions=[(len(tree), 0)]
    )
    want = {f"s{i}": None if p is None else f"s{p}" for i, (_, _, p) in enumerate(tree)}
    assert parents(derived) == want


# --- through the command line --------------------------------------------------------------------


def test_unreadable_stage_lines_are_warned_about_and_summarised(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        '{"timestamp": "2026-11-26T08:52:16.100Z", "request_id": "r", "stage": "a", "duration_ms": 5}\n'
        '{"timestamp": "2026-11-26T08:52:16.200Z", "request_id": "r", "stage": "b", "duration_ms": "abc"}\n'
        '{"timestamp": "2026-11-26T08:52:16.300Z", "request_id": "r", "stage": "c", "duration_ms": -4}\n'
        '{"timestamp": "2026-02-30T08:52:16.300Z", "request_id": "r", "stage": "d", "duration_ms": 4}\n'
        '{"timestamp": "2026-11-26T08:52:16.400Z", "request_id": "r", "event": "done"}\n'
    )
    result = runner.invoke(app, ["summary", str(log), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["log_lines_as_spans"] == 1
    assert summary["log_lines_not_spans"] == {
        "duration not a number": 1,
        "negative duration": 1,
        "unreadable time": 1,
        NO_STAGE: 1,
    }
    warning = next(line for line in result.stderr.splitlines() if "stage log line" in line)
    assert "3 stage log lines not turned into spans" in warning
    assert f"{log}:2: duration not a number" in warning
    assert f"{log}:3: negative duration" in warning
    assert f"{log}:4: unreadable time" in warning
    strict = runner.invoke(app, ["latency", str(log), "--strict"])
    assert strict.exit_code == 2
    assert f"{log}:2" in strict.stderr


def test_log_time_start_is_set_on_the_command_line_or_in_the_config_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One request: req logged at 0 with 100 ms, a at 10 ms with 20 ms. As end times: req[-100,0]
    # and a[-10,10] overlap partially (two tops, a derived root); as start times a nests in req.
    log = tmp_path / "app.log"
    log.write_text(
        '{"timestamp": "2026-11-26T08:52:16.000Z", "request_id": "r", "stage": "req", "duration_ms": 100}\n'
        '{"timestamp": "2026-11-26T08:52:16.010Z", "request_id": "r", "stage": "a", "duration_ms": 20}\n'
    )
    monkeypatch.chdir(tmp_path)

    def stages(*extra: str) -> set[str]:
        result = runner.invoke(app, ["latency", str(log), "-f", "json", *extra])
        assert result.exit_code == 0, result.stderr
        return {row["stage"] for row in json.loads(result.stdout)["rows"]}

    assert stages() == {"req", "a", DERIVED_ROOT_NAME}
    assert stages("--log-time", "start") == {"req", "a"}
    (tmp_path / "tracelens.toml").write_text('log_time = "start"\n')
    assert stages() == {"req", "a"}
    assert stages("--log-time", "end") == {"req", "a", DERIVED_ROOT_NAME}
    bad = runner.invoke(app, ["latency", str(log), "--log-time", "middle"])
    assert bad.exit_code == 2
    assert "--log-time 'middle': expected end or start" in bad.stderr


def test_no_spans_names_the_missing_keys_and_the_fix(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        '{"ts": "2026-11-26T08:52:16Z", "rid": "a", "step": "x", "took": 5}\n'
        '{"ts": "2026-11-26T08:52:17Z", "rid": "a", "step": "y", "took": 5}\n'
    )
    result = runner.invoke(app, ["latency", str(log)])
    assert result.exit_code == 2
    message = result.stderr
    assert "no line has a duration key (map it with --field duration=KEY" in message
    assert "a request or trace id key (map it with --field correlation_id=KEY)" in message
    assert "keys in the first lines: rid, step, took, ts" in message
    assert "stage key" not in message  # "step" is a stage alias
    fixed = runner.invoke(
        app, ["latency", str(log), "--field", "duration=took", "--field", "correlation_id=rid"]
    )
    assert fixed.exit_code == 0, fixed.stderr


def test_a_line_whose_parent_id_no_line_has_is_an_orphan_as_a_span_would_be(
    tmp_path: Path,
) -> None:
    from tests.factories import otlp_document, otlp_span

    # (span id, parent id, stage, start ms, end ms); "lost" names a span the dump does not hold.
    tree = [
        ("a0", None, "POST /predict", 0, 100),
        ("a1", "a0", "fetch", 20, 80),
        ("a2", "a0", "infer", 80, 95),
        ("a3", "lost", "cache", 45, 50),
    ]
    start = BASE
    log = tmp_path / "app.log.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "timestamp": start + end * MS,
                    "trace_id": "0" * 31 + "1",
                    "span_id": span,
                    **({"parent_span_id": parent} if parent else {}),
                    "stage": stage,
                    "duration_ms": end - begin,
                }
            )
            + "\n"
            for span, parent, stage, begin, end in tree
        )
    )
    spans = [
        otlp_span("0" * 31 + "1", span, parent, stage, start + begin * MS, start + end * MS)
        for span, parent, stage, begin, end in tree
    ]
    dump = tmp_path / "spans.otlp.jsonl"
    dump.write_text(json.dumps(otlp_document(spans, service=None)) + "\n")

    def report(command: str, path: Path) -> dict[str, Any]:
        result = CliRunner().invoke(app, [command, str(path), "-f", "json", "--no-cache", "-q"])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    summary = report("summary", log)
    assert (summary["orphan_spans"], summary["derived_request_roots"]) == (1, 0)
    from_logs, from_spans = report("latency", log), report("latency", dump)
    assert from_logs["rows"] == from_spans["rows"]
    assert from_logs["requests"] == from_spans["requests"]
