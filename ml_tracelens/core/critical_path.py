"""Critical path of every trace at once: the "last returning child" walk of algorithms.md.

The walk (steps 1-3 there): walk span s with bound T = s.end; among s's children ending at or
before T take the one that ends last (ties: later start, then larger span id), give s the
section [child.end, T], walk the child with bound child.end, set T = child.start and repeat;
with no such child give s [s.start, T]. Section lengths sum to the top's duration.

Two observations turn the walk into whole-dump array operations instead of a frontier advanced
one path section per step (which needs as many steps as the longest sequence of sections, e.g.
100,000 steps for a flat trace of sequential calls):

1. A span is always walked with T = its own (clipped) end, so the children it picks depend on
   nothing but its children. The picks form a chain: ``first`` = the child ending last, and
   ``next(c)`` = the sibling ending last at or before ``c.start``. ``next`` is a static pointer,
   computed for every child of every trace by ONE as-of join (by parent, child end <= c.start).
   The chain members are the pointers reachable from ``first``: marked by pointer doubling in
   O(log L) gathers, L = the longest chain.
2. A span is on the path iff it is a top, or it is in its parent's chain and its parent is on
   the path: an "any over ancestors" fold, O(log D) gathers with the tree's jump tables
   (D = max depth). Its critical-path time is its clipped length minus the clipped lengths of
   its chain children (those sections belong to the children), so the sum over a tree telescopes
   to the top's duration.

Clipping cascades: each span is cut to the intersection of its interval with every ancestor's
(a max/min fold over ancestors), so a child wholly outside its parent, and its whole subtree,
clip to nothing and are left out. Zero-length clipped children own no time and are left out too
(they would otherwise be picked forever at the same bound). Ties within a parent on end time
are settled before the join: of children with equal end only the one with the later start (then
larger span id) can ever be picked.

Slack (log-derived trees, algorithms.md "Trees from log lines" step 4): with a ``slack_ns``
column ε, a sibling ending up to ε after the bound still qualifies (when it starts before the
bound), its section clipped to the bound. ``next`` is then found by a second as-of join on
``start + ε``; a span's bound is its clipped end cut to the start of the sibling picked before
it, and a first pick inherits its parent's bound (a min-fold up the runs of first-pick edges).
Own time is the bounded length less the chain children's bounded lengths, floored at zero: the
sections still partition the top's interval except in the rare case of a child starting within
the last ε of a cut parent. Without the column nothing changes.

Cost for n spans: one sort and one as-of join (O(n log n)), plus O(log L + log D) gathers of
length n. Spans without timing (or ending before they start) get null and cut their subtree off
the path; an untimed top has no path.
"""

from __future__ import annotations

import polars as pl

from ml_tracelens.core.tree import (
    Tree,
    build_tree,
    filled,
    group_keys,
    int_max,
    keep_where,
    max_duration,
    row_type,
    timed,
)


