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

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from ml_tracelens.core.bootstrap import CONFIDENCE, Bootstrap
from ml_tracelens.core.llm import Aliases
from ml_tracelens.core.significance import DEFAULT_MIN_CHANGE_PCT
from ml_tracelens.durations import format_duration
from ml_tracelens.gates.budgets import DIFF_METRICS, Rule
from ml_tracelens.reports.changes import FALSE_DISCOVERY_RATE, QUANTILES, compare, min_samples
from ml_tracelens.reports.documents import BootstrapSettings, DiffPayload
from ml_tracelens.reports.metric_units import in_metric_unit
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

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
