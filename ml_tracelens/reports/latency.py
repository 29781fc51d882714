"""`tracelens latency`: per-stage latency breakdown, self time and critical-path share.

Critical-path share of a group = sum of its spans' critical-path time / sum of the durations of
the tree tops (roots, and orphans standing in for missing roots) of the traces analysed, so the
shares of all stages add up to 100% on an unfiltered dump (algorithms.md, Bottlenecks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.stats import (
    Histogram,
    duration_aggregations,
    log_histograms,
    ns_to_ms,
    with_group_columns,
)
from ml_tracelens.durations import format_duration
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.reports.context import requests_of
from ml_tracelens.reports.documents import LatencyPayload, RequestSummary
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

# hide_rank: the order a narrow terminal hides columns in (the distribution, rank 1, first).
STAT_COLUMNS = (
    Column("count", "count", ColumnKind.INT),
    Column("mean_ms", "mean", ColumnKind.MS, hide_rank=3),
    Column("p50_ms", "p50", ColumnKind.MS),
    Column("p90_ms", "p90", ColumnKind.MS, hide_rank=2),
    Column("p95_ms", "p95", ColumnKind.MS),
    Column("p99_ms", "p99", ColumnKind.MS, hide_rank=7),
    Column("max_ms", "max", ColumnKind.MS, hide_rank=4),
    Column("self_mean_ms", "self", ColumnKind.MS, hide_rank=5),
    Column("cp_share", "crit path", ColumnKind.SHARE, hide_rank=8),
    Column("errors", "errors", ColumnKind.INT),
    Column("error_rate", "err rate", ColumnKind.SHARE, hide_rank=6),
)


#: Span columns the report never reads, unless a ``--where`` condition names them: a caller
#: may leave them out of what it loads (most of a large dump's kept bytes are ids and messages).
UNREAD = ("parent_id", "top_id", "depth", "status_message", "skewed", "outside_parent")
#: Span columns the report only groups and joins by, and never shows (unless a ``--where``
#: condition names them): a caller may give them as any values that tell the same apart.
OPAQUE = ("trace_id", "span_id")


def cp_denominator_ns(analysed: pl.DataFrame, selected: pl.DataFrame) -> int:
    """Sum of the durations of the tree tops of the traces that ``selected`` spans belong to."""
    # A top is a span without a parent in its trace: a root, or an orphan standing in for one.
    is_top = pl.col("is_root") | pl.col("is_orphan")
    if selected.height == analysed.height:  # unfiltered: every trace counts
        tops = analysed.filter(is_top)
    else:
        traces = selected.get_column("trace_id").unique()
        tops = analysed.filter(is_top & pl.col("trace_id").is_in(traces.implode()))
    return int(tops.get_column("duration_ns").fill_null(0).clip(lower_bound=0).sum())


def group_stats(
    analysed: pl.DataFrame, selected: pl.DataFrame, by: Sequence[str]
) -> tuple[pl.DataFrame, list[str], pl.DataFrame]:
    """Per-group statistics of ``selected`` spans: the stats, the key names, and the selected
    spans with their key columns added."""
    frame, names = with_group_columns(selected, by)
    denominator = cp_denominator_ns(analysed, selected)
    stats = (
        frame.group_by(names)
        .agg(
            *duration_aggregations(),
            self_mean_ms=ns_to_ms(pl.col("self_ns").cast(pl.Float64).mean()),
            _cp_ns=pl.col("cp_ns").fill_null(0).sum(),
            errors=(pl.col("status") == "error").sum().cast(pl.Int64),
            _spans=pl.len(),
        )
        .with_columns(
            cp_share=(pl.col("_cp_ns") / denominator) if denominator else pl.lit(None, pl.Float64),
            error_rate=pl.col("errors") / pl.col("_spans"),
        )
    )
    return stats, names, frame


#: Bins of the histograms a distribution view draws; the terminal sparkline merges pairs.
HISTOGRAM_BINS = 24
SPARK_MERGE = 2


@dataclass(frozen=True)
class GroupDistribution:
    """One group's durations, for pictures: its histogram on a log axis and its percentiles."""

    label: str  # the group's key values, joined with " · "
    histogram: Histogram
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class LatencyView:
    """What a picture of the latency report draws, per row of its table (HTML)."""

    distributions: list[GroupDistribution]


