"""The reports of the Spark engine: ``latency``, ``errors`` and ``bottlenecks`` of analysed spans
(``engine.analyze``) aggregated in Spark (exact percentiles, by the linear interpolation of
``core.stats``), the small per-group frames collected and built into the local ``Result`` by the
local report builders.

pyspark is imported inside the functions only: importing this module never needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import polars as pl

from ml_tracelens.api.results import Result
from ml_tracelens.core.stats import (
    BUILTIN_KEYS,
    PERCENTILES,
    REQUEST_KEYS,
    Histogram,
    histograms_from,
    with_group_columns,
)
from ml_tracelens.durations import NS_PER_MS
from ml_tracelens.reports import bottlenecks as bottlenecks_report
from ml_tracelens.reports import errors as errors_report
from ml_tracelens.reports import latency as latency_report
from ml_tracelens.reports.context import analysis_warnings
from ml_tracelens.reports.documents import RequestSummary
from ml_tracelens.reports.result import JsonValue
from ml_tracelens.schema import SPAN_SCHEMA
from ml_tracelens.spark.engine import DEFAULT_GROUPS, group_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

#: The columns latency aggregates, carried beside the group keys under a prefix (a key may
#: be named ``status``, as a column is).
_VALUE = "_value_"
_VALUES = ("duration_ns", "self_ns", "cp_ns", "status")


def _collect(frame: DataFrame) -> pl.DataFrame:
    collected = pl.from_arrow(frame.toArrow())
    assert isinstance(collected, pl.DataFrame)
    return collected


def _duration_aggregations(column: str = "duration_ns") -> list[Column]:
    """``core.stats.duration_aggregations`` in Spark: exact percentiles (``percentile``, linear
    interpolation between closest ranks, the rule of ``core.stats.quantile``), each statistic
    taken in nanoseconds and converted once, as there."""
    from pyspark.sql import functions as F

    duration = F.col(column).cast("double")
    percentiles = F.percentile(duration, [p / 100 for p in PERCENTILES])
    return [
        F.count(column).alias("count"),
        (F.avg(duration) / NS_PER_MS).alias("mean_ms"),
        F.transform(percentiles, lambda value: value / NS_PER_MS).alias("_percentiles"),
        (F.max(duration) / NS_PER_MS).alias("max_ms"),
    ]


def _split_percentiles(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("_percentiles").list.get(i, null_on_oob=True).alias(f"p{p}_ms")
        for i, p in enumerate(PERCENTILES)
    ).drop("_percentiles")


def _is_error(status: str = "status") -> Column:
    from pyspark.sql import functions as F

    return F.when(F.col(status) == "error", 1).otherwise(0)


def request_summary(spans: DataFrame) -> RequestSummary:
    """``reports.context.requests_of`` in Spark: the requests (root spans), their durations and
    errors; a root without status of its own is in error when any span of its trace is."""
    from pyspark.sql import functions as F

    per_trace = spans.groupBy("trace_id").agg(
        F.max(F.col("status") == "error").alias("_trace_has_error")
    )
    roots = (
        spans.filter(F.col("is_root"))
        .join(per_trace, on="trace_id", how="left")
        .withColumn(
            "request_error",
            F.when(F.col("status") == "unset", F.col("_trace_has_error")).otherwise(
                F.col("status") == "error"
            ),
        )
    )
    found = _split_percentiles(
        _collect(
            roots.agg(
                F.count(F.lit(1)).alias("_requests"),
                *_duration_aggregations(),
                F.sum(F.col("request_error").cast("long")).alias("errors"),
            )
        )
    ).row(0, named=True)
    requests = int(found["_requests"])
    row: dict[str, float | int | None] = dict.fromkeys(REQUEST_KEYS)
    row.update(count=requests, errors=0)
    if requests:
        row.update({key: found[key] for key in REQUEST_KEYS if key in found})
        errors = int(found["errors"] or 0)
        row.update(errors=errors, error_rate=errors / requests)
    return msgspec.convert(row, RequestSummary)


def warnings(spans: DataFrame) -> list[str]:
    """The warnings a local run gives about the spans analysed (identical duplicates merged,
    orphans, traces with several roots, clock skew...), summed over the groups ``analyze`` ran
    (none for a frame without its ``_group_structure`` column)."""
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    column = "_group_structure"
    if column not in spans.columns:
        return []
    found = spans.filter(F.col(column).isNotNull()).select(column).toArrow()
    structure, merged = kernels.merged_structure(found.column(0).to_pylist())
    return analysis_warnings(merged, structure)


def _keyed(spans: DataFrame, by: Sequence[str]) -> tuple[DataFrame, list[str]]:
    """``spans`` with one column per ``--by`` key (``kernels.KEY`` + its index; attributes read
    by the local code, ``core.stats.with_group_columns``, in ``mapInArrow``), and the keys'
    names."""
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    _, names = with_group_columns(pl.DataFrame(schema=SPAN_SCHEMA), by)
    items = [b.strip() for b in by]
    values = [F.col(k).alias(_VALUE + k) for k in _VALUES]
    if all(item in BUILTIN_KEYS for item in items):
        keys = [
            F.col(BUILTIN_KEYS[item]).alias(f"{kernels.KEY}{i}") for i, item in enumerate(items)
        ]
        return spans.select(*values, *keys), names
    from pyspark.sql.types import StringType, StructField, StructType

    kept = spans.select(*values, *BUILTIN_KEYS.values(), "attributes", "resource")
    out = StructType(
        [
            *(f for f in kept.schema.fields if f.name.startswith(_VALUE)),
            *(StructField(f"{kernels.KEY}{i}", StringType()) for i in range(len(names))),
        ]
    )
    run = functools.partial(
        kernels.group_key_batches, by=list(by), keep=[_VALUE + k for k in _VALUES]
    )
    return kept.mapInArrow(run, out), names


def latency(
    spans: DataFrame,
    *,
    by: str | Sequence[str] = "stage",
    sort: str | None = None,
    top: int | None = None,
    distribution: bool = False,
    inputs: list[dict[str, JsonValue]] | None = None,
    with_warnings: bool = True,
) -> Result:
    """``ml_tracelens.latency`` on analysed spans (``analyze``): the same ``Result``, its
    per-group statistics (and with ``distribution``, histograms) computed in Spark."""
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    listed = by.split(",") if isinstance(by, str) else list(by)
    keyed, names = _keyed(spans, listed)
    latency_report.checked_sort(sort, names)
    denominator = _collect(
        spans.filter(F.col("span_id") == F.col("top_id")).agg(
            F.sum(F.greatest(F.coalesce(F.col("duration_ns"), F.lit(0)), F.lit(0))).alias("d")
        )
    ).item()
    denominator = int(denominator or 0)
    stats = _split_percentiles(
        _collect(
            keyed.groupBy(*(f"{kernels.KEY}{i}" for i in range(len(names)))).agg(
                *_duration_aggregations(_VALUE + "duration_ns"),
                (F.avg(F.col(_VALUE + "self_ns").cast("double")) / NS_PER_MS).alias("self_mean_ms"),
                F.sum(F.coalesce(F.col(_VALUE + "cp_ns"), F.lit(0))).alias("_cp_ns"),
                F.sum(_is_error(_VALUE + "status")).cast("long").alias("errors"),
                F.count(F.lit(1)).alias("_spans"),
            )
        )
    ).rename({f"{kernels.KEY}{i}": name for i, name in enumerate(names)})
    stats = stats.with_columns(
        cp_share=(pl.col("_cp_ns") / denominator) if denominator else pl.lit(None, pl.Float64),
        error_rate=pl.col("errors") / pl.col("_spans"),
    )
    return Result(
        latency_report.from_stats(
            stats=stats,
            names=names,
            requests=request_summary(spans),
            histograms=_histograms(keyed, names) if distribution else None,
            sort=sort,
            top=top,
            inputs=inputs,
            warnings=warnings(spans) if with_warnings else None,
        )
    )


def _histograms(keyed: DataFrame, names: Sequence[str]) -> dict[tuple[object, ...], Histogram]:
    """``core.stats.log_histograms`` of the ``_keyed`` spans, counted in Spark."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    bins = latency_report.HISTOGRAM_BINS
    keys = [f"{kernels.KEY}{i}" for i in range(len(names))]
    duration = F.col(_VALUE + "duration_ns")
    logged = F.log(duration.cast("double"))
    group = Window.partitionBy(*keys)
    low, high = F.min(logged).over(group), F.max(logged).over(group)
    width = F.greatest(high - low, F.lit(1e-12))
    position = F.least(F.floor((logged - low) / width * bins), F.lit(bins - 1)).cast("int")
    positive = keyed.filter(duration > 0)
    renamed = dict(zip(keys, names, strict=True))
    binned = _collect(
        positive.select(*keys, position.alias("_bin"))
        .groupBy(*keys, "_bin")
        .agg(F.count(F.lit(1)).alias("len"))
    ).rename(renamed)
    ranges = _collect(
        positive.groupBy(*keys).agg(F.min(duration).alias("_low"), F.max(duration).alias("_high"))
    ).rename(renamed)
    nonpositive = _collect(
        keyed.filter(duration <= 0).groupBy(*keys).agg(F.count(F.lit(1)).alias("len"))
    ).rename(renamed)
    return histograms_from(ranges, binned, nonpositive, names, bins=bins)