def critical_path_ns(tree: Tree) -> pl.Series:
    """Critical-path time per span of ``tree.frame`` (Int64 ns; 0 off the path; null untimed).

    A ``slack_ns`` column (log-derived trees: the timestamp resolution ε) lets a sibling that
    ends up to ε after the bound still be picked, its section clipped to the bound.
    """
    frame, parent = tree.frame, tree.parent
    n = frame.height
    ok = timed(frame)
    start = keep_where(ok, frame.get_column("start_ns"))
    end = keep_where(ok, frame.get_column("end_ns"))
    clip_start = tree.fold_path(start, "max")
    clip_end = tree.fold_path(end, "min")
    cut_off = tree.fold_path(~ok, "any")
    is_top = parent.is_null()
    candidate = (~is_top & ~cut_off & (clip_end > clip_start)).fill_null(False)
    slack = slack_of(frame)

    children = _candidates(
        pl.DataFrame(
            {
                "row": pl.int_range(n, dtype=row_type(parent), eager=True),
                "parent": parent,
                "start": clip_start,
                "end": clip_end,
                "base": clip_start.gather(parent),
                "slack": slack if slack is not None else filled(0, n, pl.Int64),
            }
        ).filter(candidate),
        span_id=frame.get_column("span_id"),
        key=group_keys(n, max_duration(frame) + (int_max(slack) if slack is not None else 0)),
    )
    following = _next_picks(children, with_slack=slack is not None)
    in_chain = _chains(children, following)
    chain = children.with_columns(next=following).filter(in_chain)

    on_chain = filled(False, n, pl.Boolean)
    if chain.height:
        on_chain.scatter(chain.get_column("row"), True)
    off_path = pl.select(
        pl.when(pl.lit(is_top)).then(pl.lit(~ok)).otherwise(pl.lit(~on_chain))
    ).to_series()
    on_path = ~tree.fold_path(off_path, "any")

    bound = clip_end
    if slack is not None and chain.height:
        bound = _bounds(tree, children, chain, clip_end)
    length = (bound - clip_start).clip(lower_bound=0)
    given_away = filled(0, n, pl.Int64)
    if chain.height:
        sums = (
            chain.select("parent", length=length.gather(chain.get_column("row")))
            .group_by("parent")
            .agg(pl.sum("length"))
        )
        given_away.scatter(sums.get_column("parent"), sums.get_column("length"))
    own = (length - given_away).clip(lower_bound=0)
    return (
        pl.select(
            pl.when(~pl.lit(ok))
            .then(None)
            .when(pl.lit(on_path))
            .then(pl.lit(own))
            .otherwise(0)
            .cast(pl.Int64)
        )
        .to_series()
        .rename("cp_ns")
    )


def slack_of(frame: pl.DataFrame) -> pl.Series | None:
    """Per span, the slack ε of its tree (0 where none); None when no span has any."""
    if "slack_ns" not in frame.columns:
        return None
    slack = frame.get_column("slack_ns").fill_null(0).clip(lower_bound=0)
    return slack if (slack > 0).any() else None


def _bounds(
    tree: Tree, children: pl.DataFrame, chain: pl.DataFrame, clip_end: pl.Series
) -> pl.Series:
    """Per span, the bound its walk runs with: its clipped end, cut to the start of the sibling
    picked before it (a pick within the slack), or to its parent's bound when it is its
    parent's first pick (the cut then reaches down every first pick below)."""
    n = clip_end.len()
    rows = children.get_column("row")
    cap = clip_end.clone()
    picked_after = chain.filter(pl.col("next").is_not_null())
    if picked_after.height:
        next_rows = rows.gather(picked_after.get_column("next"))
        starts = children.get_column("start").gather(picked_after.get_column("i"))
        capped = pl.select(
            pl.min_horizontal(pl.lit(cap.gather(next_rows)), pl.lit(starts))
        ).to_series()
        cap.scatter(next_rows, capped)
    # First picks take their parent's bound: fold "min" up the runs of first-pick edges.
    first = chain.filter((pl.col("parent") != pl.col("parent").shift(-1)).fill_null(True))
    up = pl.int_range(n, dtype=row_type(tree.parent), eager=True)
    if first.height:
        up.scatter(first.get_column("row"), first.get_column("parent"))
    while True:
        higher = up.gather(up)
        cap = pl.select(pl.min_horizontal(pl.lit(cap), pl.lit(cap.gather(up)))).to_series()
        if (higher == up).all():
            return cap
        up = higher


