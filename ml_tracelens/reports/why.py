"""`tracelens why`: what the selected requests (slow, failed, or matching a condition) have in
common that the others do not, with significance control, joined to the critical path.

The unit is a request (a true root span and the spans under it), or with ``stage`` a span of
that stage. A unit has an (attribute, value) when any of its member spans has it: every span of
the request, only its root with ``scope="root"``, the span itself for a stage. Candidates: the
span and resource attributes, ``service``, ``stage`` and ``status``. A categorical attribute is
tested per value (its ``TOP_VALUES`` most common, the rest pooled as ``(other)``) by Fisher's
exact test on the 2x2 counts of selected and baseline units with and without it; a numeric one
(every value a number, more than ``TOP_VALUES`` of them) by Mann–Whitney U on the per-unit
values (a unit's largest), and one counting tokens also in bands (``TOKEN_BANDS``) as a
categorical ``KEY band``. Only values held by at least ``min_count`` selected units are tested;
Benjamini–Hochberg q-values are taken over all tests of the run (algorithms.md, "Attribution").

``stage_shift`` of a finding: over the selected and baseline requests, the stage whose mean
critical-path time per request grows most in the requests with the value against those
without it, and by how much.
"""

from __future__ import annotations

import msgspec
import polars as pl

from ml_tracelens.core.attribute_pairs import COLUMNS as ATTRIBUTE_COLUMNS
from ml_tracelens.core.attribute_pairs import AttributePairs
from ml_tracelens.core.significance import benjamini_hochberg, fisher_exact, mann_whitney
from ml_tracelens.core.tree import filled, int_max
from ml_tracelens.durations import format_duration
from ml_tracelens.exceptions import InputError, UsageError, quoted
from ml_tracelens.reports import why_candidates, why_index, why_shifts
from ml_tracelens.reports.documents import StageShift, WhyPayload, WhyRow, WhySide
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.reports.why_units import Selection, baseline_units, selected_units

Scope = why_index.Scope

DEFAULT_MIN_COUNT = 5
#: Findings shown unless every test is asked for.
Q_THRESHOLD = 0.05
#: Span columns the report does not read when the load brings the attribute pairs
#: (``pairs=True``), unless a condition names them: on a warm cache they stay on disk.
UNREAD = (
    "parent_id",
    "kind",
    "end_ns",
    "status_message",
    *ATTRIBUTE_COLUMNS,
    "events",
    "links",
    "source",
    "is_orphan",
    "depth",
    "skewed",
    "outside_parent",
    "self_ns",
    "has_error",
    "error_originated",
)