def errors(
    spans: DataFrame,
    logs: DataFrame | None = None,
    *,
    top: int = 10,
    inputs: list[dict[str, JsonValue]] | None = None,
    with_warnings: bool = True,
) -> Result:
    """``ml_tracelens.errors`` on analysed spans (``analyze``) and, for the messages of error
    log lines, the dataset's log rows: the same ``Result``, counted in Spark."""
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    per_stage = _collect(
        spans.groupBy("name").agg(
            F.count(F.lit(1)).alias("spans"),
            F.sum(_is_error()).cast("long").alias("errors"),
            F.sum(F.col("error_originated").cast("long")).alias("originated"),
        )
    ).rename({"name": "stage"})
    needed = spans.select("trace_id", "span_id", "name", "status", "status_message", "start_ns")
    if logs is None:
        records = needed.filter(F.col("status") == "error").mapInArrow(
            kernels.message_batches, kernels.MESSAGES_DDL
        )
    else:
        key = kernels.GROUP
        left = needed.withColumn(key, group_column(F.col("trace_id"), DEFAULT_GROUPS))
        log_key = F.coalesce(F.col("trace_id"), F.col("correlation_id"))
        right = logs.withColumn(key, group_column(log_key, DEFAULT_GROUPS))
        records = (
            left.groupBy(key)
            .cogroup(right.groupBy(key))
            .applyInArrow(kernels.message_cogroup, kernels.MESSAGES_DDL)
        )
    by_message = (
        records.groupBy("message")
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.array_sort(F.collect_set("stage")).alias("stages"),
            F.min("time_ns").alias("first_ns"),
            F.max("time_ns").alias("last_ns"),
            F.min("trace_id").alias("example_trace_id"),
        )
        .cache()
    )
    try:
        messages = _collect(
            by_message.orderBy(F.col("count").desc(), F.col("message").asc()).limit(max(top, 0))
        )
        distinct_messages = by_message.count()
    finally:
        by_message.unpersist()
    return Result(
        errors_report.from_counts(
            per_stage=per_stage,
            requests=request_summary(spans),
            messages=messages,
            distinct_messages=distinct_messages,
            top=top,
            inputs=inputs,
            warnings=warnings(spans) if with_warnings else None,
        )
    )


