"""`tracelens summary`: what was read, and what is odd about it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

import polars as pl

from ml_tracelens.core import Analysis
from ml_tracelens.core.tree import int_scalar
from ml_tracelens.durations import NS_PER_S, NS_PER_US
from ml_tracelens.ingest.telemetry import Telemetry
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table


class ReportContext(TypedDict):
    """What every report's JSON says of its inputs (``inputs_of``, ``warnings_of``), passed on
    to a report's ``build`` as keyword arguments."""

    inputs: list[dict[str, JsonValue]]
    warnings: list[str]


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
    warnings = list(telemetry.warnings)
    if telemetry.merged_duplicates:
        warnings.append(
            f"{telemetry.merged_duplicates:,} duplicate spans (identical content) merged"
        )
    if analysis is not None:
        warnings.extend(analysis.structure.warnings())
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


def build(*, telemetry: Telemetry, analysis: Analysis) -> Report:
    spans = telemetry.spans
    structure = analysis.structure
    services = sorted(s for s in spans.get_column("service").unique().to_list() if s is not None)
    start = int_scalar(spans.get_column("start_ns").min())
    end = int_scalar(spans.get_column("end_ns").max())
    if telemetry.logs.height:
        log_times = telemetry.logs.get_column("time_ns")
        start = _min(start, int_scalar(log_times.min()))
        end = _max(end, int_scalar(log_times.max()))
    error_spans = spans.filter(pl.col("status") == "error").height
    skew = [
        {"parent_service": p, "child_service": c, "spans": n}
        for (p, c), n in sorted(structure.skew_by_service_pair.items(), key=lambda kv: -kv[1])
    ]
    data: dict[str, Any] = {
        "spans": spans.height,
        "traces": spans.get_column("trace_id").n_unique(),
        "services": services,
        "start": iso_time(start),
        "end": iso_time(end),
        "error_spans": error_spans,
        "orphan_spans": structure.orphan_spans,
        "merged_duplicate_spans": telemetry.merged_duplicates,
        "conflicting_duplicate_spans": structure.conflicting_duplicates,
        "cycles_broken": structure.cycles_broken,
        "negative_durations": structure.negative_durations,
        "untimed_spans": structure.untimed_spans,
        "skewed_spans": structure.skewed_spans,
        "traces_with_multiple_roots": structure.traces_with_multiple_roots,
        "derived_spans": telemetry.derived_spans,
        "log_records": telemetry.logs.height,
        "log_lines_as_spans": telemetry.log_span_lines,
        "derived_request_roots": telemetry.derived_roots,
        "log_lines_not_spans": dict(telemetry.log_lines_not_spans),
        "skipped_lines": telemetry.skipped_lines,
        "skipped_items": telemetry.skipped_items,
        "skew": skew,
    }
    facts = [
        ("spans", data["spans"]),
        ("traces", data["traces"]),
        ("services", f"{len(services)}: {', '.join(services)}"),
        ("time range", f"{data['start']} .. {data['end']}"),
        ("error spans", error_spans),
        ("orphan spans", structure.orphan_spans),
        ("duplicate spans merged", telemetry.merged_duplicates),
        ("conflicting duplicate spans", structure.conflicting_duplicates),
        ("parent cycles broken", structure.cycles_broken),
        ("negative durations", structure.negative_durations),
        ("spans without timing", structure.untimed_spans),
        ("clock-skew signals", structure.skewed_spans),
        ("spans derived from logs", telemetry.derived_spans),
        ("log records", telemetry.logs.height),
        ("log lines that became spans", telemetry.log_span_lines),
        (
            "requests under a derived root (no log line covers them)",
            telemetry.derived_roots,
        ),
        *(
            (f"log lines not spans: {reason}", count)
            for reason, count in telemetry.log_lines_not_spans.items()
        ),
        ("lines skipped", telemetry.skipped_lines),
        ("malformed spans skipped inside read lines", telemetry.skipped_items),
    ]
    fact_rows = [
        {"fact": name, "value": f"{v:,}" if isinstance(v, int) else v} for name, v in facts
    ]
    input_rows = _listed_inputs(inputs_of(telemetry))
    tables = [
        Table(
            key="inputs",
            title="Inputs",
            columns=(
                Column("path", "file"),
                Column("format", "format"),
                Column("spans", "spans", ColumnKind.INT),
                Column("logs", "logs", ColumnKind.INT),
                Column("lines", "lines", ColumnKind.INT),
                Column("skipped", "skipped", ColumnKind.INT),
            ),
            rows=input_rows,
            in_json=False,
        ),
        Table(
            key="facts",
            title="Summary",
            columns=(Column("fact", "what"), Column("value", "value", ColumnKind.PROSE)),
            rows=fact_rows,
            in_json=False,
        ),
    ]
    return Report(
        name="summary",
        title="tracelens summary",
        tables=tables,
        data=data,
        inputs=inputs_of(telemetry),
        warnings=warnings_of(telemetry, analysis),
    )


#: Inputs the summary table lists one by one; the rest fold into one row (JSON lists them all).
LISTED_INPUTS = 20
_INPUT_COUNTS = ("spans", "logs", "lines", "skipped")


def _listed_inputs(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per input, the ones past ``LISTED_INPUTS`` summed into a last row: a directory of
    10,000 dumps reads as a table a person can take in (and draws in a blink)."""
    rows = [
        {"path": i["path"], "format": i["format"], **{k: i[k] for k in _INPUT_COUNTS}}
        for i in inputs
    ]
    if len(rows) <= LISTED_INPUTS:
        return rows
    rest = rows[LISTED_INPUTS - 1 :]
    formats = sorted({r["format"] for r in rest})
    folded = {
        "path": f"… and {len(rest):,} more (all in --format json)",
        "format": ", ".join(formats) if len(formats) <= 3 else f"{len(formats)} formats",
        **{k: sum(r[k] or 0 for r in rest) for k in _INPUT_COUNTS},
    }
    return [*rows[: LISTED_INPUTS - 1], folded]


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


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
