"""`tracelens errors`: where errors happen, where they start, and what they say.

Per stage: spans, errors seen, errors originated (an error on a span none of whose descendants is
in error, algorithms.md), error rate. Messages are grouped after normalisation (times, IPs,
UUIDs, hex ids and numbers replaced by placeholders) so the same failure with different ids counts
once; short codes that name the failure (``HTTP 500``, ``exit code 137``) are kept. Error
messages come from error spans and from error-level log lines; a log line repeating a message
already counted for an error span of the same trace is not counted twice.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ml_tracelens.reports.context import iso_time, requests_of
from ml_tracelens.reports.documents import ErrorsPayload, RequestSummary
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.schema import ERROR_LEVELS

NO_MESSAGE = "(no message)"
#: A short number right after a word that makes it a code: kept when messages are grouped.
_NAMED_CODE = (
    r"(?i)\b((?:http|status|code|errno|error|exit|rc|grpc)(?: code)?[ :=#/]*)([0-9]{1,3})\b"
)


def normalize_message(expr: pl.Expr) -> pl.Expr:
    """Strip what varies between occurrences of the same failure."""
    return (
        expr.fill_null(NO_MESSAGE)
        .str.replace_all(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<time>"
        )
        .str.replace_all(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "<ip>")
        .str.replace_all(
            r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"
        )
        .str.replace_all(r"(?i)\b(?:0x)?[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b", "<hex>")
        .str.replace_all(r"(?i)\b(?:0x)?[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b", "<hex>")
        # Numbers that vary between occurrences go; short codes that name the failure stay:
        # "HTTP 500", "status code 503", "exit code 137", "errno 2", "404 Not Found".
        .str.replace_all(r"\d+(?:[.,]\d+)+", "<n>")
        .str.replace_all(r"\d{4,}", "<n>")
        .str.replace_all(_NAMED_CODE, "${1}\x02${2}")
        .str.replace_all(r"\b([1-5][0-9][0-9] [A-Z][a-z])", "\x02${1}")
        # A sign only where a number may start ("is -5"), not a name's hyphen ("worker-3").
        .str.replace_all(r"(^|[\s(\[=:,])[-+]\d+", "${1}<n>")
        .str.replace_all(r"(^|[^\x02\d])\d+", "${1}<n>")
        .str.replace_all("\x02", "", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def build(
    *,
    analysed: pl.DataFrame,
    logs: pl.DataFrame,
    mask: pl.Series | None = None,
    top: int = 10,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    selected = analysed.filter(mask) if mask is not None else analysed
    records = message_records(selected, logs)
    return from_counts(
        per_stage=stage_counts(selected),
        requests=requests_of(analysed, selected, filtered=mask is not None),
        messages=grouped_messages(records, top=top),
        distinct_messages=records.get_column("message").n_unique(),
        top=top,
        inputs=inputs,
        warnings=warnings,
    )


def stage_counts(selected: pl.DataFrame) -> pl.DataFrame:
    """Per stage: ``spans``, ``errors`` (error spans) and ``originated`` (errors that started
    there)."""
    return (
        selected.group_by("name")
        .agg(
            spans=pl.len(),
            errors=(pl.col("status") == "error").sum().cast(pl.Int64),
            originated=pl.col("error_originated").sum().cast(pl.Int64),
        )
        .rename({"name": "stage"})
    )


def from_counts(
    *,
    per_stage: pl.DataFrame,
    requests: RequestSummary,
    messages: pl.DataFrame,
    distinct_messages: int,
    top: int = 10,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The report from its counts, whichever engine computed them (this module, or the Spark
    engine): ``per_stage`` as ``stage_counts`` gives it, ``requests`` the request summary,
    ``messages`` the grouped messages of ``grouped_messages`` (at least the ``top`` first) and
    ``distinct_messages`` how many there are in all."""
    per_stage = per_stage.with_columns(error_rate=pl.col("errors") / pl.col("spans")).sort(
        ["errors", "originated", "stage"], descending=[True, True, False]
    )
    stage_table = Table(
        key="rows",
        title="Errors by stage",
        columns=(
            Column("stage", "stage"),
            Column("spans", "spans", ColumnKind.INT),
            Column("errors", "errors", ColumnKind.INT),
            Column("originated", "originated", ColumnKind.INT),
            Column("error_rate", "err rate", ColumnKind.SHARE),
        ),
        rows=per_stage.select("stage", "spans", "errors", "originated", "error_rate").to_dicts(),
    )
    message_rows = _message_rows(messages, top=top)
    title = "Top error messages"
    if distinct_messages > len(message_rows):
        title += f" ({len(message_rows):,} of {distinct_messages:,}; --top N shows more)"
    message_table = Table(
        key="messages",
        title=title,
        columns=(
            Column("message", "message", ColumnKind.PROSE),
            Column("count", "count", ColumnKind.INT),
            Column("stages", "stages", hide_rank=4),
            Column("first", "first", ColumnKind.TIME, hide_rank=2),
            Column("last", "last", ColumnKind.TIME, hide_rank=1),
            Column("example_trace_id", "example trace", ColumnKind.ID, hide_rank=3),
        ),
        rows=message_rows,
        empty_note=f"no error messages in {requests.count:,} requests",
    )
    total_errors = int(per_stage.get_column("errors").sum())
    headline = (
        f"Requests: {requests.count:,}, in error: {requests.errors:,} "
        f"({(requests.error_rate or 0) * 100:.1f}%); error spans: {total_errors:,}"
    )
    return Report(
        name="errors",
        title="Errors",
        headline=[headline],
        tables=[stage_table, message_table],
        payload=ErrorsPayload(requests=requests, distinct_messages=distinct_messages),
        inputs=inputs or [],
        warnings=warnings or [],
    )


