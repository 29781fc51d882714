"""`tracelens diff`: compare a baseline dump with a current one, per stage and for the requests.

Per stage (spans of that name) and for the requests (root spans; ``stage`` null): count,
p50/p95/p99 (ms, linear interpolation as everywhere) and error_rate (a fraction) on both sides,
the absolute change (current - baseline, same unit) and the relative change in percent of the
baseline (null when the baseline is 0). Stages found on one side only are listed as appeared or
disappeared.

LLM requests (reports/llm.py) add, per model, the stages ``MODEL:llm.e2e``, ``MODEL:llm.ttft``,
``MODEL:llm.tpot`` and ``MODEL:llm.queue``: their count, percentiles and error rate compare like
a stage's (a rule names them as ``llama-3-8b:llm.ttft:p95>+10%``).

Noise: each change gets a bootstrap confidence interval (``ci_low``/``ci_high``, in the unit of
the change) and p-value over requests resampled B times (``core/bootstrap.py``; B defaults to
1000, seeded, so a run is reproducible).

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
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from ml_tracelens.core.bootstrap import CONFIDENCE, Bootstrap, paired_intervals, replicate_estimates
from ml_tracelens.core.llm import Aliases
from ml_tracelens.core.significance import DEFAULT_MIN_CHANGE_PCT, benjamini_hochberg
from ml_tracelens.core.stats import milliseconds, quantile, requests
from ml_tracelens.durations import format_duration
from ml_tracelens.gates.budgets import DIFF_METRICS, Rule
from ml_tracelens.reports.documents import BootstrapSettings, DiffPayload
from ml_tracelens.reports.metric_units import in_metric_unit
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

METRICS = ("count", "p50", "p95", "p99", "error_rate")
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
#: Expected samples beyond a percentile that it takes to trust it (see the module docstring).
TAIL_SAMPLES = 10
MIN_ERROR_RATE_SAMPLES = 20

#: A metric row's values in its unit: ``54.8ms`` for a p50, ``3.4%`` for an error rate.
shown_as = in_metric_unit(DIFF_METRICS)

COLUMNS = (
    Column("stage", "stage"),
    Column("metric", "metric"),
    Column("baseline", "baseline", ColumnKind.FLOAT, row_kind=shown_as),
    Column("current", "current", ColumnKind.FLOAT, row_kind=shown_as),
    Column("change", "change", ColumnKind.FLOAT, row_kind=shown_as),
    Column("change_pct", "change %", ColumnKind.FLOAT),
    Column("ci_low", "ci low", ColumnKind.FLOAT, hide_rank=2, row_kind=shown_as),
    Column("ci_high", "ci high", ColumnKind.FLOAT, hide_rank=3, row_kind=shown_as),
    Column("q_value", "q", ColumnKind.FLOAT, hide_rank=1),
    Column("significant", "significant", ColumnKind.BOOL, hide_rank=4),
    Column("direction", "direction", hide_rank=5),
    Column("regression", "regression", ColumnKind.BOOL),
    Column("note", "note", ColumnKind.PROSE),
)
#: The default view: one row per stage, each metric as "baseline -> current (change%)".
STAGE_COLUMNS = (
    Column("stage", "stage"),
    # "54.8 -> 61.2 (+12%)": numbers, so shown whole (or hidden), never shortened
    Column("count", "count", ColumnKind.ID, hide_rank=2),
    Column("p50", "p50", ColumnKind.ID, hide_rank=3),
    Column("p95", "p95", ColumnKind.ID),
    Column("p99", "p99", ColumnKind.ID, hide_rank=1),
    Column("error_rate", "error rate", ColumnKind.ID),
    Column("verdict", "verdict", ColumnKind.PROSE),
)
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
    duration = milliseconds("duration_ns")
    return [
        *(quantile(duration, q).alias(m) for m, q in QUANTILES.items()),
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
    min_change_pct: float = DEFAULT_MIN_CHANGE_PCT,
    llm_aliases: tuple[Aliases | None, Aliases | None] = (None, None),
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The diff report, one row per stage and metric (``--long``; see ``by_stage`` for the
    default view); it has not ``passed`` when a --fail-on rule found a regression."""
    settings = bootstrap or Bootstrap()
    rows, appeared, disappeared = compare(
        baseline=baseline,
        current=current,
        rules=rules,
        bootstrap=settings,
        min_change_pct=min_change_pct,
        llm_aliases=llm_aliases,
    )
    regressions = sum(row["regression"] is True for row in rows)
    verdicts = sum(row["significant"] is True for row in rows)
    headline = [
        f"Requests: baseline {_requests(rows, 'baseline')}, current {_requests(rows, 'current')}; "
        "stage '-' is the requests (root spans)",
        f"95% intervals from {settings.replicates:,} bootstrap replicates over requests "
        f"(seed {settings.seed}); a verdict needs a change of at least {min_change_pct:g}% "
        f"and q < {FALSE_DISCOVERY_RATE:g} over the {_tests(rows)} changes tested "
        "(Benjamini-Hochberg)",
    ]
    withheld = sorted(
        {
            metric
            for row in rows
            if isinstance(note := row["note"], str)
            and "too few samples" in note
            and isinstance(metric := row["metric"], str)
            and metric in QUANTILES
        },
        key=list(QUANTILES).index,
    )
    if withheld:
        needed = ", ".join(f"{m} {min_samples(m):,}" for m in withheld)
        headline.append(f"No verdict where a side has fewer timed spans than: {needed}")
    headline.append(f"{verdicts} significant change{'s' if verdicts != 1 else ''}")
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
        payload=DiffPayload(
            passed=not regressions,
            regressions=regressions,
            significant_changes=verdicts,
            min_change_pct=min_change_pct,
            rules=[r.text for r in rules],
            appeared=appeared,
            disappeared=disappeared,
            bootstrap=BootstrapSettings(
                replicates=settings.replicates,
                seed=settings.seed,
                confidence=CONFIDENCE,
                unit="request",
            ),
        ),
        inputs=inputs or [],
        warnings=warnings or [],
        passed=not regressions,
    )


