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
    keep_where,
    max_duration,
    timed,
)


def critical_path_ns(tree: Tree) -> pl.Series:
    """Critical-path time per span of ``tree.frame`` (Int64 ns; 0 off the path; null untimed)."""
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

    children = _candidates(
        pl.DataFrame(
            {
                "row": pl.int_range(n, dtype=parent.dtype, eager=True),
                "parent": parent,
                "start": clip_start,
                "end": clip_end,
                "base": clip_start.gather(parent),
            }
        ).filter(candidate),
        span_id=frame.get_column("span_id"),
        key=group_keys(n, max_duration(frame)),
    )
    in_chain = _chains(children)
    chain = children.filter(in_chain)

    on_chain = filled(False, n, pl.Boolean)
    if chain.height:
        on_chain.scatter(chain.get_column("row"), True)
    off_path = pl.select(
        pl.when(pl.lit(is_top)).then(pl.lit(~ok)).otherwise(pl.lit(~on_chain))
    ).to_series()
    on_path = ~tree.fold_path(off_path, "any")

    given_away = filled(0, n, pl.Int64)
    if chain.height:
        sums = chain.group_by("parent").agg(pl.sum("length"))
        given_away.scatter(sums.get_column("parent"), sums.get_column("length"))
    own = clip_end - clip_start - given_away
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


def _candidates(
    children: pl.DataFrame, *, span_id: pl.Series, key: tuple[pl.DataType, int]
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
        length=pl.col("end") - pl.col("start"),
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


def _chains(children: pl.DataFrame) -> pl.Series:
    """Per row of ``children`` (see ``_candidates``): is it in its parent's chain of picks."""
    if children.is_empty():
        return pl.Series("in_chain", [], dtype=pl.Boolean)
    # next(c): the sibling ending last at or before c starts; keys of another parent are
    # smaller than this parent's, so a match from another parent means "none".
    starts = children.select("i", "parent", "start_key").sort("start_key")
    matched = starts.join_asof(
        children.select(pl.col("end_key").alias("start_key"), "i", "parent"),
        on="start_key",
        strategy="backward",
        suffix="_next",
    )
    following = filled(None, children.height, pl.get_index_type())
    following.scatter(
        matched.get_column("i"),
        matched.select(
            pl.when(pl.col("parent_next") == pl.col("parent")).then(pl.col("i_next"))
        ).to_series(),
    )
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