def message_records(selected: pl.DataFrame, logs: pl.DataFrame) -> pl.DataFrame:
    """One row per error message occurrence (``trace_id``, ``stage``, ``time_ns``, ``raw``,
    ``message`` normalised): from error spans, and from error-level log lines whose message is
    not already counted for an error span of the same trace. Per trace: the Spark engine runs it
    on each group of whole traces."""
    from_spans = selected.filter(pl.col("status") == "error").select(
        "trace_id",
        stage=pl.col("name"),
        time_ns=pl.col("start_ns"),
        raw=pl.col("status_message"),
    )
    stage_of_span = selected.select("trace_id", "span_id", span_stage=pl.col("name"))
    from_logs = (
        logs.filter(pl.col("level").is_in(list(ERROR_LEVELS)))
        .join(stage_of_span, on=["trace_id", "span_id"], how="left")
        .select(
            trace_id=pl.coalesce("trace_id", "correlation_id"),
            stage=pl.coalesce("stage", "span_stage", pl.lit("(log)")),
            time_ns="time_ns",
            raw=pl.coalesce("error_message", "message"),
        )
    )
    spans_part = from_spans.with_columns(message=normalize_message(pl.col("raw")))
    logs_part = from_logs.with_columns(message=normalize_message(pl.col("raw"))).join(
        spans_part.select("trace_id", "message"), on=["trace_id", "message"], how="anti"
    )
    return pl.concat([spans_part, logs_part], how="vertical_relaxed")


def grouped_messages(records: pl.DataFrame, *, top: int) -> pl.DataFrame:
    """The ``top`` most frequent messages of ``message_records``: ``message``, ``count``,
    ``stages`` (sorted), ``first_ns``, ``last_ns``, ``example_trace_id`` (the smallest)."""
    return (
        records.group_by("message")
        .agg(
            count=pl.len(),
            stages=pl.col("stage").unique().sort(),
            first_ns=pl.col("time_ns").min(),
            last_ns=pl.col("time_ns").max(),
            example_trace_id=pl.col("trace_id").drop_nulls().sort().first(),
        )
        .sort(["count", "message"], descending=[True, False])
        .head(top)
    )


def _message_rows(grouped: pl.DataFrame, *, top: int) -> list[dict[str, Any]]:
    if grouped.is_empty():
        return []
    ordered = grouped.sort(["count", "message"], descending=[True, False]).head(top)
    return [
        {
            "message": row["message"],
            "count": row["count"],
            "stages": row["stages"],
            "first": iso_time(row["first_ns"]),
            "last": iso_time(row["last_ns"]),
            "example_trace_id": row["example_trace_id"],
        }
        for row in ordered.iter_rows(named=True)
    ]
