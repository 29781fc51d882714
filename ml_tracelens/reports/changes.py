"""The changes between two runs that ``tracelens diff`` reports: per stage (and per LLM model's
measures) count, percentiles and error rate on both sides, their bootstrap intervals and
q-values, the verdicts, and the ``--fail-on`` rules checked against them (the rules are in
``reports/diff.py``'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from ml_tracelens.core.bootstrap import Bootstrap, paired_intervals, replicate_estimates
from ml_tracelens.core.llm import Aliases
from ml_tracelens.core.significance import DEFAULT_MIN_CHANGE_PCT, benjamini_hochberg
from ml_tracelens.core.stats import ms_quantile, requests
from ml_tracelens.exceptions import quoted
from ml_tracelens.gates.budgets import Rule
from ml_tracelens.reports.result import JsonValue

METRICS = ("count", "p50", "p95", "p99", "error_rate")
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
#: Expected samples beyond a percentile that it takes to trust it (see the module docstring).
TAIL_SAMPLES = 10
MIN_ERROR_RATE_SAMPLES = 20

#: A change gets a verdict when its q-value is below this and it is at least --min-change.
FALSE_DISCOVERY_RATE = 0.05
DIRECTIONS = {
    "p50": ("slower", "faster"),
    "p95": ("slower", "faster"),
    "p99": ("slower", "faster"),
    "error_rate": ("more errors", "fewer errors"),
}


def min_samples(metric: str) -> int:
    if metric in QUANTILES:
        return math.ceil(round(TAIL_SAMPLES / (1 - QUANTILES[metric]), 9))
    return MIN_ERROR_RATE_SAMPLES if metric == "error_rate" else 0


def units(analysed: pl.DataFrame, llm_aliases: Aliases | None = None) -> pl.DataFrame:
    """What diff measures: every span under its stage, plus each request under stage null, plus
    (``llm_units``) each LLM request's e2e, ttft, tpot and queue under ``MODEL:llm.MEASURE``."""
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
    parts = [roots, spans]
    llm = llm_units(analysed, llm_aliases)
    if llm is not None:
        parts.append(llm)
    return pl.concat(parts, how="vertical")


#: LLM measures diff compares per model, and their column in the LLM request frame
LLM_MEASURES = {"e2e": "e2e_req_ns", "ttft": "ttft_ns", "tpot": "tpot_ns", "queue": "queue_ns"}
NO_MODEL = "(no model)"


def llm_units(analysed: pl.DataFrame, aliases: Aliases | None = None) -> pl.DataFrame | None:
    """Per LLM request (reports/llm.py: client and server spans of one request count once) and
    measure: a unit of stage ``MODEL:llm.MEASURE`` whose duration is that measure (null when the
    request does not report it) and whose error is the request's. They resample by trace with
    the spans, so their intervals are those of the stages. None without LLM spans (or without
    the attributes to find them)."""
    if "attributes" not in analysed.columns:
        return None
    from ml_tracelens.reports.llm import llm_requests

    found = llm_requests(analysed, aliases=aliases).frame
    if found.is_empty():
        return None
    model = pl.col("model").fill_null(NO_MODEL)
    return pl.concat(
        [
            found.select(
                "trace_id",
                stage=model + pl.lit(f":llm.{measure}"),
                duration_ns=pl.col(column).round().cast(pl.Int64),
                error=pl.col("error").fill_null(False),
                request=pl.lit(False),
            )
            for measure, column in LLM_MEASURES.items()
        ],
        how="vertical",
    )