def by_stage(report: Report) -> Report:
    """The default view of a diff report: one row per stage for people; the JSON keeps the
    metric rows, so both views print the same JSON document."""
    metric_table = report.tables[0]
    stages = Table(
        key="stages",
        title="Changes by stage",
        columns=STAGE_COLUMNS,
        rows=stage_rows(metric_table.rows),
        in_json=False,
    )
    return replace(report, tables=[stages, replace(metric_table, in_text=False)])


def stage_rows(rows: list[dict[str, JsonValue]]) -> list[dict[str, JsonValue]]:
    """One row per stage: each metric as "baseline -> current (change%)", and the verdict: the
    directions of its significant changes ("slower", "more errors", ...)."""
    by_stage: dict[str | None, dict[str, dict[str, Any]]] = {}
    for row in rows:
        stage, metric = row["stage"], row["metric"]
        # As ``compare`` writes them:
        assert isinstance(stage, str | None)
        assert isinstance(metric, str)
        by_stage.setdefault(stage, {})[metric] = row
    out: list[dict[str, JsonValue]] = []
    for stage, metrics in by_stage.items():
        directions = [
            metrics[m]["direction"] for m in ("p50", "p95", "p99", "error_rate") if m in metrics
        ]
        latency = [d for d in directions if d in ("slower", "faster")]
        errors = [d for d in directions if d in ("more errors", "fewer errors")]
        verdict = [*(["slower"] if "slower" in latency else latency[:1]), *errors[:1]]
        out.append(
            {
                "stage": stage if stage is not None else "-",
                "count": _change_text(metrics["count"], _count_text, relative=False),
                **{m: _change_text(metrics[m], format_duration) for m in QUANTILES},
                "error_rate": _change_text(metrics["error_rate"], _percent_text, relative=False),
                "verdict": ", ".join(verdict),
            }
        )
    return out


def _change_text(
    row: dict[str, Any], shown: Callable[[float | None], str], *, relative: bool = True
) -> str:
    before, after = row["baseline"], row["current"]
    if before is None or after is None:
        return shown(after if before is None else before) + (
            " (new)" if before is None else " (gone)"
        )
    text = f"{shown(before)} -> {shown(after)}"
    if relative and row["change_pct"] is not None and row["change"]:
        pct = round(row["change_pct"])
        text += f" ({pct:+d}%)" if pct else " (0%)"
    if row["note"] and "too few samples" in row["note"]:
        text += " (few)"
    return text


def _count_text(value: float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def _percent_text(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.{1 if value < 0.1 else 0}f}%"


def _tests(rows: list[dict[str, Any]]) -> int:
    return sum(row["q_value"] is not None for row in rows)


def _requests(rows: list[dict[str, Any]], side: str) -> str:
    for row in rows:
        if row["stage"] is None and row["metric"] == "count":
            return f"{row[side]:,}" if row[side] is not None else "none"
    return "none"