def bottlenecks(
    spans: DataFrame,
    *,
    tail: float = 0.95,
    top: int | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    with_warnings: bool = True,
) -> Result:
    """``ml_tracelens.bottlenecks`` on analysed spans (``analyze``): the same ``Result``, its
    critical-path sums and request quantiles computed in Spark."""
    from pyspark.sql import functions as F

    bottlenecks_report.checked_tail(tail)
    low_q, high_q = bottlenecks_report.TYPICAL_BAND
    tops = spans.filter(
        (F.col("span_id") == F.col("top_id")) & F.col("duration_ns").isNotNull()
    ).select("trace_id", F.col("top_id").alias("request_id"), F.col("duration_ns").alias("ns"))
    found = _collect(
        tops.agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.greatest(F.col("ns"), F.lit(0))).alias("total"),
            F.percentile(F.col("ns"), [tail, low_q, high_q]).alias("q"),
        )
    ).row(0, named=True)
    request_count = int(found["n"])
    cut, low, high = found["q"] if request_count else (None, None, None)
    classified = tops.select(
        "trace_id",
        "request_id",
        (F.col("ns") > F.lit(cut) if cut is not None else F.lit(False)).alias("is_tail"),
        (F.col("ns").between(F.lit(low), F.lit(high)) if low is not None else F.lit(False)).alias(
            "is_typical"
        ),
    )
    counts = _collect(
        classified.agg(
            F.sum(F.col("is_tail").cast("long")).alias("tail_n"),
            F.sum(F.col("is_typical").cast("long")).alias("typical_n"),
        )
    ).row(0, named=True)
    split = bottlenecks_report.Split(
        requests=request_count,
        total_ns=int(found["total"] or 0),
        tail_cut=cut,
        low=low,
        high=high,
        tail_n=int(counts["tail_n"] or 0),
        typical_n=int(counts["typical_n"] or 0),
    )
    per_request = (
        spans.filter(F.coalesce(F.col("cp_ns"), F.lit(0)) > 0)
        .groupBy("trace_id", "top_id", "name")
        .agg(F.sum("cp_ns").alias("cp_ns"))
        .join(
            classified.withColumnRenamed("request_id", "top_id"),
            on=["trace_id", "top_id"],
            how="inner",
        )
    )
    sums = _collect(
        per_request.groupBy("name").agg(
            F.sum("cp_ns").alias("_cp_ns"),
            F.sum(F.when(F.col("is_tail"), F.col("cp_ns")).otherwise(0)).alias("_tail_ns"),
            F.sum(F.when(F.col("is_typical"), F.col("cp_ns")).otherwise(0)).alias("_typical_ns"),
        )
    )
    return Result(
        bottlenecks_report.from_sums(
            sums=sums,
            split=split,
            requests=request_summary(spans),
            tail=tail,
            top=top,
            inputs=inputs,
            warnings=warnings(spans) if with_warnings else None,
        )
    )
