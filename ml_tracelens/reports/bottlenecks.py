"""`tracelens bottlenecks`: which stage to fix, for the typical request and for the tail.

- ``cp_share``: the stage's critical-path time / the summed durations of the requests (tree tops).
- ``cp_mean_ms``: the stage's critical-path time per request, averaged over all requests.
- ``tail_delta_ms``: tail attribution (algorithms.md). Requests slower than the ``tail`` quantile
  of end-to-end duration (p95 by default) are compared with the typical ones, those between the
  25th and 75th percentile: the stage's mean critical-path time per tail request minus its mean
  per typical request. The stage with the largest delta is the one that makes the tail slow,
  which an average hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ml_tracelens.core.stats import ns_to_ms, quantile
from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.exceptions import UsageError
from ml_tracelens.reports.context import requests_of
from ml_tracelens.reports.documents import (
    BottlenecksPayload,
    RequestSummary,
    TailRequests,
    TypicalRequests,
)
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

TYPICAL_BAND = (0.25, 0.75)


@dataclass(frozen=True)
class Split:
    """The requests (tree tops with a duration) of a bottlenecks report, split by end-to-end
    duration: ``tail_cut`` (the ``tail`` quantile; tail requests are slower), the typical band
    ``low``..``high`` (``TYPICAL_BAND``, inclusive), and how many fall in each."""

    requests: int
    total_ns: int
    tail_cut: float | None
    low: float | None
    high: float | None
    tail_n: int
    typical_n: int


def build(
    *,
    analysed: pl.DataFrame,
    mask: pl.Series | None = None,
    tail: float = 0.95,
    top: int | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    checked_tail(tail)
    selected = analysed.filter(mask) if mask is not None else analysed
    traces = selected.get_column("trace_id").unique().implode()
    tops = analysed.filter(
        (pl.col("span_id") == pl.col("top_id"))
        & pl.col("trace_id").is_in(traces)
        & pl.col("duration_ns").is_not_null()
    ).select(request_id=pl.col("top_id"), trace_id="trace_id", request_ns="duration_ns")
    request_count = tops.height
    total_ns = int(tops.get_column("request_ns").clip(lower_bound=0).sum())
    tail_cut = quantile(tops.get_column("request_ns"), tail) if request_count else None
    low, high = (
        (quantile(tops.get_column("request_ns"), q) for q in TYPICAL_BAND)
        if request_count
        else (None, None)
    )
    classified = tops.with_columns(
        is_tail=pl.col("request_ns") > tail_cut if tail_cut is not None else pl.lit(False),
        is_typical=pl.col("request_ns").is_between(low, high) if low is not None else pl.lit(False),
    )
    split = Split(
        requests=request_count,
        total_ns=total_ns,
        tail_cut=tail_cut,
        low=low,
        high=high,
        tail_n=int(classified.get_column("is_tail").sum()),
        typical_n=int(classified.get_column("is_typical").sum()),
    )
    per_request = (
        selected.filter(pl.col("cp_ns").fill_null(0) > 0)
        .group_by("trace_id", "top_id", "name")
        .agg(cp_ns=pl.col("cp_ns").sum())
        .join(classified, left_on=["trace_id", "top_id"], right_on=["trace_id", "request_id"])
    )
    sums = per_request.group_by("name").agg(
        _cp_ns=pl.col("cp_ns").sum(),
        _tail_ns=pl.col("cp_ns").filter(pl.col("is_tail")).sum(),
        _typical_ns=pl.col("cp_ns").filter(pl.col("is_typical")).sum(),
    )
    return from_sums(
        sums=sums,
        split=split,
        requests=requests_of(analysed, selected, filtered=mask is not None),
        tail=tail,
        top=top,
        inputs=inputs,
        warnings=warnings,
    )


def checked_tail(tail: float) -> None:
    if not 0 < tail < 1:
        raise UsageError(f"{tail}: expected a quantile between 0 and 1, e.g. 0.95", option="tail")


def from_sums(
    *,
    sums: pl.DataFrame,
    split: Split,
    requests: RequestSummary,
    tail: float = 0.95,
    top: int | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The report from per-stage critical-path sums, whichever engine computed them (this
    module, or the Spark engine): ``sums`` has ``name`` and, in ns, ``_cp_ns`` (over all
    requests), ``_tail_ns`` and ``_typical_ns`` (over the tail and typical requests of
    ``split``)."""
    checked_tail(tail)
    total_ns, request_count = split.total_ns, split.requests
    tail_n, typical_n = split.tail_n, split.typical_n
    stats = (
        sums.with_columns(
            cp_share=pl.col("_cp_ns") / total_ns if total_ns else pl.lit(None, pl.Float64),
            cp_mean_ms=ns_to_ms(pl.col("_cp_ns") / request_count),
            tail_delta_ms=(
                ns_to_ms(pl.col("_tail_ns") / tail_n - pl.col("_typical_ns") / typical_n)
                if tail_n and typical_n
                else pl.lit(None, pl.Float64)
            ),
        )
        .rename({"name": "stage"})
        .sort(["cp_share", "stage"], descending=[True, False], nulls_last=True)
    )
    if top is not None:
        stats = stats.head(top)
    rows = stats.select("stage", "cp_share", "cp_mean_ms", "tail_delta_ms").to_dicts()
    verdict = _verdict(rows, tail=tail, tail_n=tail_n)
    return Report(
        name="bottlenecks",
        title="Bottlenecks (critical path)",
        headline=[verdict],
        tables=[
            Table(
                key="rows",
                title="Stages by critical-path share",
                columns=(
                    Column("stage", "stage"),
                    Column("cp_share", "crit path", ColumnKind.SHARE),
                    Column("cp_mean_ms", "crit per request", ColumnKind.MS),
                    Column("tail_delta_ms", f"tail Δ (>p{tail * 100:g})", ColumnKind.MS),
                ),
                rows=rows,
            )
        ],
        payload=BottlenecksPayload(
            verdict=verdict,
            requests=requests,
            tail=TailRequests(quantile=tail, threshold_ms=_ms(split.tail_cut), requests=tail_n),
            typical=TypicalRequests(
                from_ms=_ms(split.low), to_ms=_ms(split.high), requests=typical_n
            ),
        ),
        inputs=inputs or [],
        warnings=warnings or [],
    )


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / NS_PER_MS


def _verdict(rows: list[dict[str, Any]], *, tail: float, tail_n: int) -> str:
    if not rows or rows[0]["cp_share"] is None:
        return "No timed requests to attribute."
    lead = rows[0]
    sentence = f"{lead['stage']} holds {lead['cp_share'] * 100:.0f}% of the critical path"
    deltas = [r for r in rows if r["tail_delta_ms"] is not None]
    if deltas and tail_n:
        worst = max(deltas, key=lambda r: (r["tail_delta_ms"], r["stage"]))
        share = (1 - tail) * 100
        sentence += (
            f"; in the slowest {share:g}% of requests {worst['stage']} adds "
            f"{'+' if worst['tail_delta_ms'] >= 0 else ''}{format_duration(worst['tail_delta_ms'])}"
        )
    else:
        sentence += "; too few requests to attribute the tail"
    return sentence + "."
