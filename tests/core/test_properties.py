"""Properties of the analysis on random dumps, and a cross-check against a plain reference.

The reference below follows algorithms.md literally, one trace and one span at a time: self
time from a sorted sweep over the clipped children, the critical path by the walk of steps 1-3
with an explicit stack of (span, bound) pairs. It shares no code with ml_tracelens.core.
Interpretations it makes explicit (the same ones the core documents): children are clipped to
their already clipped parent; a child with nothing left after clipping (wholly outside, or of
zero length) owns no time and is not walked; ties on end go to the later start, then the
larger span id; spans without timing (or ending before they start) are not walked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core import analyze
from tests.factories import make_spans

Key = tuple[str, str]


@dataclass(frozen=True)
class Span:
    trace: str
    id: str
    parent: str | None
    start: int | None
    end: int | None
    error: bool = False

    @property
    def key(self) -> Key:
        return (self.trace, self.id)

    @property
    def timed(self) -> bool:
        return self.start is not None and self.end is not None and self.end >= self.start


def reference(spans: list[Span]) -> dict[Key, dict[str, object]]:
    """self_ns, cp_ns, top and error_originated per span, computed the slow, obvious way."""
    known = {s.key: s for s in spans}
    children: dict[Key, list[Span]] = defaultdict(list)
    tops = []
    for s in spans:
        if s.parent is not None and (s.trace, s.parent) in known:
            children[(s.trace, s.parent)].append(s)
        else:
            tops.append(s)

    out: dict[Key, dict[str, object]] = {}
    for s in spans:
        own = None
        if s.timed:
            assert s.start is not None
            assert s.end is not None
            covered, reach = 0, s.start
            clipped = sorted(
                (max(c.start, s.start), min(c.end, s.end)) for c in children[s.key] if c.timed
            )
            for a, b in clipped:
                if b > max(a, reach):
                    covered += b - max(a, reach)
                reach = max(reach, b)
            own = s.end - s.start - covered
        out[s.key] = {"self_ns": own, "cp_ns": 0 if s.timed else None, "error_below": False}

    for top in tops:
        # Tops and descendants, iteratively: the top of every span, errors seen below.
        stack = [top]
        while stack:
            s = stack.pop()
            out[s.key]["top_id"] = top.id
            stack.extend(children[s.key])
        if not top.timed:
            continue
        clip = {top.key: (top.start, top.end)}
        walk = [(top, top.end)]
        while walk:
            s, bound = walk.pop()
            start, end = clip[s.key]
            eligible = []
            for c in children[s.key]:
                if not c.timed:
                    continue
                a, b = max(c.start, start), min(c.end, end)
                if b <= a:
                    continue
                clip[c.key] = (a, b)
                if b <= bound:
                    eligible.append(c)
            if not eligible:
                out[s.key]["cp_ns"] += bound - start
                continue
            pick = max(eligible, key=lambda c: (clip[c.key][1], clip[c.key][0], c.id))
            out[s.key]["cp_ns"] += bound - clip[pick.key][1]
            walk.append((s, clip[pick.key][0]))
            walk.append((pick, clip[pick.key][1]))

    for s in spans:
        if s.error:
            # Walk up from each erroring span, marking ancestors (bounded: the data is acyclic).
            parent = s.parent
            while parent is not None and (s.trace, parent) in known:
                out[(s.trace, parent)]["error_below"] = True
                parent = known[(s.trace, parent)].parent
    for s in spans:
        below = out[s.key].pop("error_below")
        out[s.key]["error_originated"] = s.error and not below
    return out


@st.composite
def traces(draw: st.DrawFn, trace_id: str) -> list[Span]:
    n = draw(st.integers(1, 18))
    names = draw(st.permutations([f"x{i:02d}" for i in range(n)]))
    spans: list[Span] = []
    for i in range(n):
        parent: Span | None = None
        parent_id: str | None = None
        if i:
            how = draw(st.sampled_from(["child"] * 8 + ["root", "orphan"]))
            if how == "child":
                parent = spans[draw(st.integers(0, i - 1))]
                parent_id = parent.id
            elif how == "orphan":
                parent_id = "missing"
        if draw(st.integers(0, 19)) == 0:
            start, end = None, None
        elif parent is not None and parent.timed and draw(st.booleans()):
            # Inside the parent, or overflowing it by a little: nested and parallel siblings.
            assert parent.start is not None
            assert parent.end is not None
            start = draw(st.integers(parent.start - 3, parent.end))
            end = draw(st.integers(start, parent.end + 3))
        else:
            start = draw(st.integers(-5, 40))
            end = start + draw(st.integers(-1, 30))
        error = draw(st.integers(0, 3)) == 0
        spans.append(Span(trace_id, names[i], parent_id, start, end, error))
    return spans


@st.composite
def dumps(draw: st.DrawFn) -> list[Span]:
    count = draw(st.integers(1, 3))
    return [s for t in range(count) for s in draw(traces(f"t{t}"))]


def frame_of(spans: list[Span]) -> pl.DataFrame:
    return make_spans(
        {
            "trace": s.trace,
            "id": s.id,
            "parent": s.parent,
            "start": s.start,
            "end": s.end,
            "status": "error" if s.error else "ok",
        }
        for s in spans
    )


def results(frame: pl.DataFrame) -> dict[Key, dict[str, object]]:
    columns = ["self_ns", "cp_ns", "top_id", "error_originated", "depth", "is_orphan"]
    spans = analyze(frame).spans
    return {
        (row["trace_id"], row["span_id"]): {c: row[c] for c in columns}
        for row in spans.iter_rows(named=True)
    }


SETTINGS = settings(max_examples=80, deadline=None)


@settings(max_examples=150, deadline=None)
@given(dumps())
def test_self_time_critical_path_and_error_origin_match_the_plain_reference(
    spans: list[Span],
) -> None:
    got = results(frame_of(spans))
    want = reference(spans)
    fields = ["self_ns", "cp_ns", "top_id", "error_originated"]
    assert {k: {f: v[f] for f in fields} for k, v in got.items()} == want


@SETTINGS
@given(dumps())
def test_sections_sum_to_each_top_duration_and_stay_in_bounds(spans: list[Span]) -> None:
    frame = analyze(frame_of(spans)).spans
    duration = pl.col("end_ns") - pl.col("start_ns")
    tops = frame.filter(pl.col("is_root") | pl.col("is_orphan"))
    sums = frame.group_by("trace_id", "top_id").agg(pl.col("cp_ns").sum())
    for trace_id, top_id, start, end in tops.select(
        "trace_id", "span_id", "start_ns", "end_ns"
    ).iter_rows():
        if start is None or end is None or end < start:
            continue
        (total,) = sums.filter(
            (pl.col("trace_id") == trace_id) & (pl.col("top_id") == top_id)
        ).get_column("cp_ns")
        assert total == end - start
    timed = frame.filter(duration >= 0)
    assert timed.filter((pl.col("cp_ns") < 0) | (pl.col("cp_ns") > duration)).is_empty()
    assert timed.filter((pl.col("self_ns") < 0) | (pl.col("self_ns") > duration)).is_empty()
    untimed = frame.filter(~(duration >= 0).fill_null(False))
    assert untimed.get_column("cp_ns").null_count() == untimed.height
    assert untimed.get_column("self_ns").null_count() == untimed.height


@SETTINGS
@given(dumps(), st.randoms(use_true_random=False))
def test_independent_of_row_order_and_trace_interleaving(spans: list[Span], rng) -> None:
    shuffled = list(spans)
    rng.shuffle(shuffled)
    together = results(frame_of(spans))
    assert results(frame_of(shuffled)) == together
    alone: dict[Key, dict[str, object]] = {}
    for trace_id in {s.trace for s in spans}:
        alone.update(results(frame_of([s for s in spans if s.trace == trace_id])))
    assert alone == together


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=60))
def test_a_chain_of_nested_spans_puts_every_span_on_the_path(insets: list) -> None:
    # Each span sits strictly inside its parent, leaving a gap at both ends.
    total = sum(a + b for a, b in insets) + 1
    rows, start, end = [], 0, total
    for i, (left, right) in enumerate([(0, 0), *insets]):
        start, end = start + left, end - right
        rows.append((f"s{i}", f"s{i - 1}" if i else None, start, end))
    frame = analyze(make_spans(rows)).spans
    cp = frame.get_column("cp_ns").to_list()
    assert all(v > 0 for v in cp)
    assert sum(cp) == total
    assert frame.get_column("depth").to_list() == list(range(len(rows)))


def reference_cycles(parents: dict[str, str | None]) -> list[set[str]]:
    """The cycles of a parent map, by walking from every span with three colours."""
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = done
    cycles = []
    for first in parents:
        walk, node = [], first
        while node is not None and node in parents and node not in state:
            state[node] = 1
            walk.append(node)
            node = parents[node]
        if node is not None and state.get(node) == 1:
            cycles.append(set(walk[walk.index(node) :]))
        for visited in walk:
            state[visited] = 2
    return cycles


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 30).flatmap(lambda n: st.lists(st.integers(-2, n - 1), min_size=n, max_size=n))
)
def test_random_parent_maps_with_cycles_are_repaired(choices: list[int]) -> None:
    # Any span may point at any other, at itself, at nothing (-1) or at a missing id (-2).
    ids = [f"s{i:02d}" for i in range(len(choices))]
    parents = {
        ids[i]: None if c == -1 else "gone" if c == -2 else ids[c] for i, c in enumerate(choices)
    }
    cycles = reference_cycles(parents)
    result = analyze(make_spans((i, p, 0, 1) for i, p in parents.items()))
    frame = result.spans
    assert result.structure.cycles_broken == len(cycles)
    roots = set(frame.filter("is_root").get_column("span_id"))
    assert roots == {i for i, p in parents.items() if p is None} | {min(c) for c in cycles}
    # The repaired forest is consistent: a child is one deeper than its parent, same top.
    depth = dict(zip(frame.get_column("span_id"), frame.get_column("depth"), strict=True))
    top = dict(zip(frame.get_column("span_id"), frame.get_column("top_id"), strict=True))
    for span_id, parent_id in frame.select("span_id", "parent_id").iter_rows():
        if parent_id in depth:
            assert depth[span_id] == depth[parent_id] + 1
            assert top[span_id] == top[parent_id]
        else:
            assert depth[span_id] == 0
            assert top[span_id] == span_id
