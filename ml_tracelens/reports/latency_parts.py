"""The latency report from parts: what it needs of each group of traces, when the spans of all
of them are too many to keep (``ingest.bounded``).

A group's ``Parts`` hold every span's key and duration (12 bytes a span: the percentiles are
exact, so every duration is needed), the per-key sums of self time, critical-path time and
errors, each request's duration and error, and the durations of the tree tops. Put together,
they give the report ``latency.build`` gives on all the spans at once: the same counts, the
same percentiles, and means and shares summed in another order (equal to 1e-12).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
import polars as pl

from ml_tracelens.core.stats import (
    Histogram,
    duration_aggregations,
    log_histograms,
    ns_to_ms,
    request_summary,
    requests,
    with_group_columns,
)
from ml_tracelens.reports.documents import RequestSummary
from ml_tracelens.reports.latency import HISTOGRAM_BINS, cp_denominator_ns, from_stats
from ml_tracelens.reports.result import JsonValue, Report
from ml_tracelens.schema import empty_spans

_SUMS = ("_spans", "_self_ns", "_self_count", "_cp_ns", "errors")


@dataclass(frozen=True)
class Parts:
    """The latency report's needs of one group of traces grouped ``by``: ``durations`` (the key columns and
    ``duration_ns`` of every span; text keys as Categorical), ``sums`` (per key: spans, the sum
    and count of self times, critical-path time, errors), ``requests`` (per request:
    ``duration_ns``, ``request_error``) and ``tops_ns`` (the durations of the tree tops)."""

    by: tuple[str, ...]
    durations: pl.DataFrame
    sums: pl.DataFrame
    requests: pl.DataFrame
    tops_ns: int


@dataclass(frozen=True)
class Summarise:
    """The parts of a group of analysed spans, grouped ``by`` (as ``latency.build`` takes
    it); picklable, so a worker process can take them of the group it analysed."""

    by: tuple[str, ...]

    def __post_init__(self) -> None:
        with_group_columns(empty_spans(), self.by)  # a bad key is a usage error before reading

    def __call__(self, analysed: pl.DataFrame) -> Parts:
        frame, names = with_group_columns(analysed, self.by)
        # Categorical: a key text is then 4 bytes a span, and parts from other processes
        # share one dictionary once read here.
        keys = [
            pl.col(n).cast(pl.Categorical) if frame.schema[n] == pl.String else pl.col(n)
            for n in names
        ]
        sums = frame.group_by(names).agg(
            _spans=pl.len().cast(pl.Int64),
            _self_ns=pl.col("self_ns").sum(),
            _self_count=pl.col("self_ns").count().cast(pl.Int64),
            _cp_ns=pl.col("cp_ns").fill_null(0).sum(),
            errors=(pl.col("status") == "error").sum().cast(pl.Int64),
        )
        return Parts(
            by=self.by,
            durations=frame.select(*keys, "duration_ns"),
            sums=sums.with_columns(keys),
            requests=requests(analysed).select("duration_ns", "request_error"),
            tops_ns=cp_denominator_ns(analysed, analysed),
        )


def build(
    parts: Sequence[Parts],
    *,
    sort: str | None = None,
    top: int | None = None,
    distribution: bool = True,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The latency report of the spans whose parts are ``parts`` (as ``latency.build`` gives
    it on those spans unfiltered)."""
    names = list(parts[0].durations.columns[:-1])
    sums = (
        pl.concat([p.sums for p in parts], how="vertical")
        .group_by(names)
        .agg(pl.col(c).sum() for c in _SUMS)
    )
    denominator = sum(p.tops_ns for p in parts)
    durations, histograms = _duration_stats(parts, names, distribution=distribution)
    stats = durations.join(sums, on=names, how="left", nulls_equal=True).with_columns(
        self_mean_ms=pl.when(pl.col("_self_count") > 0).then(
            ns_to_ms(pl.col("_self_ns").cast(pl.Float64) / pl.col("_self_count"))
        ),
        cp_share=(pl.col("_cp_ns") / denominator) if denominator else pl.lit(None, pl.Float64),
        error_rate=pl.col("errors") / pl.col("_spans"),
    )
    text = [n for n in names if stats.schema[n] == pl.Categorical]
    summary = request_summary(pl.concat([p.requests for p in parts], how="vertical"))
    return from_stats(
        stats=stats.with_columns(pl.col(n).cast(pl.String) for n in text),
        names=names,
        requests=msgspec.convert(summary, RequestSummary),
        histograms=histograms,
        sort=sort,
        top=top,
        inputs=inputs,
        warnings=warnings,
    )


#: Up to this many keys, the durations are aggregated a key at a time: a group-by over all of
#: them at once holds a copy of them and as much again (at 50M spans, 1.8 GB more).
KEY_BY_KEY = 1000


def _duration_stats(
    parts: Sequence[Parts], names: list[str], *, distribution: bool
) -> tuple[pl.DataFrame, dict[tuple[object, ...], Histogram] | None]:
    """Per key, the duration statistics and (with ``distribution``) the histogram."""
    histograms: dict[tuple[object, ...], Histogram] | None = {} if distribution else None
    keys = pl.concat([p.durations.select(names).unique() for p in parts]).unique()
    every: Iterable[pl.DataFrame]
    if keys.height > KEY_BY_KEY:
        every = [pl.concat([p.durations for p in parts], how="vertical").rechunk()]
    else:
        pieces: dict[tuple[object, ...], list[pl.DataFrame]] = {}
        for part in parts:
            for key, piece in part.durations.partition_by(names, as_dict=True).items():
                pieces.setdefault(key, []).append(piece)
        every = (pl.concat(pieces.pop(key), how="vertical").rechunk() for key in list(pieces))
    stats = []
    for durations in every:
        stats.append(durations.group_by(names).agg(*duration_aggregations()))
        if histograms is not None:
            histograms.update(log_histograms(durations, names, bins=HISTOGRAM_BINS))
    return pl.concat(stats, how="vertical"), histograms