def build(
    *,
    analysed: pl.DataFrame,
    mask: pl.Series | None = None,
    by: Sequence[str] = ("stage",),
    sort: str | None = None,
    top: int | None = None,
    distribution: bool = True,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    selected = analysed.filter(mask) if mask is not None else analysed
    stats, names, keyed = group_stats(analysed, selected, by)
    sort_key = checked_sort(sort, names)
    # Distributions are drawn for people only (sparklines, HTML); machine formats skip the work.
    histograms = log_histograms(keyed, names, bins=HISTOGRAM_BINS) if distribution else None
    return from_stats(
        stats=stats,
        names=names,
        requests=requests_of(analysed, selected, filtered=mask is not None),
        histograms=histograms,
        sort=sort_key,
        top=top,
        inputs=inputs,
        warnings=warnings,
    )


def checked_sort(sort: str | None, names: Sequence[str]) -> str:
    """The column the rows are sorted by (``cp_share`` unless ``sort`` names one); UsageError
    when ``sort`` names none of the table's columns."""
    sort_key = sort or "cp_share"
    known = {*names, *(c.key for c in STAT_COLUMNS)}
    if sort_key not in known:
        raise UsageError(
            f"{quoted(sort_key)}: choose one of {', '.join(sorted(known))}", option="sort"
        )
    return sort_key


def from_stats(
    *,
    stats: pl.DataFrame,
    names: Sequence[str],
    requests: RequestSummary,
    histograms: dict[tuple[object, ...], Histogram] | None,
    sort: str | None = None,
    top: int | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The report from per-group statistics, whichever engine computed them (this module's
    ``group_stats``, or the Spark engine): ``stats`` has the key columns ``names`` and the keys
    of ``STAT_COLUMNS``; ``requests`` summarises the requests; ``histograms`` (None: no
    distributions asked for) holds each group's durations on a log axis."""
    sort_key = checked_sort(sort, names)
    columns = (*(Column(n, n) for n in names), *STAT_COLUMNS)
    descending = sort_key not in names
    stats = stats.sort(
        [sort_key, *names], descending=[descending] + [False] * len(names), nulls_last=True
    )
    if top is not None:
        if top < 1:
            raise UsageError("must be at least 1", option="top")
        stats = stats.head(top)
    found = histograms or {}
    rows = []
    pictured = []
    for row in stats.iter_rows(named=True):
        out = {c.key: row.get(c.key) for c in columns}
        key = tuple(row[n] for n in names)
        histogram = found.get(key)
        out["distribution"] = _merged(histogram.counts, SPARK_MERGE) if histogram else []
        rows.append(out)
        if histogram is not None:
            label = " · ".join("(none)" if v is None else str(v) for v in key)
            pictured.append(
                GroupDistribution(
                    label, histogram, row.get("p50_ms"), row.get("p95_ms"), row.get("p99_ms")
                )
            )
    return Report(
        name="latency",
        title="Latency by " + ", ".join(names),
        headline=[_headline(requests)],
        tables=[
            Table(
                key="rows",
                title="Stages",
                columns=(
                    *columns,
                    Column("distribution", "distribution", ColumnKind.SPARK, hide_rank=1),
                ),
                rows=rows,
            )
        ],
        payload=LatencyPayload(requests=requests, group_by=list(names)),
        view=LatencyView(pictured) if histograms is not None else None,
        inputs=inputs or [],
        warnings=warnings or [],
    )


def _merged(counts: list[int], width: int) -> list[int]:
    return [sum(counts[i : i + width]) for i in range(0, len(counts), width)]


def _headline(summary: RequestSummary) -> str:
    if not summary.count:
        return "Requests: none (no root spans among the selected spans)"
    if summary.p50_ms is None:
        # Roots exist but none has both a start and an end (or they end before they start).
        return f"Requests: {summary.count:,}  (no timed root spans)"
    return (
        f"Requests: {summary.count:,}  p50 {format_duration(summary.p50_ms)}  "
        f"p95 {format_duration(summary.p95_ms)}  p99 {format_duration(summary.p99_ms)}  "
        f"error rate {(summary.error_rate or 0) * 100:.1f}%"
    )
