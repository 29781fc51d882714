"""`tracelens diff`: compare a baseline dump with a current one, per stage and for the requests.

Per stage (spans of that name) and for the requests (root spans; ``stage`` null): count,
p50/p95/p99 (ms, linear interpolation as everywhere) and error_rate (a fraction) on both sides,
the absolute change (current - baseline, same unit) and the relative change in percent of the
baseline (null when the baseline is 0). Stages found on one side only are listed as appeared or
disappeared.

Noise: each change gets a bootstrap confidence interval (``ci_low``/``ci_high``, in the unit of
the change). The resampling unit is the request: each replicate draws as many traces as the
side has, with replacement, and keeps every span of a drawn trace, so spans of one request stay
together (a retried stage, a slow trace slowing all its stages). Replicate r of the baseline is
paired with replicate r of the current side; the interval is the 2.5th and 97.5th percentile of
the B paired differences (the percentile method, 95%). B defaults to 1000; draws come from
SplitMix64 computed in polars expressions (UInt64 arithmetic wraps), keyed by the seed and the
side, so a run is reproducible for a given seed. Replicates are processed in chunks bounded by
``ROW_BUDGET`` resampled rows, so memory stays flat while time grows with B x spans.

Gate (``--fail-on`` rules, budgets.py): a row is a regression when a rule for its stage (or an
unprefixed rule, which applies to every stage and to the requests) is exceeded by the point
estimate **and** the interval lies wholly on the rule's side of zero (above it for ``>``/``>=``
rules, below for ``<``/``<=``), **and** both sides have enough samples: a percentile p needs
``ceil(10 / (1 - p/100))`` timed spans on each side (10 expected beyond it: 20 for p50, 200 for
p95, 1000 for p99) and error_rate needs 20; below that the row says "too few samples" and is
never flagged. count has no interval (it is not an estimate) and is flagged on the threshold
alone. A rule naming a stage that is missing on either side fails the gate with a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ml_tracelens.budgets import Rule
from ml_tracelens.reports.model import Column, ColumnKind, Report, Table
from ml_tracelens.reports.stats import requests

METRICS = ("count", "p50", "p95", "p99", "error_rate")
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
#: Expected samples beyond a percentile that it takes to trust it (see the module docstring).
TAIL_SAMPLES = 10
MIN_ERROR_RATE_SAMPLES = 20
CONFIDENCE = 0.95
DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 1
#: Resampled rows held at once while bootstrapping.
ROW_BUDGET = 4_000_000
NS_PER_MS = 1_000_000.0
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

COLUMNS = (
    Column("stage", "stage"),
    Column("metric", "metric"),
    Column("baseline", "baseline", ColumnKind.FLOAT),
    Column("current", "current", ColumnKind.FLOAT),
    Column("change", "change", ColumnKind.FLOAT),
    Column("change_pct", "change %", ColumnKind.FLOAT),
    Column("ci_low", "ci low", ColumnKind.FLOAT),
    Column("ci_high", "ci high", ColumnKind.FLOAT),
    Column("regression", "regression", ColumnKind.BOOL),
    Column("note", "note"),
)


@dataclass(frozen=True)
class Bootstrap:
    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED


def min_samples(metric: str) -> int:
    if metric in QUANTILES:
        return math.ceil(round(TAIL_SAMPLES / (1 - QUANTILES[metric]), 9))
    return MIN_ERROR_RATE_SAMPLES if metric == "error_rate" else 0


def splitmix64(state: int) -> int:
    """One SplitMix64 output for a 64-bit state (the reference the polars version follows)."""
    z = state & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _splitmix64_expr(counter: pl.Expr, start: int) -> pl.Expr:
    """The i-th SplitMix64 output of a stream whose state starts at ``start``."""
    z = pl.lit(start, pl.UInt64) + (counter.cast(pl.UInt64) + 1) * pl.lit(_GOLDEN, pl.UInt64)
    z = (z ^ (z // (1 << 30))) * pl.lit(_MIX1, pl.UInt64)
    z = (z ^ (z // (1 << 27))) * pl.lit(_MIX2, pl.UInt64)
    return z ^ (z // (1 << 31))


def units(analysed: pl.DataFrame) -> pl.DataFrame:
    """What diff measures: every span under its stage, plus each request under stage null."""
    spans = analysed.select(
        "trace_id",
        stage=pl.col("name"),
        duration_ns=pl.col("duration_ns"),
        error=(pl.col("status") == "error").fill_null(False),
        request=pl.lit(False),
    )
    roots = requests(analysed).select(
        "trace_id",
        stage=pl.lit(None, pl.String),
        duration_ns=pl.col("duration_ns"),
        error=pl.col("request_error").fill_null(False),
        request=pl.lit(True),
    )
    return pl.concat([roots, spans], how="vertical")


def _aggregations() -> list[pl.Expr]:
    duration = pl.col("duration_ns").cast(pl.Float64) / NS_PER_MS
    return [
        *(duration.quantile(q, "linear").alias(m) for m, q in QUANTILES.items()),
        pl.col("error").mean().alias("error_rate"),
    ]


def point_estimates(frame: pl.DataFrame) -> pl.DataFrame:
    """Per stage: count (requests: all; stages: timed spans, as `latency`), p50/p95/p99 ms,
    error_rate, and ``timed`` (the sample size of the percentiles)."""
    return frame.group_by("stage").agg(
        *_aggregations(),
        count=pl.when(pl.col("request").first())
        .then(pl.len())
        .otherwise(pl.col("duration_ns").count()),
        timed=pl.col("duration_ns").count(),
        samples=pl.len(),
    )


def replicate_estimates(
    frame: pl.DataFrame, *, replicates: int, seed: int, side: int
) -> pl.DataFrame:
    """p50/p95/p99 and error_rate per (replicate, stage) over whole-trace resamples."""
    trace_ids = frame.get_column("trace_id").unique().sort()
    n = trace_ids.len()
    if n < 2 or replicates < 1:
        return pl.DataFrame(schema={"rep": pl.Int64, "stage": pl.String})
    # Integer keys: grouping 10^7 resampled rows by (int, int) is about twice as fast as by a
    # string stage, and the stage names come back with one small join at the end.
    stages = frame.select(pl.col("stage").unique()).with_row_index("sid")
    indexed = (
        frame.join(
            pl.DataFrame(
                {"trace_id": trace_ids, "slot": pl.int_range(n, eager=True, dtype=pl.Int64)}
            ),
            on="trace_id",
        )
        .join(stages, on="stage", nulls_equal=True)
        .select("slot", "sid", "duration_ns", "error")
    )
    start = splitmix64(seed * 2 + side)
    chunk = max(1, ROW_BUDGET // max(frame.height, 1))
    parts = []
    for first in range(0, replicates, chunk):
        count = min(chunk, replicates - first)
        counter = pl.int_range(first * n, (first + count) * n, dtype=pl.Int64)
        draws = pl.select(
            rep=counter // n,
            # Lemire's multiply-shift maps the top 32 random bits onto 0..n-1 without a modulo.
            slot=((_splitmix64_expr(counter, start) // (1 << 32)) * n // (1 << 32)).cast(pl.Int64),
        )
        parts.append(draws.join(indexed, on="slot").group_by("rep", "sid").agg(*_aggregations()))
    return pl.concat(parts, how="vertical").join(stages, on="sid").drop("sid")


def intervals(baseline: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Per stage and metric: the percentile interval of the paired replicate differences."""
    alpha = (1 - CONFIDENCE) / 2
    metrics = [*QUANTILES, "error_rate"]
    if baseline.is_empty() or current.is_empty():
        return pl.DataFrame(schema={"stage": pl.String, "metric": pl.String})
    paired = baseline.join(current, on=["rep", "stage"], suffix="_cur", nulls_equal=True)
    return (
        paired.select("stage", *(pl.col(f"{m}_cur") - pl.col(m) for m in metrics))
        .unpivot(index="stage", variable_name="metric", value_name="delta")
        .with_columns(pl.col("metric").str.strip_suffix("_cur"))
        .group_by("stage", "metric")
        .agg(
            ci_low=pl.col("delta").quantile(alpha, "linear"),
            ci_high=pl.col("delta").quantile(1 - alpha, "linear"),
        )
    )