def build(
    *,
    analysed: pl.DataFrame,
    selection: Selection,
    stage: str | None = None,
    scope: Scope = "request",
    min_count: int = DEFAULT_MIN_COUNT,
    show_all: bool = False,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
    pairs: AttributePairs | None = None,
    index: why_index.WhyIndex | None = None,
) -> Report:
    """The report; ``pairs``: the attribute pairs of ``analysed`` when they are at hand (the
    analysis cache keeps them), else they are parsed here. ``index``: the units' index when it
    is at hand (the analysis cache keeps that of the requests, every span, no condition: it
    serves no other ``stage``, ``scope`` or condition); ``analysed`` is then not read."""
    selection.validate()
    if min_count < 1:
        raise UsageError("must be at least 1", option="min_count")
    if scope not in ("request", "root"):
        raise UsageError(f"{quoted(scope)}: choose request or root", option="scope")
    conditions = {
        option: where
        for option, where in (
            ("where", selection.where),
            ("baseline_where", selection.baseline_where),
        )
        if where is not None
    }
    if index is None or not why_index.serves(
        stage=stage, scope=scope, where=selection.where, baseline_where=selection.baseline_where
    ):
        index = why_index.index(
            analysed,
            pairs=pairs,
            stage=stage,
            scope=scope,
            conditions=conditions,
            errors=selection.failed,
        )
    units = index.units
    noun = "requests" if stage is None else f"{stage} spans"
    if units.is_empty():
        raise InputError(f"nothing to analyse: no {noun} in the inputs")
    # --where and --baseline-where look at every span of a request, whatever --scope says.
    selected, rule, threshold_ms = selected_units(units, selection, noun)
    units = units.with_columns(_selected=selected)
    baseline = baseline_units(units, selection)
    units = units.with_columns(_baseline=baseline & ~pl.col("_selected")).filter(
        pl.col("_selected") | pl.col("_baseline")
    )
    n_selected = int(units.get_column("_selected").sum())
    n_baseline = units.height - n_selected
    if not n_selected:
        raise InputError(f"nothing to compare: {rule} selects none of the {noun}")
    if not n_baseline:
        raise InputError(f"nothing to compare against: every {noun[:-1]} is selected by {rule}")
    in_test = filled(False, index.units.height, pl.Boolean).scatter(units.get_column("_unit"), True)
    candidates = why_candidates.candidates(index.holdings, in_test, skip_status=selection.failed)
    flags = units.select("_unit", "_selected")
    rows = _categorical_rows(candidates, flags, n_selected, n_baseline, min_count)
    rows += _numeric_rows(candidates.numeric, flags, n_selected, n_baseline, min_count)
    for row, q in zip(rows, benjamini_hochberg([r.p_value for r in rows]), strict=True):
        row.q_value = q
    rows.sort(key=lambda r: (r.q_value, -abs(r.difference), r.attribute, r.value or ""))
    tests = len(rows)
    if not show_all:
        rows = [r for r in rows if r.q_value < Q_THRESHOLD]
    why_shifts.add_stage_shifts(rows, candidates, index.times, units.get_column("_unit"))
    what = _what(selection, noun)
    verdict = _verdict(rows, what=what, tests=tests, n_selected=n_selected)
    json_rows: list[dict[str, JsonValue]] = [msgspec.to_builtins(row) for row in rows]
    return Report(
        name="why",
        title=f"Why: {what}",
        headline=[verdict],
        tables=[
            Table(
                key="rows", title="Findings", columns=_JSON_COLUMNS, rows=json_rows, in_text=False
            ),
            Table(
                key="findings",
                title="Findings",
                columns=_TEXT_COLUMNS,
                rows=[_text_row(row) for row in rows],
                in_json=False,
                empty_note=(
                    f"no attribute value is held by {min_count:,} or more of the {what}"
                    if show_all
                    else f"no attribute value sets the {what} apart (q < {Q_THRESHOLD:g})"
                ),
            ),
        ],
        payload=WhyPayload(
            verdict=verdict,
            unit="requests" if stage is None else "spans",
            stage=stage,
            scope=scope if stage is None else "span",
            selection=WhySide(rule=rule, count=n_selected, threshold_ms=threshold_ms),
            baseline=WhySide(
                rule=selection.baseline_where or "all others", count=n_baseline, threshold_ms=None
            ),
            tests=tests,
            min_count=min_count,
            q_threshold=None if show_all else Q_THRESHOLD,
        ),
        inputs=inputs or [],
        warnings=warnings or [],
    )


def _what(selection: Selection, noun: str) -> str:
    if selection.failed:
        return f"failed {noun}"
    if selection.where is not None:
        return f"{noun} matching --where"
    return f"slow {noun}"


# ---------------------------------------------------------------- candidates


def _categorical_rows(
    candidates: why_candidates.Candidates,
    flags: pl.DataFrame,
    n_selected: int,
    n_baseline: int,
    min_count: int,
) -> list[WhyRow]:
    # Units are numbered from 0: each fact's flag is found by position, not by a join.
    unit_selected = filled(False, int_max(flags.get_column("_unit")) + 1, pl.Boolean).scatter(
        flags.get_column("_unit"), flags.get_column("_selected")
    )
    counts = (
        candidates.counts(unit_selected)
        .filter(pl.col("selection_count") >= min_count)
        .join(candidates.pairs, on="pair")
        .sort("attribute", "value")
    )
    return [
        _row(
            attribute,
            value,
            a,
            c,
            n_selected,
            n_baseline,
            p_value=fisher_exact(a, n_selected - a, c, n_baseline - c),
            test="fisher",
        )
        for attribute, value, a, c in counts.select(
            "attribute", "value", "selection_count", "baseline_count"
        ).iter_rows()
    ]


def _numeric_rows(
    numeric: pl.DataFrame, flags: pl.DataFrame, n_selected: int, n_baseline: int, min_count: int
) -> list[WhyRow]:
    if numeric.is_empty():
        return []
    values = numeric.join(flags, on="_unit")
    tested = mann_whitney(values, by="attribute", value="number", flag="_selected")
    medians = values.group_by("attribute").agg(
        selection_median=pl.col("number").filter(pl.col("_selected")).median(),
        baseline_median=pl.col("number").filter(~pl.col("_selected")).median(),
    )
    table = (
        tested.join(medians, on="attribute")
        .filter((pl.col("n_in") >= min_count) & pl.col("p_value").is_not_null())
        .sort("attribute")
    )
    return [
        _row(
            item["attribute"],
            None,
            item["n_in"],
            item["n_out"],
            n_selected,
            n_baseline,
            p_value=item["p_value"],
            test="mann-whitney",
            medians=(item["selection_median"], item["baseline_median"]),
        )
        for item in table.iter_rows(named=True)
    ]


