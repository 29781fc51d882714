"""Self (exclusive) time of every span, for all traces at once.

self(s) = duration(s) - length of the union of s's direct children's intervals, each clipped to
[s.start, s.end] (algorithms.md). Not duration minus the sum of child durations: parallel
children would drive that negative.

Algorithm: clip every timed child to its timed parent, sort the children by (parent, start) and
take each one's "reach", the largest end among the earlier children of the same parent (a
cumulative max over sorted groups, done as one global cumulative max over integer keys
``parent * stride + time since the parent's start``, which never mix two parents). A child adds
``end - max(start, reach)`` to the covered length when positive, which counts overlapping and
duplicated children once. One sort and one group-by over the whole dump: O(n log n).

Spans without a start or end, or ending before they start, have no self time (null) and do not
cover their parent.
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


def self_time_ns(tree: Tree) -> pl.Series:
    """Self time per span of ``tree.frame`` (Int64 ns, null without timing), in row order."""
    frame, parent = tree.frame, tree.parent
    ok = timed(frame)
    start, end = frame.get_column("start_ns"), frame.get_column("end_ns")
    p_start = start.gather(parent)
    # Offsets from the parent's start after clipping: 0 <= offset <= the longest span.
    dtype, stride = group_keys(frame.height, max_duration(frame))
    rel_start = (pl.max_horizontal("start", "p_start") - pl.col("p_start")).cast(dtype)
    rel_end = (pl.min_horizontal("end", "p_end") - pl.col("p_start")).cast(dtype)
    covered = (
        pl.LazyFrame(
            {
                "parent": parent,
                "start": start,
                "end": end,
                "p_start": p_start,
                "p_end": end.gather(parent),
                "ok": ok & ok.gather(parent).fill_null(False),
            }
        )
        .filter("ok")
        .select("parent", start=rel_start, end=rel_end)
        .filter(pl.col("end") > pl.col("start"))
        .with_columns(group=pl.col("parent").cast(dtype) * stride)
        .sort(pl.col("group") + pl.col("start"))
        # A cumulative max over all children in (parent, start) order stays inside each
        # parent's group because every key of a parent exceeds all keys of earlier parents.
        .with_columns(reach=(pl.col("group") + pl.col("end")).cum_max().shift(1) - pl.col("group"))
        .group_by("parent")
        .agg(
            covered=(pl.col("end") - pl.max_horizontal("start", "reach"))
            .clip(lower_bound=0)
            .sum()
            .cast(pl.Int64)
        )
        .collect()
    )
    per_span = filled(0, frame.height, pl.Int64)
    if covered.height:
        per_span.scatter(covered.get_column("parent"), covered.get_column("covered"))
    return keep_where(ok, (end - start - per_span).rename("self_ns"))


def self_times(spans: pl.DataFrame | Tree) -> pl.DataFrame:
    """Self time per span: trace_id, span_id (after re-keying duplicates), self_ns; row order."""
    tree = spans if isinstance(spans, Tree) else build_tree(spans)
    return tree.frame.select("trace_id", "span_id").with_columns(self_ns=self_time_ns(tree))
