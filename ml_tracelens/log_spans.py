"""Spans derived from log lines, so a log dump alone supports every report.

A log line that carries a correlation (or trace) id, a stage name and a duration says "this stage
of this request took that long". Such a line becomes a span ending at the line's time (the
"stage finished" convention of structured loggers) and starting ``duration`` earlier. Every
request gets one derived root named ``request``, covering its stages from the first start to the
last end, with the stages as its children. Requests that already have real spans are left alone,
so a dump holding both traces and logs is not counted twice.

A request is keyed by its trace id; a line with only a request id takes the trace id that any
other line pairs with that request id (first such line in log order), so a request whose lines
mix the two spellings is one request, and is skipped whole when its trace has real spans.
"""

from __future__ import annotations

import polars as pl

from ml_tracelens.schema import SPAN_SCHEMA, empty_spans

DERIVED_ROOT_NAME = "request"


def spans_from_logs(logs: pl.DataFrame, *, known_trace_ids: pl.Series) -> pl.DataFrame:
    # Cheap exits first: a trace dump without stage/duration log lines has nothing to derive,
    # and the id set of a million spans is not worth building for it.
    if (
        logs.is_empty()
        or not logs.select(
            (pl.col("stage").is_not_null() & pl.col("duration_ns").is_not_null()).any()
        ).item()
    ):
        return empty_spans()
    links = (
        logs.lazy()
        .filter(pl.col("trace_id").is_not_null() & pl.col("correlation_id").is_not_null())
        .group_by("correlation_id", maintain_order=True)
        .agg(_linked=pl.col("trace_id").first())
    )
    request_id = pl.coalesce(pl.col("trace_id"), pl.col("_linked"), pl.col("correlation_id"))
    stages = (
        logs.lazy()
        .with_row_index("_row")
        .join(links, on="correlation_id", how="left", maintain_order="left")
        .with_columns(_request=request_id)
        .filter(
            pl.col("_request").is_not_null()
            & pl.col("stage").is_not_null()
            & pl.col("duration_ns").is_not_null()
            & pl.col("time_ns").is_not_null()
            & ~pl.col("_request").is_in(known_trace_ids.unique().implode())
        )
        .with_columns(_root=pl.lit("root:") + pl.col("_request"))
        .select(
            trace_id=pl.col("_request"),
            span_id=pl.lit("log:") + pl.col("_row").cast(pl.String),
            parent_id=pl.col("_root"),
            service=pl.col("service"),
            name=pl.col("stage"),
            kind=pl.lit("internal"),
            start_ns=pl.col("time_ns") - pl.col("duration_ns"),
            end_ns=pl.col("time_ns"),
            duration_ns=pl.col("duration_ns"),
            status=pl.when(pl.col("level").is_in(["error", "fatal", "critical"]))
            .then(pl.lit("error"))
            .otherwise(pl.lit("unset")),
            status_message=pl.when(pl.col("level").is_in(["error", "fatal", "critical"])).then(
                pl.coalesce(pl.col("error_message"), pl.col("message"))
            ),
            attributes=pl.col("attributes"),
            resource=pl.lit(None, dtype=SPAN_SCHEMA["resource"]),
            events=pl.lit(None, dtype=pl.String),
            links=pl.lit(None, dtype=pl.String),
            source=pl.col("source"),
        )
        .with_columns(
            pl.col("kind").cast(SPAN_SCHEMA["kind"]), pl.col("status").cast(SPAN_SCHEMA["status"])
        )
        .collect()
    )
    if stages.is_empty():
        return empty_spans()
    roots = (
        stages.group_by("trace_id")
        .agg(
            service=pl.col("service").drop_nulls().mode().sort().first(),
            start_ns=pl.col("start_ns").min(),
            end_ns=pl.col("end_ns").max(),
            source=pl.col("source").first(),
        )
        .select(
            "trace_id",
            span_id=pl.lit("root:") + pl.col("trace_id"),
            parent_id=pl.lit(None, dtype=pl.String),
            service="service",
            name=pl.lit(DERIVED_ROOT_NAME),
            kind=pl.lit("server").cast(SPAN_SCHEMA["kind"]),
            start_ns="start_ns",
            end_ns="end_ns",
            duration_ns=pl.col("end_ns") - pl.col("start_ns"),
            status=pl.lit("unset").cast(SPAN_SCHEMA["status"]),
            status_message=pl.lit(None, dtype=pl.String),
            attributes=pl.lit('{"tracelens.derived":"logs"}'),
            resource=pl.lit(None, dtype=SPAN_SCHEMA["resource"]),
            events=pl.lit(None, dtype=pl.String),
            links=pl.lit(None, dtype=pl.String),
            source="source",
        )
        .sort("start_ns", "trace_id")
    )
    return pl.concat([roots, stages], how="vertical").cast(SPAN_SCHEMA)  # type: ignore[arg-type]
