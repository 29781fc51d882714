"""Statistics shared by the reports: percentiles, duration aggregations per group, and the
request table.

Every percentile in tracelens is ``quantile`` (or, where a budget compares exactly,
``exact_percentiles``): linear interpolation between closest ranks (numpy's default, DuckDB's
``quantile_cont``), as algorithms.md fixes. Durations leave here in milliseconds as floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import overload

import polars as pl

from ml_tracelens.durations import NS_PER_MS
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.schema import with_attribute_columns

#: The percentiles the latency reports show and budgets may name (p50 ... p99).
PERCENTILES = (50, 90, 95, 99)
#: What ``duration_aggregations`` gives, in order.
DURATION_KEYS = ("count", "mean_ms", *(f"p{p}_ms" for p in PERCENTILES), "max_ms")
#: The keys of a request summary (``request_summary``), in their JSON order.
REQUEST_KEYS = (*DURATION_KEYS, "errors", "error_rate")
#: Column names a `--by` attribute must not shadow.
_STAT_KEYS = {*REQUEST_KEYS, "self_mean_ms", "cp_share"}

#: The ``--by`` keys that are span columns: key -> column.
BUILTIN_KEYS = {"stage": "name", "service": "service", "kind": "kind", "status": "status"}


def with_group_columns(frame: pl.DataFrame, by: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """Add one column per ``--by`` item (stage, service, kind, status, attr.KEY); return the
    frame and the key names in order."""
    names: list[str] = []
    plain: list[pl.Expr] = []
    attributes: dict[str, str] = {}
    for item in (b.strip() for b in by):
        if item in BUILTIN_KEYS:
            column = pl.col(BUILTIN_KEYS[item])
            plain.append(
                (column.cast(pl.String) if item in ("kind", "status") else column).alias(item)
            )
            names.append(item)
        elif item.startswith("attr.") and len(item) > 5:
            key = item[5:]
            name = key if key not in _STAT_KEYS and key not in BUILTIN_KEYS else item
            attributes[name] = key
            names.append(name)
        else:
            raise UsageError(
                f"{quoted(item)}: expected stage, service, kind, status or attr.KEY "
                "(e.g. --by service,stage or --by attr.model.version)",
                option="by",
            )
    if not names:
        raise UsageError("needs at least one key", option="by")
    frame = with_attribute_columns(frame.with_columns(plain), attributes)
    return frame, names


@overload
def quantile(values: pl.Expr, q: float) -> pl.Expr: ...
@overload
def quantile(values: pl.Series, q: float) -> float | None: ...
def quantile(values: pl.Expr | pl.Series, q: float) -> pl.Expr | float | None:
    """The ``q`` quantile (0 to 1) of ``values``, nulls left out, by linear interpolation between
    closest ranks: with the n values sorted, the rank h = (n - 1) * q falls between the values a
    (at floor h) and b (the next one), giving a + (b - a) * frac(h)."""
    return values.quantile(q, "linear")


def exact_percentiles(values: pl.Series, percents: Sequence[int]) -> dict[int, Fraction]:
    """The ``percents`` (whole numbers, 0 to 100) percentiles of integer ``values``, nulls left
    out, by the rule of ``quantile`` in exact arithmetic, for limits that must compare exactly
    (budgets); empty when there are no values."""
    present = values.drop_nulls()
    count = present.len()
    if not count:
        return {}
    ranks = {p: divmod((count - 1) * p, 100) for p in percents}
    indices = sorted({i for low, _ in ranks.values() for i in (low, min(low + 1, count - 1))})
    at = dict(zip(indices, present.sort().gather(indices).to_list(), strict=True))
    out: dict[int, Fraction] = {}
    for p, (low, remainder) in ranks.items():
        a, b = at[low], at[min(low + 1, count - 1)]
        out[p] = a + (b - a) * Fraction(remainder, 100)
    return out


def ns_to_ms(ns: pl.Expr) -> pl.Expr:
    """Nanoseconds as float milliseconds, correctly rounded: the float nearest ``ns / 10**6``.

    polars divides a column by a scalar as a product with the scalar's reciprocal, one ulp off
    for about a third of all values (999_500 ns gives 0.9994999999999999 ms, which reads as
    999µs where 999.5µs rounds to 1.00ms, and JSON would not hold the exact milliseconds); a
    column divisor gets a true division.
    """
    value = ns.cast(pl.Float64)
    return value / (value * 0.0 + NS_PER_MS)


def ms_quantile(column: str, q: float) -> pl.Expr:
    """The ``q`` quantile of an integer nanosecond column, in milliseconds: interpolated in
    nanoseconds, then converted once (a percentile that falls on a value is that value's exact
    milliseconds)."""
    return ns_to_ms(quantile(pl.col(column), q))


def duration_aggregations(column: str = "duration_ns") -> list[pl.Expr]:
    duration = pl.col(column)
    return [
        duration.count().alias("count"),
        ns_to_ms(duration.mean()).alias("mean_ms"),
        *(ms_quantile(column, p / 100).alias(f"p{p}_ms") for p in PERCENTILES),
        ns_to_ms(duration.max()).alias("max_ms"),
    ]


def request_errors_expr() -> pl.Expr:
    """A request is in error when its root is; a root without status of its own (unset, or
    derived from logs) is in error when any span of its trace is (algorithms.md)."""
    return (
        pl.when(pl.col("status") == "unset")
        .then(pl.col("_trace_has_error"))
        .otherwise(pl.col("status") == "error")
    )


def requests(analysed: pl.DataFrame) -> pl.DataFrame:
    """One row per request (a true root span): trace, stage, service, start, duration, errors."""
    per_trace = analysed.group_by("trace_id").agg(
        _trace_has_error=(pl.col("status") == "error").any(),
        _trace_errors=(pl.col("status") == "error").sum(),
        _trace_spans=pl.len(),
    )
    return (
        analysed.filter(pl.col("is_root"))
        .join(per_trace, on="trace_id", how="left")
        .with_columns(request_error=request_errors_expr())
        .select(
            "trace_id",
            "span_id",
            "name",
            "service",
            "start_ns",
            "duration_ns",
            "cp_ns",
            "request_error",
            spans=pl.col("_trace_spans"),
            error_spans=pl.col("_trace_errors"),
        )
    )


def selected_requests(
    analysed: pl.DataFrame, selected: pl.DataFrame, *, filtered: bool
) -> pl.DataFrame:
    """The request table of the requests whose root span is among ``selected`` (the spans a
    filter kept; all of ``analysed`` when not ``filtered``, and then no join is needed)."""
    table = requests(analysed)
    if not filtered:
        return table
    return table.join(
        selected.select("trace_id", "span_id"), on=["trace_id", "span_id"], how="semi"
    )


def request_summary(requests_frame: pl.DataFrame) -> dict[str, float | int | None]:
    """``REQUEST_KEYS`` over the given requests: count, mean/percentiles/max in ms (null
    without timed requests), errors and error rate."""
    row: dict[str, float | int | None] = dict.fromkeys(REQUEST_KEYS)
    row.update(count=requests_frame.height, errors=0)
    if requests_frame.is_empty():
        return row
    row.update(
        requests_frame.select(
            *duration_aggregations(),
            errors=pl.col("request_error").sum(),
        ).row(0, named=True)
    )
    errors = row["errors"] or 0
    row["error_rate"] = errors / requests_frame.height
    return {key: row[key] for key in REQUEST_KEYS}


def selected_request_summary(
    analysed: pl.DataFrame, selected: pl.DataFrame, *, filtered: bool
) -> dict[str, float | int | None]:
    """The request summary of the requests whose root span is among ``selected``."""
    return request_summary(selected_requests(analysed, selected, filtered=filtered))


@dataclass(frozen=True)
class Histogram:
    """Counts of durations in ``len(counts)`` bins of equal width on a log axis from
    ``low_ns`` (the group's shortest positive duration) to ``high_ns`` (its longest): bin ``i``
    holds ``low * r**i <= d < low * r**(i + 1)`` with ``r = (high / low) ** (1 / bins)``, the
    longest in the last bin. Zero and negative durations have no place on a log axis: they are
    counted in ``nonpositive``."""

    low_ns: int
    high_ns: int
    counts: list[int]
    nonpositive: int = 0

    def edges_ns(self) -> list[float]:
        """The ``len(counts) + 1`` bin edges."""
        bins = len(self.counts)
        ratio = (self.high_ns / self.low_ns) ** (1 / bins) if self.high_ns > self.low_ns else 1.0
        return [self.low_ns * ratio**i for i in range(bins + 1)]


def log_histograms(
    frame: pl.DataFrame, keys: Sequence[str], *, bins: int
) -> dict[tuple[object, ...], Histogram]:
    """Per group of ``keys``, the ``Histogram`` of its spans' ``duration_ns``."""
    logged = pl.col("duration_ns").cast(pl.Float64).log()
    low, high = logged.min().over(keys), logged.max().over(keys)
    width = (high - low).clip(lower_bound=1e-12)
    position = ((logged - low) / width * bins).floor().clip(upper_bound=bins - 1).cast(pl.Int32)
    positive = frame.filter(pl.col("duration_ns") > 0)
    binned = (
        positive.with_columns(_bin=position).group_by([*keys, "_bin"]).len().sort([*keys, "_bin"])
    )
    ranges = positive.group_by(keys).agg(
        _low=pl.col("duration_ns").min(), _high=pl.col("duration_ns").max()
    )
    nonpositive = frame.filter(pl.col("duration_ns") <= 0).group_by(keys).len()
    return histograms_from(ranges, binned, nonpositive, keys, bins=bins)


def histograms_from(
    ranges: pl.DataFrame,
    binned: pl.DataFrame,
    nonpositive: pl.DataFrame,
    keys: Sequence[str],
    *,
    bins: int,
) -> dict[tuple[object, ...], Histogram]:
    """The ``Histogram`` per group from its counts, whichever engine counted them: ``ranges``
    (keys, ``_low``, ``_high``: the shortest and longest positive durations), ``binned`` (keys,
    ``_bin``, ``len``) and ``nonpositive`` (keys, ``len``)."""
    out: dict[tuple[object, ...], Histogram] = {}
    for row in ranges.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        out[key] = Histogram(low_ns=row["_low"], high_ns=row["_high"], counts=[0] * bins)
    for row in binned.iter_rows(named=True):
        out[tuple(row[k] for k in keys)].counts[row["_bin"]] = row["len"]
    for row in nonpositive.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        if key in out:
            out[key] = replace(out[key], nonpositive=row["len"])
    return out