def compare(
    *,
    baseline: pl.DataFrame,
    current: pl.DataFrame,
    rules: Sequence[Rule] = (),
    bootstrap: Bootstrap | None = None,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Rows (one per stage and metric), and the stages that appeared and disappeared.

    ``baseline`` and ``current`` are analysed span frames (core.analyze).
    """
    settings = bootstrap or Bootstrap()
    base_units, cur_units = units(baseline), units(current)
    base, cur = point_estimates(base_units), point_estimates(cur_units)
    ci = intervals(
        replicate_estimates(base_units, replicates=settings.replicates, seed=settings.seed, side=0),
        replicate_estimates(cur_units, replicates=settings.replicates, seed=settings.seed, side=1),
    )
    base_stages = {s for s in base.get_column("stage").to_list() if s is not None}
    cur_stages = {s for s in cur.get_column("stage").to_list() if s is not None}
    appeared = sorted(cur_stages - base_stages)
    disappeared = sorted(base_stages - cur_stages)
    named = {r.stage for r in rules if r.stage is not None}
    stages: list[str | None] = [None, *sorted(base_stages | cur_stages | named)]
    by_stage = {
        "base": {row["stage"]: row for row in base.iter_rows(named=True)},
        "cur": {row["stage"]: row for row in cur.iter_rows(named=True)},
        "ci": {(row["stage"], row["metric"]): row for row in ci.iter_rows(named=True)},
    }
    rows = []
    for stage in stages:
        b, c = by_stage["base"].get(stage), by_stage["cur"].get(stage)
        for metric in METRICS:
            applicable = [r for r in rules if r.metric == metric and r.stage in (None, stage)]
            rows.append(_row(stage, metric, b, c, by_stage["ci"].get((stage, metric)), applicable))
    return rows, appeared, disappeared


def _row(
    stage: str | None,
    metric: str,
    base: dict[str, Any] | None,
    cur: dict[str, Any] | None,
    ci: dict[str, Any] | None,
    rules: list[Rule],
) -> dict[str, Any]:
    before = base.get(metric) if base else None
    after = cur.get(metric) if cur else None
    change = after - before if before is not None and after is not None else None
    change_pct = 100 * change / before if change is not None and before else None
    low = ci["ci_low"] if ci and metric != "count" else None
    high = ci["ci_high"] if ci and metric != "count" else None
    row = {
        "stage": stage,
        "metric": metric,
        "baseline": before,
        "current": after,
        "change": change,
        "change_pct": change_pct,
        "ci_low": low,
        "ci_high": high,
        "regression": False,
        "note": None,
        "_gated": bool(rules),  # covered by a --fail-on rule: a JUnit testcase (not in JSON)
    }
    notes: list[str] = []
    if base is None or cur is None:
        side = "baseline" if base is None else "current"
        notes.append(f"{'appeared' if base is None else 'disappeared'}: not in {side}")
        named = [r.text for r in rules if r.stage is not None and r.stage == stage]
        if named:
            # A gate naming a stage never passes because the stage is gone.
            row["regression"] = True
            notes.append(f"{', '.join(map(repr, named))} cannot be evaluated")
        if base is None and cur is None:
            notes[0] = "stage in neither baseline nor current"
        row["note"] = "; ".join(notes)
        return row
    needed = min_samples(metric)
    size_key = "timed" if metric in QUANTILES else "samples"
    smallest = min(base[size_key], cur[size_key])
    too_few = smallest < needed
    if too_few:
        notes.append(f"too few samples ({smallest:,} < {needed:,})")
    for rule in rules:
        if not _exceeded(rule, change, change_pct, before):
            continue
        if too_few:
            notes.append(f"{rule.text!r} not applied")
        elif metric == "count" or _interval_agrees(rule, low, high):
            row["regression"] = True
            notes.append(f"exceeds {rule.text!r}")
        else:
            notes.append(f"{rule.text!r} exceeded but within noise (interval includes 0)")
    row["note"] = "; ".join(notes) or None
    return row


def _exceeded(
    rule: Rule, change: float | None, change_pct: float | None, before: float | None
) -> bool:
    if rule.relative and change_pct is None and change and before == 0:
        # From zero, any rise is an infinite relative rise (e.g. error_rate 0 -> 2%).
        return rule.op in (">", ">=") if change > 0 else rule.op in ("<", "<=")
    return rule.exceeded(change, change_pct)


def _interval_agrees(rule: Rule, low: float | None, high: float | None) -> bool:
    if low is None or high is None:
        return False
    return low > 0 if rule.op in (">", ">=") else high < 0


def build(
    *,
    baseline: pl.DataFrame,
    current: pl.DataFrame,
    rules: Sequence[Rule] = (),
    bootstrap: Bootstrap | None = None,
    inputs: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The diff report; ``exit_code`` is 1 when a --fail-on rule found a regression."""
    settings = bootstrap or Bootstrap()
    rows, appeared, disappeared = compare(
        baseline=baseline, current=current, rules=rules, bootstrap=settings
    )
    regressions = sum(row["regression"] for row in rows)
    headline = [
        f"Requests: baseline {_requests(rows, 'baseline')}, current {_requests(rows, 'current')}; "
        "stage '-' is the requests (root spans)",
        f"95% intervals from {settings.replicates:,} bootstrap replicates over requests "
        f"(seed {settings.seed})",
    ]
    if appeared:
        headline.append("Appeared: " + ", ".join(appeared))
    if disappeared:
        headline.append("Disappeared: " + ", ".join(disappeared))
    if rules:
        headline.append(
            f"REGRESSION: {regressions} of the compared values fail --fail-on"
            if regressions
            else "PASSED: no regression beyond the --fail-on rules"
        )
    return Report(
        name="diff",
        title="tracelens diff",
        headline=headline,
        tables=[Table(key="rows", title="Changes", columns=COLUMNS, rows=rows)],
        data={
            "passed": not regressions,
            "regressions": regressions,
            "rules": [r.text for r in rules],
            "appeared": appeared,
            "disappeared": disappeared,
            "bootstrap": {
                "replicates": settings.replicates,
                "seed": settings.seed,
                "confidence": CONFIDENCE,
                "unit": "request",
            },
        },
        inputs=inputs or [],
        warnings=warnings or [],
        exit_code=1 if regressions else 0,
    )


def _requests(rows: list[dict[str, Any]], side: str) -> str:
    for row in rows:
        if row["stage"] is None and row["metric"] == "count":
            return f"{row[side]:,}" if row[side] is not None else "none"
    return "none"
