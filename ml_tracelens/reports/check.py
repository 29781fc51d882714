"""`tracelens check`: evaluate budgets (budgets.py) against a dump; a failed budget fails the gate.

A budget with a stage is measured over the spans named so; without one, over the requests (root
spans; a request is in error as algorithms.md defines). The statistics mirror `tracelens latency`
(count = spans with a duration, percentiles by linear interpolation between closest ranks,
error_rate = error spans / spans, cp_share = critical-path time / the tree tops' durations) but
are computed exactly, as fractions of integer nanoseconds, so a budget sitting on a boundary
(``max<=120ms`` with a max of exactly 120 ms) never flips on float rounding.

A budget naming a stage that is not in the data fails with a note saying so; a metric without a
value (no timed spans, no requests) fails the same way: a gate never passes on missing data.

Model budgets (``low_confidence_rate``, ``psi.FIELD``; budgets.py) are measured on the model
records of `tracelens models` (reports/models.py, from the spans and the log lines); their
``stage`` is a model version. LLM budgets (``llm.ttft.p95``, ``llm.queue_share``...; budgets.py)
are the numbers `tracelens llm` prints (reports/llm.py), over every LLM request or, with a
``MODEL:`` prefix, over that model's.

Rows (JSON ``rows``): budget, stage (null for requests), metric, op, actual, limit, passed, note.
actual and limit are in the metric's natural unit: milliseconds for durations, a fraction 0..1 for
error_rate and cp_share, a number for count and errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import polars as pl

from ml_tracelens.core.llm import Aliases
from ml_tracelens.core.stats import PERCENTILES, exact_percentiles, requests
from ml_tracelens.durations import NS_PER_MS
from ml_tracelens.exceptions import quoted
from ml_tracelens.gates.budgets import (
    METRICS,
    Budget,
    MetricKind,
    format_limit,
    is_llm_metric,
    is_model_metric,
)
from ml_tracelens.reports.documents import CheckPayload
from ml_tracelens.reports.latency import cp_denominator_ns
from ml_tracelens.reports.metric_units import in_metric_unit
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

#: How many stage names a "not in the data" note lists.
LISTED_STAGES = 8

#: A row's actual and limit in its metric's unit (JSON keeps the numbers of the module docstring).
shown_as = in_metric_unit(METRICS)

COLUMNS = (
    # The budget holds its limit ("p95<=120ms"): shown whole; stage, metric and op restate it.
    Column("budget", "budget", ColumnKind.ID),
    Column("actual", "actual", ColumnKind.FLOAT, row_kind=shown_as),
    Column("limit", "limit", ColumnKind.FLOAT, row_kind=shown_as),
    Column("passed", "passed", ColumnKind.BOOL),
    Column("stage", "stage", hide_rank=3),
    Column("metric", "metric", hide_rank=2),
    Column("op", "op", hide_rank=1),
    Column("note", "note", ColumnKind.PROSE),
)


def exact_stats(
    frame: pl.DataFrame, *, error: pl.Expr, count_all: bool = False
) -> dict[str, Fraction | None]:
    """Every budget metric of ``frame``'s spans as exact fractions, durations in nanoseconds.

    ``error`` marks an erroneous row; ``count_all`` counts every row (requests) instead of the
    rows with a duration (stages, as `latency` does). cp_share is left to the caller (its
    denominator is over whole traces).
    """
    duration = pl.col("duration_ns")
    sums = frame.select(
        rows=pl.len(),
        timed=duration.count(),
        total=duration.sum(),
        max=duration.max(),
        errors=error.sum().cast(pl.Int64),
        self_n=pl.col("self_ns").count() if "self_ns" in frame.columns else pl.lit(0),
        self_total=pl.col("self_ns").sum() if "self_ns" in frame.columns else pl.lit(0),
        cp_total=pl.col("cp_ns").fill_null(0).sum() if "cp_ns" in frame.columns else pl.lit(0),
    ).row(0, named=True)
    rows, timed = int(sums["rows"]), int(sums["timed"])
    out: dict[str, Fraction | None] = {
        "count": Fraction(rows if count_all else timed),
        "errors": Fraction(int(sums["errors"] or 0)),
        "error_rate": Fraction(int(sums["errors"] or 0), rows) if rows else None,
        "mean": Fraction(int(sums["total"]), timed) if timed else None,
        "max": Fraction(int(sums["max"])) if timed else None,
        "self_mean": (
            Fraction(int(sums["self_total"]), int(sums["self_n"])) if sums["self_n"] else None
        ),
        "_cp_ns": Fraction(int(sums["cp_total"] or 0)),
    }
    percentiles = exact_percentiles(frame.get_column("duration_ns"), PERCENTILES)
    out.update({f"p{p}": percentiles.get(p) for p in PERCENTILES})
    return out


def _natural(metric_kind: MetricKind, value: Fraction) -> Fraction:
    return value / NS_PER_MS if metric_kind is MetricKind.DURATION else value


def evaluate(
    *,
    analysed: pl.DataFrame,
    budgets: Sequence[Budget],
    logs: pl.DataFrame | None = None,
    llm_aliases: Aliases | None = None,
) -> list[dict[str, JsonValue]]:
    """One row per budget, in the order given; ``logs`` feed model budgets with the spans;
    ``llm_aliases``: the keys LLM budgets read (core/llm.py)."""
    stages = analysed.get_column("name").drop_nulls().unique()
    present = set(stages.to_list())
    cache: dict[str | None, dict[str, Fraction | None]] = {}
    denominator: int | None = None
    model_values: dict[tuple[str | None, str], tuple[Fraction | float | None, str | None]] = {
        **_model_values(analysed, logs, budgets),
        **_llm_values(analysed, budgets, llm_aliases),
    }
    rows: list[dict[str, JsonValue]] = []
    for budget in budgets:
        note = None
        actual: Fraction | None = None
        if is_model_metric(budget.metric) or is_llm_metric(budget.metric):
            value, missing = model_values[(budget.stage, budget.metric)]
            actual = Fraction(value) if value is not None else None
            note = f"no value: {missing}" if missing else None
        elif budget.stage is not None and budget.stage not in present:
            note = _missing_note(budget.stage, sorted(present))
        else:
            if budget.stage not in cache:
                cache[budget.stage] = _stats_for(analysed, budget.stage)
            stats = cache[budget.stage]
            if budget.metric == "cp_share":
                if denominator is None:
                    denominator = cp_denominator_ns(analysed, analysed)
                cp_ns = stats["_cp_ns"]
                actual = cp_ns / denominator if denominator and cp_ns is not None else None
            else:
                actual = stats[budget.metric]
            if actual is None:
                note = _no_value_note(budget)
            else:
                actual = _natural(budget.kind, actual)
        passed = actual is not None and budget.holds(actual)
        if actual is not None and not passed:
            note = _failure_note(actual, budget)
        rows.append(
            {
                "budget": budget.text,
                "stage": budget.stage,
                "metric": budget.metric,
                "op": budget.op,
                "actual": _number(actual, budget.kind),
                "limit": _number(Fraction(budget.limit), budget.kind),
                "passed": passed,
                "note": note,
            }
        )
    return rows


def _number(value: Fraction | None, kind: MetricKind) -> float | int | None:
    if value is None:
        return None
    if kind is MetricKind.COUNT and value.denominator == 1:
        return int(value)
    return float(value)


def _model_values(
    analysed: pl.DataFrame, logs: pl.DataFrame | None, budgets: Sequence[Budget]
) -> dict[tuple[str | None, str], tuple[float | None, str | None]]:
    wanted = [(b.stage, b.metric) for b in budgets if is_model_metric(b.metric)]
    if not wanted:
        return {}
    from ml_tracelens.reports.models import budget_values
    from ml_tracelens.schema import empty_logs

    return budget_values(
        analysed=analysed, logs=logs if logs is not None else empty_logs(), wanted=wanted
    )


def _llm_values(
    analysed: pl.DataFrame, budgets: Sequence[Budget], aliases: Aliases | None
) -> dict[tuple[str | None, str], tuple[Fraction | float | None, str | None]]:
    wanted = [(b.stage, b.metric) for b in budgets if is_llm_metric(b.metric)]
    if not wanted:
        return {}
    from ml_tracelens.reports.llm import budget_values

    return budget_values(analysed=analysed, wanted=wanted, aliases=aliases)


def _stats_for(analysed: pl.DataFrame, stage: str | None) -> dict[str, Fraction | None]:
    if stage is None:
        return exact_stats(
            requests(analysed), error=pl.col("request_error").fill_null(False), count_all=True
        )
    return exact_stats(analysed.filter(pl.col("name") == stage), error=pl.col("status") == "error")


def _missing_note(stage: str, present: list[str]) -> str:
    close = difflib.get_close_matches(stage, present, n=3, cutoff=0.6)
    if close:
        return f"stage {quoted(stage)} is not in the data; did you mean {' or '.join(map(quoted, close))}?"
    listed = ", ".join(present[:LISTED_STAGES])
    more = f" and {len(present) - LISTED_STAGES} more" if len(present) > LISTED_STAGES else ""
    return f"stage {quoted(stage)} is not in the data (stages: {listed}{more})"


#: Decimal places tried, in turn, until a failing value and its limit print differently.
_FAILURE_PLACES = (3, 4, 5, 6, 7, 8, 9)


def _failure_note(actual: Fraction, budget: Budget) -> str:
    """``actual is not OP limit``, with the actual value shown to as many decimals as it takes
    to differ from the limit: a value that fails ``<= 228.325 ms`` by a nanosecond must not
    read "228.325 ms is not <= 228.325 ms"."""
    limit = format_limit(budget.limit, budget.kind)
    if budget.kind is MetricKind.COUNT:
        return f"{format_limit(float(actual), budget.kind)} is not {budget.op} {limit}"
    scale = 100 if budget.kind is MetricKind.RATE else 1
    value, bound = actual * scale, Fraction(budget.limit) * scale
    for places in _FAILURE_PLACES:
        rounded = round(value, places)
        if rounded != bound:
            break
    shown = Decimal(rounded.numerator) / Decimal(rounded.denominator)
    text = format_limit(shown / scale if scale != 1 else shown, budget.kind)
    return f"{text} is not {budget.op} {limit}"


def _no_value_note(budget: Budget) -> str:
    if budget.stage is None:
        return f"no value: no requests (root spans) with data for {budget.metric}"
    return f"no value: stage {quoted(budget.stage)} has no spans with data for {budget.metric}"


def build(
    *,
    analysed: pl.DataFrame,
    budgets: Sequence[Budget],
    logs: pl.DataFrame | None = None,
    llm_aliases: Aliases | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The check report; it has not ``passed`` when any budget failed."""
    rows = evaluate(analysed=analysed, budgets=budgets, logs=logs, llm_aliases=llm_aliases)
    failed = sum(not row["passed"] for row in rows)
    headline = (
        f"FAILED: {failed} of {len(rows)} budgets not met"
        if failed
        else f"PASSED: {'the budget' if len(rows) == 1 else f'all {len(rows)} budgets'} met"
    )
    return Report(
        name="check",
        title="tracelens check",
        headline=[headline],
        tables=[Table(key="rows", title="Budgets", columns=COLUMNS, rows=rows)],
        payload=CheckPayload(passed=not failed, budgets=len(rows), failed=failed),
        inputs=inputs or [],
        warnings=warnings or [],
        passed=not failed,
    )