def _candidates(
    children: pl.DataFrame, *, span_id: pl.Series, key: tuple[type[pl.DataType], int]
) -> pl.DataFrame:
    """The children that can be picked, sorted by (parent, end), one per (parent, end).

    Keys are ``parent * stride + (time - parent's clipped start)`` (see ``group_keys``):
    ordered by parent, then time, in one column, so sorts and the as-of join need one key.
    """
    dtype, stride = key
    group = pl.col("parent").cast(dtype) * stride
    keyed = children.select(
        "row",
        "parent",
        "start",
        "slack",
        start_key=group + (pl.col("start") - pl.col("base")).cast(dtype),
        end_key=group + (pl.col("end") - pl.col("base")).cast(dtype),
    ).sort("end_key")
    same_end = pl.col("end_key") == pl.col("end_key").shift(1)
    tied = (same_end | same_end.shift(-1)).fill_null(False)
    if keyed.select(tied.any()).item():
        # Of siblings ending together only the one starting last (then with the larger span
        # id) can ever be picked: once it is, the bound drops to its start, below their end.
        # Ties are rare, so only they are sorted by span id; the others keep their order.
        ties = keyed.filter(tied)
        winners = (
            ties.with_columns(span_id=span_id.gather(ties.get_column("row")))
            .sort("end_key", "start_key", "span_id")
            .filter((pl.col("end_key") != pl.col("end_key").shift(-1)).fill_null(True))
            .get_column("row")
        )
        keyed = keyed.filter(~tied | pl.col("row").is_in(winners.implode()))
    return keyed.with_row_index("i")


def _next_picks(children: pl.DataFrame, *, with_slack: bool) -> pl.Series:
    """Per row of ``children`` (see ``_candidates``): next(c), the row of the sibling picked
    after c (ending last at or before c starts, or up to its slack later, when it starts
    before c does); null for none."""
    following = _ending_by(children, pl.col("start_key"))
    if not with_slack or children.is_empty():
        return following
    loose = _ending_by(children, pl.col("start_key") + pl.col("slack"))
    # A sibling found within the slack must start before c, or the walk's bound would rise.
    starts = children.get_column("start_key")
    usable = loose.is_not_null() & (starts.gather(loose) < starts).fill_null(False)
    return pl.select(
        pl.when(pl.lit(usable)).then(pl.lit(loose)).otherwise(pl.lit(following))
    ).to_series()


def _ending_by(children: pl.DataFrame, bound: pl.Expr) -> pl.Series:
    """Per row: the sibling (row of ``children``) ending last with end key <= ``bound``."""
    following = filled(None, children.height, pl.get_index_type())
    if children.is_empty():
        return following
    # Keys of another parent are smaller than this parent's, so a match from another parent
    # means "none".
    starts = children.select("i", "parent", start_key=bound).sort("start_key")
    matched = starts.join_asof(
        children.select(pl.col("end_key").alias("start_key"), "i", "parent"),
        on="start_key",
        strategy="backward",
        suffix="_next",
    )
    following.scatter(
        matched.get_column("i"),
        matched.select(
            pl.when(
                (pl.col("parent_next") == pl.col("parent")) & (pl.col("i_next") != pl.col("i"))
            ).then(pl.col("i_next"))
        ).to_series(),
    )
    return following


def _chains(children: pl.DataFrame, following: pl.Series) -> pl.Series:
    """Per row of ``children``: is it in its parent's chain of picks (``following`` = next)."""
    if children.is_empty():
        return pl.Series("in_chain", [], dtype=pl.Boolean)
    jumps = [following]
    while jumps[-1].null_count() < jumps[-1].len():
        jumps.append(jumps[-1].gather(jumps[-1]))
    jumps.pop()  # all null: the 2**K-th successor exists for nobody, so chains are < 2**K long
    # The first pick of each parent is its child ending last: the last row of its group.
    parents = children.get_column("parent")
    marked = (parents != parents.shift(-1)).fill_null(True).rename("in_chain")
    for jump in reversed(jumps):
        targets = jump.filter(marked).drop_nulls()
        if targets.len():
            marked.scatter(targets, True)
    return marked


def critical_path(spans: pl.DataFrame | Tree) -> pl.DataFrame:
    """Critical-path time per span: trace_id, span_id, cp_ns, in row order."""
    tree = spans if isinstance(spans, Tree) else build_tree(spans)
    return tree.frame.select("trace_id", "span_id").with_columns(cp_ns=critical_path_ns(tree))
