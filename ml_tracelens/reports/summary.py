"""`tracelens summary`: what was read, and what is odd about it."""

from __future__ import annotations

from typing import Any

import polars as pl

from ml_tracelens.core import Analysis
from ml_tracelens.core.tree import int_scalar
from ml_tracelens.ingest.telemetry import Telemetry
from ml_tracelens.reports.context import inputs_of, iso_time, warnings_of
from ml_tracelens.reports.documents import SkewPair, SummaryPayload
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table


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
        SkewPair(parent_service=p, child_service=c, spans=n)
        for (p, c), n in sorted(structure.skew_by_service_pair.items(), key=lambda kv: -kv[1])
    ]
    payload = SummaryPayload(
        spans=spans.height,
        traces=spans.get_column("trace_id").n_unique(),
        services=services,
        start=iso_time(start),
        end=iso_time(end),
        error_spans=error_spans,
        orphan_spans=structure.orphan_spans,
        merged_duplicate_spans=telemetry.merged_duplicates,
        conflicting_duplicate_spans=structure.conflicting_duplicates,
        cycles_broken=structure.cycles_broken,
        negative_durations=structure.negative_durations,
        untimed_spans=structure.untimed_spans,
        skewed_spans=structure.skewed_spans,
        traces_with_multiple_roots=structure.traces_with_multiple_roots,
        derived_spans=telemetry.derived_spans,
        log_records=telemetry.logs.height,
        log_lines_as_spans=telemetry.log_span_lines,
        derived_request_roots=telemetry.derived_roots,
        log_lines_not_spans=dict(telemetry.log_lines_not_spans),
        skipped_lines=telemetry.skipped_lines,
        skipped_items=telemetry.skipped_items,
        skew=skew,
        llm_spans=telemetry.llm_spans,
        llm_stage_spans=telemetry.llm_stage_spans,
        llm_fields={
            name.removesuffix("_ns"): list(keys) for name, keys in telemetry.llm_fields.items()
        },
    )
    facts: list[tuple[str, int | str]] = [
        ("spans", payload.spans),
        ("traces", payload.traces),
        ("services", f"{len(services)}: {', '.join(services)}" if services else "0"),
        ("time range", f"{payload.start} .. {payload.end}" if payload.start else "-"),
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
        *_llm_facts(telemetry),
        ("lines skipped", telemetry.skipped_lines),
        ("malformed spans skipped inside read lines", telemetry.skipped_items),
    ]
    fact_rows: list[dict[str, JsonValue]] = [
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
            columns=(
                Column("fact", "what", ColumnKind.PROSE),
                Column("value", "value", ColumnKind.PROSE),
            ),
            rows=fact_rows,
            in_json=False,
        ),
    ]
    return Report(
        name="summary",
        title="tracelens summary",
        tables=tables,
        payload=payload,
        inputs=inputs_of(telemetry),
        warnings=warnings_of(telemetry, analysis),
    )


def _llm_facts(telemetry: Telemetry) -> list[tuple[str, int | str]]:
    """LLM spans, the stages derived from them and the keys each LLM field was read from
    (core/llm.py); nothing for a dump without LLM spans."""
    if not telemetry.llm_spans:
        return []
    return [
        ("LLM spans", telemetry.llm_spans),
        ("queue/prefill/decode spans derived from LLM spans", telemetry.llm_stage_spans),
        *(
            (f"LLM {name.removesuffix('_ns')} from", ", ".join(keys))
            for name, keys in telemetry.llm_fields.items()
        ),
    ]


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