def _row(
    attribute: str,
    value: str | None,
    a: int,
    c: int,
    n_selected: int,
    n_baseline: int,
    *,
    p_value: float,
    test: str,
    medians: tuple[float | None, float | None] = (None, None),
) -> WhyRow:
    """A tested row (its q-value is set once every test of the run is known)."""
    selection_share, baseline_share = a / n_selected, c / n_baseline
    return WhyRow(
        attribute=attribute,
        value=value,
        selection_count=a,
        selection_share=selection_share,
        baseline_count=c,
        baseline_share=baseline_share,
        lift=selection_share / baseline_share if baseline_share else None,
        difference=selection_share - baseline_share,
        p_value=p_value,
        q_value=1.0,
        test=test,
        selection_median=medians[0],
        baseline_median=medians[1],
        stage_shift=None,
    )


# ---------------------------------------------------------------- words


def _verdict(rows: list[WhyRow], *, what: str, tests: int, n_selected: int) -> str:
    """The first finding more common in the selection than in the baseline (what sets the
    selection apart; one less common there is named only when there is no such finding)."""
    leading = [r for r in rows if r.q_value < Q_THRESHOLD]
    if not leading:
        return (
            f"Nothing sets the {n_selected:,} {what} apart: no attribute value has "
            f"q < {Q_THRESHOLD:g} over {tests:,} tests."
        )
    first = next((r for r in leading if r.difference > 0), leading[0])
    return _finding(first, what) + "."


def _finding(row: WhyRow, what: str) -> str:
    q = _number(row.q_value)
    if row.value is None:
        text = (
            f"{row.attribute}: median {_number(row.selection_median)} in the {what} vs "
            f"{_number(row.baseline_median)} in the others (q = {q})"
        )
    else:
        text = (
            f"{row.attribute} = {row.value}: {_percent(row.selection_share)} of {what} "
            f"vs {_percent(row.baseline_share)} of others (q = {q})"
        )
    if row.stage_shift is not None:
        text += f"; {_shift(row.stage_shift)} on the critical path"
    return text


def _shift(shift: StageShift) -> str:
    sign = "+" if shift.delta_ms >= 0 else ""
    return f"{shift.stage} {sign}{format_duration(shift.delta_ms)}"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if value >= 0.01 or value == 0 else f"{value * 100:.1g}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _text_row(row: WhyRow) -> dict[str, JsonValue]:
    """A row as people read it: a numeric attribute's medians as its value, the stage shift
    as words."""
    out: dict[str, JsonValue] = msgspec.to_builtins(row)
    if row.value is None:
        out["value"] = f"median {_number(row.selection_median)} vs {_number(row.baseline_median)}"
    out["stage_shift"] = None if row.stage_shift is None else _shift(row.stage_shift)
    return out


_JSON_COLUMNS = (
    Column("attribute", "attribute"),
    Column("value", "value"),
    Column("selection_count", "selected", ColumnKind.INT),
    Column("selection_share", "selected %", ColumnKind.SHARE),
    Column("baseline_count", "baseline", ColumnKind.INT),
    Column("baseline_share", "baseline %", ColumnKind.SHARE),
    Column("lift", "lift", ColumnKind.FLOAT),
    Column("difference", "difference", ColumnKind.SHARE),
    Column("p_value", "p", ColumnKind.FLOAT),
    Column("q_value", "q", ColumnKind.FLOAT),
    Column("test", "test"),
    Column("selection_median", "selected median", ColumnKind.FLOAT),
    Column("baseline_median", "baseline median", ColumnKind.FLOAT),
    Column("stage_shift", "stage shift"),
)
# hide_rank: the order a narrow terminal hides columns in.
_TEXT_COLUMNS = (
    Column("attribute", "attribute"),
    Column("value", "value"),
    Column("selection_count", "selected", ColumnKind.INT, hide_rank=3),
    Column("selection_share", "selected %", ColumnKind.SHARE),
    Column("baseline_count", "baseline", ColumnKind.INT, hide_rank=2),
    Column("baseline_share", "baseline %", ColumnKind.SHARE),
    Column("lift", "lift", ColumnKind.FLOAT, hide_rank=5),
    Column("difference", "difference", ColumnKind.SHARE, hide_rank=4),
    Column("p_value", "p", ColumnKind.FLOAT, hide_rank=1),
    Column("q_value", "q", ColumnKind.FLOAT),
    Column("test", "test", hide_rank=6),
    Column("stage_shift", "critical path", ColumnKind.PROSE),
)
