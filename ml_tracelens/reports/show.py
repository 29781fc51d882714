"""`tracelens show ID`: one request, every span and log line of it.

Steps: resolve the id (request_id.py) with vectorised filters over the whole dump, cut the dump
down to that one trace with polars, and only then analyse it (tree, self time, critical path) and
do per-span work, so the cost on a dump of a million spans is a few column scans plus the size of
the one trace.

Spans are listed in tree order: an iterative depth-first walk (never recursion: traces reach
10,000 levels) from the tops (roots first, then orphans), siblings by start time then span id.
Times are offsets from the trace's earliest span start in milliseconds. ``--depth N`` keeps
spans at most N levels below their top; ``--critical-only`` keeps spans with critical-path time
and their ancestors (so the tree stays connected); both select what the JSON lists too.

Log lines of the request: those with the trace's id, and those without a trace id whose
correlation id is the trace id, the id the user asked for, or a request-id attribute value of one
of the trace's spans. Each is attached to its span by span id, else to a span whose time covers
the line (an inequality join): one of the stage the line names (log ``stage`` field), else the
innermost (deepest; then not starting exactly at the line; then latest starting), else none.
Tree order and --depth/--critical-only selection are in request_tree.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from ml_tracelens.core.stats import ns_to_ms
from ml_tracelens.core.tree import int_scalar
from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.reports.context import iso_time
from ml_tracelens.reports.documents import RootSpan, ShowPayload
from ml_tracelens.reports.request_id import (
    DEFAULT_ID_ATTRS,
    Resolution,
    correlation_values,
    resolve_id,
)
from ml_tracelens.reports.request_tree import nearest_shown, select_spans, tree_order
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.schema import attributes_dict

SPAN_COLUMNS = (
    Column("span_id", "span", ColumnKind.ID),
    Column("parent_id", "parent", ColumnKind.ID),
    Column("service", "service"),
    Column("stage", "stage"),
    Column("kind", "kind"),
    Column("depth", "depth", ColumnKind.INT),
    Column("start_offset_ms", "start", ColumnKind.MS),
    Column("duration_ms", "duration", ColumnKind.MS),
    Column("self_ms", "self", ColumnKind.MS),
    Column("cp_ms", "critical", ColumnKind.MS),
    Column("error", "error", ColumnKind.BOOL),
    Column("error_message", "error message", ColumnKind.PROSE),
    Column("orphan", "orphan", ColumnKind.BOOL),
    Column("skewed", "skewed", ColumnKind.BOOL),
    Column("outside_parent", "outside parent", ColumnKind.BOOL),
    Column("attributes", "attributes", ColumnKind.PROSE),
    Column("events", "events", ColumnKind.PROSE),
)
LOG_COLUMNS = (
    Column("time", "time", ColumnKind.TIME),
    Column("offset_ms", "offset", ColumnKind.MS),
    Column("level", "level"),
    Column("service", "service"),
    Column("message", "message", ColumnKind.PROSE),
    Column("span_id", "span", ColumnKind.ID),
    Column("attached_by", "attached by"),
)


@dataclass(frozen=True)
class ShowView:
    """What the terminal waterfall draws (render/waterfall.py); JSON uses the tables instead."""

    trace_id: str
    origin_ns: int | None  # the earliest span start: offset 0
    duration_ms: float | None  # from the earliest start to the latest end
    spans: list[dict[str, Any]]  # the shown span rows, in tree order
    logs: list[dict[str, Any]]  # log rows in time order
    #: per log row: index into ``spans`` of the shown span it is drawn under (None: no span)
    log_home: list[int | None]
    #: span index -> descendants hidden below it by --depth
    hidden_below: dict[int, int] = field(default_factory=dict)
    hidden_total: int = 0
    collapse: bool = False
    attrs: bool = False
    headline: list[str] = field(default_factory=list)


def build(
    *,
    spans: pl.DataFrame | pl.LazyFrame,
    logs: pl.DataFrame | pl.LazyFrame,
    ident: str,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
    depth: int | None = None,
    critical_only: bool = False,
    collapse: bool = False,
    attrs: bool = False,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """The `show` report for the trace ``ident`` names.

    ``spans`` is the canonical span table of the whole dump (or an analysed one: then it is not
    analysed again); ``logs`` the canonical log table. Either may be lazy (a cache entry on
    disk): then only the trace's rows are read, plus the id columns that resolving ``ident``
    needs.
    """
    from ml_tracelens.core import analyze

    resolution = resolve_id(ident, spans=spans, logs=logs, id_attrs=id_attrs)
    trace = spans.lazy().filter(pl.col("trace_id") == resolution.trace_id).collect()
    warnings = list(warnings or ())
    if "cp_ns" not in trace.columns:
        analysis = analyze(trace)
        trace = analysis.spans
        warnings.extend(analysis.warnings())

    origin = int_scalar(trace.get_column("start_ns").min())
    end = int_scalar(trace.get_column("end_ns").max())
    # float first, as polars divides the span columns: the same ms for the same ns
    duration_ms = (
        float(end - origin) / NS_PER_MS if origin is not None and end is not None else None
    )

    correlation_ids = _correlation_ids(trace, id_attrs, resolution, ident)
    trace_logs = _logs_of(logs, resolution.trace_id, correlation_ids)
    if trace_logs.height:
        correlation_ids = sorted(
            set(correlation_ids)
            | set(trace_logs.get_column("correlation_id").drop_nulls().unique().to_list())
        )
    correlation_ids = [c for c in correlation_ids if c != resolution.trace_id]

    rows = _span_rows(trace, origin)
    order, depths, parent_index = tree_order(
        [r["span_id"] for r in rows], [r["parent_id"] for r in rows], [r["_start"] for r in rows]
    )
    shown, hidden_below = select_spans(order, depths, parent_index, rows, depth, critical_only)
    position = {i: n for n, i in enumerate(shown)}
    span_rows = []
    for i in shown:
        row = rows[i]
        row["depth"] = depths[i]
        span_rows.append({c.key: row.get(c.key) for c in SPAN_COLUMNS})

    log_rows, log_span = _attach_logs(trace_logs, trace, origin)
    index_of = {r["span_id"]: i for i, r in enumerate(rows)}
    log_home = [
        nearest_shown(index_of.get(sid), parent_index, position) if sid is not None else None
        for sid in log_span
    ]

    root, root_start = _root(rows, trace)
    error_spans = int((trace.get_column("status") == "error").sum())
    services = sorted({r["service"] for r in rows if r["service"] is not None})
    hidden_total = len(rows) - len(shown)
    headline = [
        f"trace {resolution.trace_id}"
        + (f" (request {', '.join(correlation_ids)})" if correlation_ids else ""),
        f"{root.stage}"
        + (f" on {root.service}" if root.service is not None else "")
        + f", {_ms_text(root.duration_ms)}, "
        f"started {iso_time(root_start) or '?'}: {_n(len(rows), 'span')} "
        f"({error_spans:,} in error), {_n(len(log_rows), 'log line')}",
    ]
    if hidden_total:
        reasons = [
            reason
            for reason, on in (("off the critical path", critical_only), ("below --depth", depth))
            if on is not None and on is not False
        ]
        headline.append(f"{_n(hidden_total, 'span')} hidden ({' or '.join(reasons)})")
    payload = ShowPayload(
        trace_id=resolution.trace_id,
        matched_by=resolution.matched_by,
        correlation_ids=correlation_ids,
        start=iso_time(origin),
        duration_ms=duration_ms,
        span_count=len(rows),
        spans_shown=len(shown),
        error_spans=error_spans,
        services=services,
        root=root,
    )
    view = ShowView(
        trace_id=resolution.trace_id,
        origin_ns=origin,
        duration_ms=duration_ms,
        spans=span_rows,
        logs=log_rows,
        log_home=log_home,
        hidden_below={position[i]: n for i, n in hidden_below.items()},
        hidden_total=hidden_total,
        collapse=collapse,
        attrs=attrs,
        headline=headline,
    )
    return Report(
        name="show",
        title=f"tracelens show {resolution.trace_id}",
        tables=[
            Table(key="spans", title="Spans", columns=SPAN_COLUMNS, rows=span_rows),
            Table(key="logs", title="Log lines", columns=LOG_COLUMNS, rows=log_rows),
        ],
        payload=payload,
        headline=headline,
        inputs=list(inputs or ()),
        warnings=warnings,
        view=view,
    )


def _span_rows(trace: pl.DataFrame, origin: int | None) -> list[dict[str, Any]]:
    start = pl.col("start_ns")
    offset = ns_to_ms(start - origin) if origin is not None else pl.lit(None)
    is_error = pl.col("status") == "error"
    frame = trace.select(
        "span_id",
        "parent_id",
        "service",
        pl.col("name").alias("stage"),
        pl.col("kind").cast(pl.String),
        offset.alias("start_offset_ms"),
        ns_to_ms(pl.col("duration_ns")).alias("duration_ms"),
        ns_to_ms(pl.col("self_ns")).alias("self_ms"),
        ns_to_ms(pl.col("cp_ns")).alias("cp_ms"),
        is_error.fill_null(False).alias("error"),
        pl.when(is_error).then(pl.col("status_message")).alias("error_message"),
        pl.col("is_orphan").alias("orphan"),
        pl.col("skewed").fill_null(False),
        pl.col("outside_parent").fill_null(False).alias("outside_parent"),
        "attributes",
        pl.col("resource").cast(pl.String).alias("_resource"),
        "events",
        pl.col("start_ns").alias("_start"),
        (pl.col("cp_ns").fill_null(0) > 0).alias("_cp"),
        pl.col("is_root").alias("_is_root"),
    )
    rows = frame.to_dicts()
    for row in rows:
        resource = row.pop("_resource")
        try:
            row["attributes"] = attributes_dict(row["attributes"], resource)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            row["attributes"] = {}  # a reader let bad JSON through: show the span without it
        row["events"] = _json(row["events"], [])
    return rows


def _json(text: str | None, empty: Any) -> Any:
    if not text:
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return empty


def _root(rows: list[dict[str, Any]], trace: pl.DataFrame) -> tuple[RootSpan, int | None]:
    """The request's root (a true root, earliest then longest, else the earliest top) and
    when it started (ns)."""
    tops = [r for r in rows if r["_is_root"]] or [r for r in rows if r["orphan"]] or rows
    best = min(
        tops,
        key=lambda r: (r["_start"] is None, r["_start"] or 0, -(r["duration_ms"] or 0)),
    )
    any_error = bool((trace.get_column("status") == "error").any())
    status = trace.filter(pl.col("span_id") == best["span_id"]).get_column("status").item(0)
    # A root without a status of its own is in error when any span is (algorithms.md).
    error = any_error if status == "unset" else status == "error"
    root = RootSpan(
        span_id=best["span_id"],
        stage=best["stage"],
        service=best["service"],
        start=iso_time(best["_start"]),
        duration_ms=best["duration_ms"],
        error=error,
    )
    return root, best["_start"]


def _correlation_ids(
    trace: pl.DataFrame, id_attrs: Sequence[str], resolution: Resolution, ident: str
) -> list[str]:
    values = set(correlation_values(trace, id_attrs).get_column("correlation_id").to_list())
    if resolution.matched_by == "correlation_id":
        values.add(ident.strip())
    return sorted(values)


def _logs_of(
    logs: pl.DataFrame | pl.LazyFrame, trace_id: str, correlation_ids: list[str]
) -> pl.DataFrame:
    ids = pl.Series([trace_id, *correlation_ids], dtype=pl.String).implode()
    return (
        logs.lazy()
        .filter(
            (pl.col("trace_id") == trace_id)
            | (pl.col("trace_id").is_null() & pl.col("correlation_id").is_in(ids))
        )
        .collect()
    )


def _attach_logs(
    logs: pl.DataFrame, trace: pl.DataFrame, origin: int | None
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Log rows in time order, and per row the span it belongs to (None: no span)."""
    if logs.is_empty():
        return [], []
    numbered = logs.sort("time_ns", nulls_last=True, maintain_order=True).with_row_index("_li")
    span_ids = trace.select("span_id")
    by_id = numbered.join(span_ids, on="span_id", how="semi").select(
        "_li", "span_id", attached_by=pl.lit("span_id")
    )
    timed = trace.filter(
        pl.col("start_ns").is_not_null()
        & pl.col("end_ns").is_not_null()
        & (pl.col("end_ns") >= pl.col("start_ns"))
    ).select(pl.col("span_id").alias("_span"), "start_ns", "end_ns", "depth", "name")
    rest = numbered.join(by_id, on="_li", how="anti").filter(pl.col("time_ns").is_not_null())
    by_time = (
        rest.select("_li", "time_ns", pl.col("stage").alias("_log_stage"))
        .join_where(
            timed, pl.col("time_ns") >= pl.col("start_ns"), pl.col("time_ns") <= pl.col("end_ns")
        )
        .with_columns(
            # A line naming its stage belongs to a covering span of that stage.
            _same_stage=(pl.col("name") == pl.col("_log_stage")).fill_null(False),
            # A line at the instant one span ends and a sibling starts belongs to the one ending
            # ("stage finished" logs, and the spans derived from them, end at the line).
            _starts_here=pl.col("start_ns") == pl.col("time_ns"),
        )
        .sort(
            ["_li", "_same_stage", "depth", "_starts_here", "start_ns", "_span"],
            descending=[False, True, True, False, True, False],
        )
        .group_by("_li", maintain_order=True)
        .first()
        .select("_li", span_id=pl.col("_span"), attached_by=pl.lit("time"))
    )
    attached = pl.concat([by_id, by_time])
    offset = ns_to_ms(pl.col("time_ns") - origin) if origin is not None else pl.lit(None)
    frame = (
        numbered.drop("span_id")
        .join(attached, on="_li", how="left")
        .sort("_li")
        .select(
            "time_ns",
            offset.alias("offset_ms"),
            "level",
            "service",
            "message",
            "span_id",
            "attached_by",
        )
    )
    rows = []
    for row in frame.to_dicts():
        row["time"] = iso_time(row.pop("time_ns"))
        rows.append(row)
    return rows, [r["span_id"] for r in rows]


def _ms_text(value: float | None) -> str:
    return "?" if value is None else format_duration(value)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