def _aggregations() -> list[pl.Expr]:
    return [
        *(ms_quantile("duration_ns", q).alias(m) for m, q in QUANTILES.items()),
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


def compare(
    *,
    baseline: pl.DataFrame,
    current: pl.DataFrame,
    rules: Sequence[Rule] = (),
    bootstrap: Bootstrap | None = None,
    min_change_pct: float = DEFAULT_MIN_CHANGE_PCT,
    llm_aliases: tuple[Aliases | None, Aliases | None] = (None, None),
) -> tuple[list[dict[str, JsonValue]], list[str], list[str]]:
    """Rows (one per stage and metric), and the stages that appeared and disappeared.

    ``baseline`` and ``current`` are analysed span frames (core.analyze); ``llm_aliases``: the
    keys each side's LLM fields are read from (core/llm.py).
    """
    settings = bootstrap or Bootstrap()
    base_units, cur_units = units(baseline, llm_aliases[0]), units(current, llm_aliases[1])
    base, cur = point_estimates(base_units), point_estimates(cur_units)
    ci = paired_intervals(
        *(
            replicate_estimates(
                sample, _aggregations(), group="stage", settings=settings, side=side
            )
            for side, sample in enumerate((base_units, cur_units))
        ),
        group="stage",
        metrics=[*QUANTILES, "error_rate"],
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
    _judge(rows, min_change_pct=min_change_pct, root_stage=_sole_root_stage(baseline, current))
    return rows, appeared, disappeared


def _sole_root_stage(baseline: pl.DataFrame, current: pl.DataFrame) -> str | None:
    """The stage that is the root of every request on both sides and occurs nowhere else: its
    percentiles restate the requests row's, so their tests are not counted twice."""
    names = set()
    for side in (baseline, current):
        roots = requests(side)
        stage_names = roots.get_column("name").unique().to_list()
        if len(stage_names) != 1:
            return None
        name = stage_names[0]
        if side.filter(pl.col("name") == name).height != roots.height:
            return None
        names.add(name)
    return names.pop() if len(names) == 1 else None


def _restates_requests(row: dict[str, Any], root_stage: str | None) -> bool:
    """A root-stage percentile: the same durations as the requests row's (its error rate is
    the root's own status, which a request's error is not)."""
    return root_stage is not None and row["stage"] == root_stage and row["metric"] in QUANTILES


def _judge(rows: list[dict[str, Any]], *, min_change_pct: float, root_stage: str | None) -> None:
    """q-values over every change a run tests (Benjamini–Hochberg), then per row ``significant``
    (q below the false discovery rate and a change of at least ``min_change_pct``) and its
    ``direction``. A row without enough samples, without an interval, or with one side
    missing is not tested."""
    tested = [
        row
        for row in rows
        if row["_p_value"] is not None and not _restates_requests(row, root_stage)
    ]
    q_values = benjamini_hochberg([row["_p_value"] for row in tested])
    for row, q in zip(tested, q_values, strict=True):
        row["q_value"] = q
    if root_stage is not None:
        of_requests = {row["metric"]: row["q_value"] for row in rows if row["stage"] is None}
        for row in rows:
            if _restates_requests(row, root_stage) and row["_p_value"] is not None:
                row["q_value"] = of_requests.get(row["metric"])
    for row in rows:
        q, change = row["q_value"], row["change"]
        large = row["change_pct"] is not None and abs(row["change_pct"]) >= min_change_pct
        from_zero = row["baseline"] == 0 and bool(change)
        row["significant"] = bool(
            q is not None and q < FALSE_DISCOVERY_RATE and change and (large or from_zero)
        )
        if row["significant"]:
            up, down = DIRECTIONS[row["metric"]]
            row["direction"] = up if change > 0 else down


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
        "q_value": None,
        "significant": False,
        "direction": None,
        "regression": False,
        "note": None,
        "_gated": bool(rules),  # covered by a --fail-on rule: a JUnit testcase (not in JSON)
        "_p_value": None,  # the bootstrap p-value when this change is tested (not in JSON)
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
        notes.append(f"too few samples for a verdict ({smallest:,} < {needed:,})")
    elif metric != "count" and ci and ci.get("p_value") is not None:
        row["_p_value"] = ci["p_value"]
    for rule in rules:
        if not _exceeded(rule, change, change_pct, before):
            continue
        if too_few:
            notes.append(f"{quoted(rule.text)} not applied")
        elif metric == "count" or _interval_agrees(rule, low, high):
            row["regression"] = True
            notes.append(f"exceeds {quoted(rule.text)}")
        else:
            notes.append(f"{quoted(rule.text)} exceeded but within noise (interval includes 0)")
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
