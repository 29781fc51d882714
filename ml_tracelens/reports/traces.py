"""`tracelens traces`: the requests in a dump, so users can find the id to `show`.

One row per trace, headed by its root span: the earliest true root (ties: the longest), or for a
trace whose root is not in the dump its earliest orphan top. Columns: trace id, correlation id
(the first request-id attribute on the trace's spans by start time, else the correlation id of
its log lines when it differs from the trace id), root stage and service, start (ISO UTC),
end-to-end duration of the root, span count, error spans, and whether the request is in error
(its root is, or, for a root without a status of its own, any span is; algorithms.md).

Filters (--where, --since, ...) select traces with at least one matching span; the numbers of a
listed trace are always those of the whole trace. All of it is group-bys and joins over the
whole dump, no per-span Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ml_tracelens.core.stats import ns_to_ms, request_errors_expr
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.reports.context import iso_time_expr
from ml_tracelens.reports.documents import TracesPayload
from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS, correlation_values
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table

COLUMNS = (
    Column("trace_id", "trace id", ColumnKind.ID),
    Column("correlation_id", "request id", ColumnKind.ID, hide_rank=3),
    Column("stage", "root stage", hide_rank=6),
    Column("service", "service", hide_rank=2),
    Column("start", "start", ColumnKind.TIME, hide_rank=1),
    Column("duration_ms", "duration", ColumnKind.MS),
    Column("spans", "spans", ColumnKind.INT, hide_rank=5),
    Column("errors", "errors", ColumnKind.INT),
    Column("error", "failed", ColumnKind.BOOL, hide_rank=4),
)
#: Sort keys; numbers sort largest first, text and time in ascending order.
_DESCENDING = {"duration_ms": True, "spans": True, "errors": True}
SORT_KEYS = (
    "start",
    "duration_ms",
    "spans",
    "errors",
    "trace_id",
    "correlation_id",
    "stage",
    "service",
)


def trace_table(
    analysed: pl.DataFrame,
    logs: pl.DataFrame | None = None,
    *,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
) -> pl.DataFrame:
    """One row per trace of an analysed span frame (see the module docstring)."""
    per_trace = analysed.group_by("trace_id").agg(
        _trace_has_error=(pl.col("status") == "error").any(),
        errors=(pl.col("status") == "error").sum().cast(pl.Int64),
        spans=pl.len().cast(pl.Int64),
        _has_root=pl.col("is_root").any(),
    )
    heads = (
        analysed.join(per_trace, on="trace_id", how="left")
        .filter(pl.col("is_root") | (pl.col("is_orphan") & ~pl.col("_has_root")))
        .sort(
            ["trace_id", "is_root", "start_ns", "duration_ns", "span_id"],
            descending=[False, True, False, True, False],
            nulls_last=True,
        )
        .group_by("trace_id", maintain_order=True)
        .first()
        .with_columns(error=request_errors_expr())
    )
    correlation = (
        correlation_values(analysed, id_attrs)
        .sort("start_ns", nulls_last=True)
        .group_by("trace_id", maintain_order=True)
        .agg(_attr_id=pl.col("correlation_id").first())
    )
    table = heads.join(correlation, on="trace_id", how="left")
    if logs is not None and logs.height:
        from_logs = (
            logs.filter(
                pl.col("trace_id").is_not_null()
                & pl.col("correlation_id").is_not_null()
                & (pl.col("correlation_id") != pl.col("trace_id"))
            )
            .sort("time_ns", nulls_last=True)
            .group_by("trace_id", maintain_order=True)
            .agg(_log_id=pl.col("correlation_id").first())
        )
        table = table.join(from_logs, on="trace_id", how="left")
    else:
        table = table.with_columns(_log_id=pl.lit(None, dtype=pl.String))
    return table.select(
        "trace_id",
        correlation_id=pl.coalesce("_attr_id", "_log_id"),
        stage=pl.col("name"),
        service=pl.col("service"),
        start_ns=pl.col("start_ns"),
        duration_ms=ns_to_ms(pl.col("duration_ns")),
        spans=pl.col("spans"),
        errors=pl.col("errors"),
        error=pl.col("error").fill_null(False),
    )


def build(
    *,
    analysed: pl.DataFrame,
    logs: pl.DataFrame | None = None,
    mask: pl.Series | None = None,
    slowest: int | None = None,
    errors_only: bool = False,
    sort: str | None = None,
    top: int | None = None,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    for name, value in (("slowest", slowest), ("top", top)):
        if value is not None and value < 1:
            raise UsageError(f"{value}: expected a positive number of traces", option=name)
    if sort is not None and sort not in SORT_KEYS:
        raise UsageError(f"{quoted(sort)}: choose one of {', '.join(SORT_KEYS)}", option="sort")
    table = trace_table(analysed, logs, id_attrs=id_attrs)
    total = table.height
    if mask is not None:
        selected = analysed.filter(mask).get_column("trace_id").unique().implode()
        table = table.filter(pl.col("trace_id").is_in(selected))
    if errors_only:
        table = table.filter(pl.col("error"))
    matching = table.height
    failed = int(table.get_column("error").sum())
    if slowest is not None:
        table = table.sort(["duration_ms", "trace_id"], descending=[True, False], nulls_last=True)
        table = table.head(slowest)
    key = sort or ("duration_ms" if slowest is not None else "start")
    sort_column = "start_ns" if key == "start" else key
    table = table.sort(
        [sort_column, "trace_id"],
        descending=[_DESCENDING.get(key, False), False],
        nulls_last=True,
    )
    if top is not None:
        table = table.head(top)
    rows = table.with_columns(start=iso_time_expr("start_ns")).drop("start_ns").to_dicts()
    headline = [
        f"{matching:,} of {total:,} traces"
        + (" match" if mask is not None or errors_only else "")
        + f", {failed:,} failed"
        + (f"; showing {len(rows):,}" if len(rows) < matching else "")
    ]
    return Report(
        name="traces",
        title="tracelens traces",
        tables=[Table(key="rows", title="Traces", columns=COLUMNS, rows=rows)],
        payload=TracesPayload(traces_total=total, traces_matching=matching, traces_failed=failed),
        headline=headline,
        inputs=list(inputs or ()),
        warnings=list(warnings or ()),
    )
