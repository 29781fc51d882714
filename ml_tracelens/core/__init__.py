"""The analysis core: trees, self time, critical path, error origin and structure anomalies.

``analyze`` runs every step for all traces of a canonical span frame at once (see tree.py,
timing.py, critical_path.py and errors_origin.py for the algorithms) and returns the spans with
per-span results plus a ``Structure`` of counts that reports turn into warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from ml_tracelens.core.attribute_pairs import AttributePairs
from ml_tracelens.core.critical_path import critical_path, critical_path_ns
from ml_tracelens.core.errors_origin import error_flags
from ml_tracelens.core.timing import self_time_ns, self_times
from ml_tracelens.core.tree import DUP_MARK, Tree, build_tree, timed

__all__ = [
    "Analysis",
    "Derived",
    "Structure",
    "Tree",
    "analyze",
    "build_tree",
    "critical_path",
    "critical_path_ns",
    "self_time_ns",
    "self_times",
    "timed",
]

ServicePair = tuple[str | None, str | None]


@dataclass(frozen=True)
class Structure:
    """Counts describing the shape and the anomalies of a dump."""

    spans: int = 0
    traces: int = 0
    roots: int = 0
    orphan_spans: int = 0
    traces_with_multiple_roots: int = 0
    traces_without_root: int = 0
    merged_duplicates: int = 0
    conflicting_duplicates: int = 0
    cycles_broken: int = 0
    negative_durations: int = 0
    zero_durations: int = 0
    untimed_spans: int = 0
    skewed_spans: int = 0
    outside_parent_spans: int = 0
    #: (parent service, child service) -> skewed children, most frequent first
    skew_by_service_pair: dict[ServicePair, int] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """One line per anomaly that occurred, most structural first."""
        pairs = ", ".join(
            f"{parent or '?'} -> {child or '?'} ({count:,})"
            for (parent, child), count in list(self.skew_by_service_pair.items())[:3]
        )
        # (count, what is counted, what it means): a line when the count is not zero.
        anomalies = (
            (
                self.orphan_spans,
                "orphan span",
                " (parent id not in the dump) treated as roots of their subtrees",
            ),
            (
                self.traces_without_root,
                "trace",
                " without a root span (the root is not in the dump)",
            ),
            (self.traces_with_multiple_roots, "trace", " with several root spans"),
            (self.merged_duplicates, "identical duplicate span", " merged"),
            (
                self.conflicting_duplicates,
                "span",
                " reusing the trace and span id of a different span; kept apart as "
                f"<id>{DUP_MARK}N",
            ),
            (
                self.cycles_broken,
                "parent cycle",
                " broken (corrupt parent ids): the smallest span id of each cycle made a root",
            ),
            (
                self.negative_durations,
                "span",
                " ending before they start; excluded from timing",
            ),
            (
                self.untimed_spans,
                "span",
                " without start or end time (missing, before 1970 or past 2262); kept in the "
                "tree, excluded from timing",
            ),
            (self.zero_durations, "span", " with zero duration"),
            (
                self.skewed_spans,
                "span",
                " starting before or ending after their parent (clock skew?); by service pair: "
                + pairs,
            ),
            (
                self.outside_parent_spans,
                "span",
                " wholly outside their parent's time; left off the critical path with their "
                "subtrees",
            ),
        )
        return [f"{_n(count, noun)}{meaning}" for count, noun, meaning in anomalies if count]


@dataclass(frozen=True)
class Analysis:
    """Per-span results (``spans``) and the dump's ``structure``; ``pairs``: the attribute
    pairs of the spans when whoever loaded them asked for them (see ``attribute_pairs``); or,
    for inputs analysed a group of traces at a time with a report's summary of each group,
    those ``summaries`` (what the report needs of each group) and no spans. ``derived``: the
    tables of a ``Derived`` whoever loaded them asked for, by its name; a cache entry that holds
    them gives them without the spans."""

    spans: pl.DataFrame
    structure: Structure
    pairs: AttributePairs | None = None
    summaries: tuple[object, ...] = ()
    derived: dict[str, dict[str, pl.DataFrame]] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        return self.structure.warnings()


@dataclass(frozen=True)
class Derived:
    """Tables a report derives from an analysis (its spans and their attribute pairs) and keeps
    with the dump's cache entry, so that its next run reads them instead of the spans. Tables
    of another ``version`` are made again; ``make`` gives None when there is nothing to keep."""

    name: str
    version: int
    make: Callable[[Analysis], dict[str, pl.DataFrame] | None]


def analyze(
    spans: pl.DataFrame, *, merged_duplicates: int = 0, parent_rows: pl.Series | None = None
) -> Analysis:
    """Trees, self time, critical path, error origin and anomalies for every trace of ``spans``.

    ``spans`` is a canonical span frame (extra columns are kept); the analysed spans are its rows
    in their order, so whatever is worked out per row of ``spans`` holds for them.
    ``merged_duplicates`` is the count ingest already merged, carried into the structure so it
    is warned about with the rest. ``parent_rows``: each span's parent row when ingest built
    the trees (see ``build_tree``), which saves resolving the parent ids.
    """
    tree = build_tree(spans, parent_rows)
    has_error, originated = error_flags(tree)
    frame = tree.frame.with_columns(
        self_ns=self_time_ns(tree),
        cp_ns=critical_path_ns(tree),
        has_error=has_error,
        error_originated=originated,
        # A span ending before it starts has no latency: every report reads durations from
        # here, so null it once (the structure still counts it from start and end).
        duration_ns=pl.when(pl.col("duration_ns") >= 0).then(pl.col("duration_ns")),
    )
    return Analysis(
        spans=frame,
        structure=_structure(tree, frame, merged_duplicates=merged_duplicates),
    )


def _structure(tree: Tree, frame: pl.DataFrame, *, merged_duplicates: int) -> Structure:
    start, end = pl.col("start_ns"), pl.col("end_ns")
    counts = frame.select(
        spans=pl.len(),
        roots=pl.col("is_root").sum(),
        orphan_spans=pl.col("is_orphan").sum(),
        negative_durations=(end < start).sum(),
        zero_durations=(end == start).sum(),
        untimed_spans=(start.is_null() | end.is_null()).sum(),
        skewed_spans=pl.col("skewed").sum(),
        outside_parent_spans=pl.col("outside_parent").sum(),
    ).row(0, named=True)
    # Every trace has at least one top (root or orphan), and tops are few: group those only.
    per_trace = (
        frame.filter(tree.parent.is_null()).group_by("trace_id").agg(roots=pl.col("is_root").sum())
    )
    skewed = frame.get_column("skewed")
    service = frame.get_column("service")
    pairs = (
        pl.DataFrame(
            {
                "parent_service": service.gather(tree.parent.filter(skewed)),
                "service": service.filter(skewed),
            }
        )
        .group_by("parent_service", "service")
        .len()
        .sort(["len", "parent_service", "service"], descending=[True, False, False])
    )
    return Structure(
        **{k: int(v or 0) for k, v in counts.items()},
        traces=per_trace.height,
        traces_with_multiple_roots=per_trace.filter(pl.col("roots") > 1).height,
        traces_without_root=per_trace.filter(pl.col("roots") == 0).height,
        merged_duplicates=merged_duplicates,
        conflicting_duplicates=tree.conflicting_duplicates,
        cycles_broken=tree.cycles_broken,
        skew_by_service_pair={(p, c): int(k) for p, c, k in pairs.iter_rows()},
    )


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
