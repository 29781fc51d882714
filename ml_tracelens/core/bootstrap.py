"""The request-level bootstrap: statistics of resampled runs, and intervals of paired changes.

The resampling unit is the request: each replicate draws as many traces as the sample has, with
replacement, and keeps every row of a drawn trace, so the spans of one request stay together (a
retried stage, a slow trace slowing all its stages). Replicate r of one side is paired with
replicate r of the other; an interval is the 2.5th and 97.5th percentile of the B paired
differences (the percentile method, 95%), with the two-sided bootstrap p-value beside it. Draws
come from SplitMix64 computed in polars expressions (UInt64 arithmetic wraps), keyed by the
seed and the side, so a run is reproducible for a given seed. Replicates are processed in chunks
bounded by ``ROW_BUDGET`` resampled rows, so memory stays flat while time grows with B x rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.significance import bootstrap_p_value
from ml_tracelens.core.stats import quantile

CONFIDENCE = 0.95
DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 1
#: Resampled rows held at once while bootstrapping.
ROW_BUDGET = 4_000_000
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


@dataclass(frozen=True)
class Bootstrap:
    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED


def splitmix64(state: int) -> int:
    """One SplitMix64 output for a 64-bit state (the reference the polars version follows)."""
    z = state & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def splitmix64_expr(counter: pl.Expr, start: int) -> pl.Expr:
    """The i-th SplitMix64 output of a stream whose state starts at ``start``."""
    z = pl.lit(start, pl.UInt64) + (counter.cast(pl.UInt64) + 1) * pl.lit(_GOLDEN, pl.UInt64)
    z = (z ^ (z // (1 << 30))) * pl.lit(_MIX1, pl.UInt64)
    z = (z ^ (z // (1 << 27))) * pl.lit(_MIX2, pl.UInt64)
    return z ^ (z // (1 << 31))


def replicate_estimates(
    frame: pl.DataFrame,
    aggregations: Sequence[pl.Expr],
    *,
    group: str,
    settings: Bootstrap,
    side: int,
) -> pl.DataFrame:
    """``aggregations`` per (replicate ``rep``, ``group``) over whole-trace resamples of
    ``frame`` (which has a ``trace_id`` column); ``side`` keys the random stream."""
    trace_ids = frame.get_column("trace_id").unique().sort()
    n = trace_ids.len()
    if n < 2 or settings.replicates < 1:
        return pl.DataFrame(schema={"rep": pl.Int64, group: frame.schema[group]})
    # Integer keys: grouping 10^7 resampled rows by (int, int) is about twice as fast as by a
    # string, and the group values come back with one small join at the end.
    groups = frame.select(pl.col(group).unique()).with_row_index("_gid")
    indexed = (
        frame.join(
            pl.DataFrame(
                {"trace_id": trace_ids, "slot": pl.int_range(n, eager=True, dtype=pl.Int64)}
            ),
            on="trace_id",
        )
        .join(groups, on=group, nulls_equal=True)
        .drop("trace_id", group)
    )
    start = splitmix64(settings.seed * 2 + side)
    chunk = max(1, ROW_BUDGET // max(frame.height, 1))
    parts = []
    for first in range(0, settings.replicates, chunk):
        count = min(chunk, settings.replicates - first)
        counter = pl.int_range(first * n, (first + count) * n, dtype=pl.Int64)
        draws = pl.select(
            rep=counter // n,
            # Lemire's multiply-shift maps the top 32 random bits onto 0..n-1 without a modulo.
            slot=((splitmix64_expr(counter, start) // (1 << 32)) * n // (1 << 32)).cast(pl.Int64),
        )
        parts.append(draws.join(indexed, on="slot").group_by("rep", "_gid").agg(*aggregations))
    return pl.concat(parts, how="vertical").join(groups, on="_gid").drop("_gid")


def paired_intervals(
    baseline: pl.DataFrame, current: pl.DataFrame, *, group: str, metrics: Sequence[str]
) -> pl.DataFrame:
    """Per (``group``, metric): ``ci_low``/``ci_high``, the percentile interval of the paired
    replicate differences (current - baseline), and their bootstrap ``p_value``."""
    alpha = (1 - CONFIDENCE) / 2
    if baseline.is_empty() or current.is_empty():
        return pl.DataFrame(schema={group: pl.String, "metric": pl.String})
    paired = baseline.join(current, on=["rep", group], suffix="_cur", nulls_equal=True)
    return (
        paired.select(group, *(pl.col(f"{m}_cur") - pl.col(m) for m in metrics))
        .unpivot(index=group, variable_name="metric", value_name="delta")
        .with_columns(pl.col("metric").str.strip_suffix("_cur"))
        .group_by(group, "metric")
        .agg(
            ci_low=quantile(pl.col("delta"), alpha),
            ci_high=quantile(pl.col("delta"), 1 - alpha),
            p_value=bootstrap_p_value(pl.col("delta").drop_nans().drop_nulls()),
        )
    )
