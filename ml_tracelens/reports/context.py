"""What every report shares: the inputs and warnings block of its JSON (``ReportContext``),
times written as ISO-8601 UTC strings, and the message when inputs hold nothing to analyse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

import msgspec
import polars as pl

from ml_tracelens.core import Analysis, Structure
from ml_tracelens.core.stats import selected_request_summary
from ml_tracelens.durations import NS_PER_S, NS_PER_US
from ml_tracelens.ingest.telemetry import Telemetry
from ml_tracelens.reports.documents import RequestSummary
from ml_tracelens.reports.result import JsonValue


class ReportContext(TypedDict):
    """What every report's JSON says of its inputs (``inputs_of``, ``warnings_of``), passed on
    to a report's ``build`` as keyword arguments."""

    inputs: list[dict[str, JsonValue]]
    warnings: list[str]


def requests_of(
    analysed: pl.DataFrame, selected: pl.DataFrame, *, filtered: bool
) -> RequestSummary:
    """The summary of the requests whose root span is among ``selected`` (``filtered``: whether
    ``selected`` is a subset of ``analysed``)."""
    summary = selected_request_summary(analysed, selected, filtered=filtered)
    return msgspec.convert(summary, RequestSummary)


def inputs_of(telemetry: Telemetry) -> list[dict[str, JsonValue]]:
    """The per-input block every report's JSON carries."""
    return [
        {
            "path": i.path,
            "format": i.format,
            "spans": i.spans,
            "logs": i.logs,
            "lines": i.stats.lines,
            "records": i.stats.records,
            "skipped": i.stats.skipped,
            "skipped_items": i.stats.skipped_items,
            "ignored": dict(i.stats.ignored),
        }
        for i in telemetry.inputs
    ]


def warnings_of(telemetry: Telemetry, analysis: Analysis | None = None) -> list[str]:
    return [
        *telemetry.warnings,
        *analysis_warnings(
            telemetry.merged_duplicates, analysis.structure if analysis is not None else None
        ),
    ]


def analysis_warnings(merged_duplicates: int, structure: Structure | None) -> list[str]:
    """The warnings about the spans themselves: duplicates merged, then the tree anomalies."""
    warnings = []
    if merged_duplicates:
        warnings.append(f"{merged_duplicates:,} duplicate spans (identical content) merged")
    if structure is not None:
        warnings.extend(structure.warnings())
    return warnings


def iso_time(ns: int | None) -> str | None:
    if ns is None:
        return None
    seconds, remainder = divmod(ns, NS_PER_S)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{remainder // NS_PER_US:06d}Z"


def iso_time_expr(column: str) -> pl.Expr:
    """``iso_time`` of a column of nanoseconds, as one polars expression (for long tables)."""
    return pl.from_epoch(column, time_unit="ns").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


#: What a log line needs to become a span: (log column, what it is, the --field that maps it).
_SPAN_FIELDS = (
    ("stage", "a stage key", "--field stage=KEY"),
    ("duration_ns", "a duration key", "--field duration=KEY[:ms|s|us|ns]"),
    ("time_ns", "a time key", "--field time=KEY"),
    ("correlation_id", "a request or trace id key", "--field correlation_id=KEY"),
)


def no_spans_message(telemetry: Telemetry) -> str:
    """Why a dump gave nothing to analyse, worded for a person: what the log lines lack, the
    keys they do hold, and the ``--field`` that would map each missing one."""
    logs = telemetry.logs
    if logs.is_empty():
        return "no spans to analyse: the inputs hold no spans and no log lines"
    present = logs.select(pl.col(c).is_not_null().any() for c, _, _ in _SPAN_FIELDS).row(0)
    missing = [
        (what, fix) for (_, what, fix), has in zip(_SPAN_FIELDS, present, strict=True) if not has
    ]
    keys = sorted({k for i in telemetry.inputs for k in i.stats.sample_keys})
    shown = ", ".join(keys[:30]) + (f", ... ({len(keys)} keys)" if len(keys) > 30 else "")
    parts = [f"no spans to analyse: none of {logs.height:,} log lines is a stage interval"]
    if missing:
        parts.append(
            "no line has " + ", ".join(f"{what} (map it with {fix})" for what, fix in missing)
        )
    else:
        reasons = telemetry.log_lines_not_spans
        parts.append(", ".join(f"{n:,} {reason}" for reason, n in reasons.items()))
    if keys:
        parts.append(f"keys in the first lines: {shown}")
    return "; ".join(parts)
