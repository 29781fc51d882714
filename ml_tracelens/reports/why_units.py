"""The units of `tracelens why` and which of them are selected: requests (a true root span and
the spans under it, their members) or the spans of one stage; the selection (``--slow``,
``--failed``, ``--where``) and the baseline (``--baseline-where``, else all others); and each
unit's critical-path time per stage, which the stage shifts compare."""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.attribute_pairs import COLUMNS as ATTRIBUTE_COLUMNS
from ml_tracelens.core.query import SpanFilter, matching
from ml_tracelens.core.stats import quantile, request_errors_expr
from ml_tracelens.core.tree import filled
from ml_tracelens.durations import NS_PER_MS, length_ns
from ml_tracelens.exceptions import InputError, UsageError, quoted
from ml_tracelens.reports import why_holdings, why_shifts

_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Selection:
    """Which units are selected (exactly one of ``slow``, ``failed``, ``where``) and which
    are the baseline (``baseline_where``, else all the others)."""

    slow: str | None = None
    failed: bool = False
    where: str | None = None
    baseline_where: str | None = None

    def validate(self) -> None:
        chosen = [self.slow is not None, self.failed, self.where is not None]
        if sum(chosen) != 1:
            raise UsageError(
                "needs exactly one selection: --slow p95 (or '>500ms'), --failed or --where COND"
            )


def stage_times(
    analysed: pl.DataFrame, spans: pl.DataFrame, unit_count: int, stage: str | None
) -> why_shifts.StageTimes:
    """Each unit's critical-path time per stage: its request's, for the spans of a stage."""
    if stage is None:
        return why_shifts.stage_times(spans, unit_count)
    requests_units, request_members = units_of(analysed, stage=None, conditions={})
    return why_shifts.request_times(requests_units, request_members, spans)


def units_of(
    analysed: pl.DataFrame,
    *,
    stage: str | None,
    conditions: dict[str, str],
    errors: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(units, their spans): one row per unit (``_unit``, ``duration_ns``, ``_error``), and
    the spans of each unit (a request's tree; a stage span itself) tagged with its ``_unit``,
    with the columns candidates are drawn from and a flag per ``--where`` condition (by option
    name: the spans it matches). A request's ``_error`` is null unless ``errors`` is asked for
    (it takes a pass over the spans in error)."""
    flags = {
        f"_{option}": _matching(analysed, where, option) for option, where in conditions.items()
    }
    kept = [c for c in (*MEMBER_COLUMNS, *flags) if c in analysed.columns or c in flags]
    if stage is not None:
        spans = (
            analysed.with_columns(**flags)
            .filter(pl.col("name") == stage)
            .select("duration_ns", "top_id", *kept)
            .with_row_index("_unit")
        )
        units = spans.select("_unit", "trace_id", "duration_ns", _error=pl.col("status") == "error")
        return units, spans.drop("duration_ns")
    roots = analysed.filter(pl.col("is_root")).select(
        "trace_id", "span_id", "duration_ns", "status"
    )
    if errors:
        # Few spans fail: the traces holding one are found from those alone.
        erring = analysed.filter(pl.col("status") == "error").get_column("trace_id").unique()
        roots = roots.with_columns(
            _trace_has_error=pl.col("trace_id").is_in(erring.implode())
        ).with_columns(request_error=request_errors_expr())
    else:
        roots = roots.with_columns(request_error=pl.lit(None, pl.Boolean))
    units = roots.with_row_index("_unit").select(
        "_unit", "trace_id", "span_id", "duration_ns", _error="request_error"
    )
    # Joined on the trace alone (a string key, not two) and kept where the span's top is the
    # request's root: a trace with several roots is rare. In the units' order, so that what is
    # summed per unit later is summed over runs.
    keys = units.select("_unit", "trace_id", _top="span_id")
    members = (
        keys.join(
            analysed.with_columns(**flags).select("top_id", *kept),
            on="trace_id",
            how="inner",
            maintain_order="left",
        )
        .filter(pl.col("top_id") == pl.col("_top"))
        .select(*kept, pl.col("_unit").set_sorted())
    )
    return units, members


#: What the candidates, the conditions and the critical-path shifts read of a unit's spans.
MEMBER_COLUMNS = (
    "trace_id",
    "name",
    "service",
    "status",
    *(why_holdings.code_column(c) for c in ATTRIBUTE_COLUMNS),
    "cp_ns",
    "is_root",
)


def selected_units(
    units: pl.DataFrame, selection: Selection, noun: str
) -> tuple[pl.Series, str, float | None]:
    """The selected units as a mask, the rule in words, and the duration threshold in ms;
    ``units`` has a ``_where`` flag with ``selection.where``."""
    duration = units.get_column("duration_ns")
    if selection.failed:
        return units.get_column("_error").fill_null(False), "--failed", None
    if selection.where is not None:
        return units.get_column("_where"), f"--where {selection.where}", None
    spec = (selection.slow or "").strip()
    match = _PERCENTILE.match(spec)
    if match:
        percent = float(match[1])
        if not 0 < percent < 100:
            raise UsageError(
                f"{quoted(spec)}: a percentile between p0 and p100, e.g. p95", option="slow"
            )
        cut = quantile(duration, percent / 100)
        if cut is None:
            raise InputError(f"nothing to analyse: no timed {noun}")
        threshold = float(cut)
    else:
        length = length_ns(spec[1:]) if spec.startswith(">") else None
        if length is None:
            raise UsageError(
                f"{quoted(spec)}: expected a percentile (p95, p99.9) or a duration ('>500ms', '>2s')",
                option="slow",
            )
        threshold = length
    mask = (duration > threshold).fill_null(False)
    return mask, f"--slow {spec}", threshold / NS_PER_MS


def baseline_units(units: pl.DataFrame, selection: Selection) -> pl.Series:
    """The baseline units as a mask (the selected ones included); ``units`` has a
    ``_baseline_where`` flag with ``selection.baseline_where``."""
    if selection.baseline_where is None:
        mask = filled(True, units.height, pl.Boolean).alias("_baseline")
    else:
        mask = units.get_column("_baseline_where")
    if selection.slow is not None:
        # A unit without a duration is not known to be fast: it is in neither group.
        mask = mask & units.get_column("duration_ns").is_not_null()
    return mask


def _matching(spans: pl.DataFrame, where: str, option: str) -> pl.Series:
    """The spans meeting a ``--where`` condition."""
    try:
        return matching(spans, SpanFilter(where=where))
    except UsageError as exc:
        raise UsageError(exc.detail, option=option) from exc


def matching_units(units: pl.DataFrame, members: pl.DataFrame, option: str) -> pl.Series:
    """Units with at least one member span matching the condition of ``option``."""
    hit = members.filter(f"_{option}").get_column("_unit").unique()
    return units.get_column("_unit").is_in(hit.implode()).alias(option)
