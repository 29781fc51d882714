"""`tracelens show ID --compare OTHER|typical`: one request against another, span by span.

The two span trees are aligned by stage path plus occurrence index: a span's key is its
parent's key, then its stage and its rank among the siblings of the same stage by start time
(``POST /predict > model.inference #2``: the second model.inference under the root), so
repeated stages pair up in order and a retry present in one request only shows as such. Per
aligned span: the duration and critical-path time of both, the difference, and the attribute
keys whose values differ; spans whose key is in one request only are listed apart.

``typical`` picks, among the other requests with the same root stage and service, the one with
the median end-to-end duration (the lower middle one of an even count; ties by trace id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.stats import requests
from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.exceptions import NotFound, quoted
from ml_tracelens.reports.documents import ComparedRequest, ComparePayload
from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS, resolve_id
from ml_tracelens.reports.request_tree import tree_order
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.schema import attributes_dict

TYPICAL = "typical"

ALIGNED_COLUMNS = (
    Column("path", "span"),
    Column("a_ms", "A", ColumnKind.MS),
    Column("b_ms", "B", ColumnKind.MS),
    Column("delta_ms", "B - A", ColumnKind.MS),
    Column("a_cp_ms", "A critical", ColumnKind.MS, hide_rank=2),
    Column("b_cp_ms", "B critical", ColumnKind.MS, hide_rank=1),
    Column("attrs_changed", "attributes that differ", ColumnKind.PROSE, hide_rank=3),
)


@dataclass(frozen=True)
class KeyedSpan:
    path: str
    ms: float | None
    cp_ms: float | None
    attributes: dict[str, object]
    #: start after the request's earliest span, and time not covered by children
    offset_ms: float | None = None
    self_ms: float | None = None


@dataclass(frozen=True)
class ComparedSpan:
    """One span of the combined tree: the span of A, of B, or both at the same path."""

    path: str
    depth: int
    a: KeyedSpan | None
    b: KeyedSpan | None
    attrs_changed: list[str]

    @property
    def label(self) -> str:
        return self.path.rsplit(" > ", 1)[-1]


@dataclass(frozen=True)
class CompareView:
    """What the terminal draws for ``show --compare``: one waterfall of both requests, the
    spans of A in tree order with B's beside them and B's own spans under their parent."""

    spans: list[ComparedSpan]
    axis_ms: float | None  # the later of the two requests' ends, after their starts
    headline: list[str]


def keyed_spans(trace: pl.DataFrame) -> list[KeyedSpan]:
    """One analysed trace's spans in tree order, each with its alignment ``path``."""
    rows = trace.to_dicts()
    order, _, parent_index = tree_order(
        [r["span_id"] for r in rows], [r["parent_id"] for r in rows], [r["start_ns"] for r in rows]
    )
    paths: dict[int, str] = {}
    seen: dict[tuple[str | None, str], int] = {}
    starts = [r["start_ns"] for r in rows if r["start_ns"] is not None]
    origin = min(starts) if starts else None
    out = []
    for i in order:
        row = rows[i]
        parent = parent_index[i]
        parent_path = paths[parent] if parent is not None else None
        name = str(row["name"])
        count = seen.get((parent_path, name), 0) + 1
        seen[(parent_path, name)] = count
        own = name if parent_path is None and count == 1 else f"{name} #{count}"
        paths[i] = own if parent_path is None else f"{parent_path} > {own}"
        out.append(
            KeyedSpan(
                path=paths[i],
                ms=_ms(row["duration_ns"]),
                cp_ms=_ms(row["cp_ns"]),
                attributes=attributes_dict(row.get("attributes"), row.get("resource")),
                offset_ms=(
                    _ms(row["start_ns"] - origin)
                    if origin is not None and row["start_ns"] is not None
                    else None
                ),
                self_ms=_ms(row.get("self_ns")),
            )
        )
    return out


def align(
    a: pl.DataFrame, b: pl.DataFrame
) -> tuple[list[dict[str, JsonValue]], list[str], list[str]]:
    """(aligned rows in A's tree order, paths only in A, paths only in B)."""
    spans_a, spans_b = keyed_spans(a), keyed_spans(b)
    by_path_b = {s.path: s for s in spans_b}
    paths_a = {s.path for s in spans_a}
    aligned: list[dict[str, JsonValue]] = []
    for span in spans_a:
        other = by_path_b.get(span.path)
        if other is None:
            continue
        delta = None if span.ms is None or other.ms is None else other.ms - span.ms
        aligned.append(
            {
                "path": span.path,
                "a_ms": span.ms,
                "b_ms": other.ms,
                "delta_ms": delta,
                "a_cp_ms": span.cp_ms,
                "b_cp_ms": other.cp_ms,
                "attrs_changed": _changed(span.attributes, other.attributes),
            }
        )
    only_a = [s.path for s in spans_a if s.path not in by_path_b]
    only_b = [s.path for s in spans_b if s.path not in paths_a]
    return aligned, only_a, only_b


def combined(a: pl.DataFrame, b: pl.DataFrame) -> list[ComparedSpan]:
    """The spans of both requests as one tree: A's in tree order, each with B's span of the same
    path, and B's spans of paths A lacks placed after their parent's subtree."""
    spans_a, spans_b = keyed_spans(a), keyed_spans(b)
    by_path_b = {s.path: s for s in spans_b}
    merged = [
        ComparedSpan(
            path=s.path,
            depth=s.path.count(" > "),
            a=s,
            b=by_path_b.get(s.path),
            attrs_changed=_changed(s.attributes, by_path_b[s.path].attributes)
            if s.path in by_path_b
            else [],
        )
        for s in spans_a
    ]
    paths_a = {s.path for s in spans_a}
    for span in spans_b:
        if span.path in paths_a:
            continue
        parent = span.path.rsplit(" > ", 1)[0] if " > " in span.path else None
        at = len(merged)
        if parent is not None:
            under = [
                i
                for i, m in enumerate(merged)
                if m.path == parent or m.path.startswith(parent + " > ")
            ]
            at = under[-1] + 1 if under else len(merged)
        merged.insert(
            at, ComparedSpan(span.path, span.path.count(" > "), None, span, attrs_changed=[])
        )
    return merged


def _changed(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))


def _ms(ns: object) -> float | None:
    return None if not isinstance(ns, int) else float(ns) / NS_PER_MS


def typical_trace(analysed: pl.DataFrame, trace_id: str) -> str:
    """The trace of the median request (end-to-end) among the others with the same root stage
    and service as ``trace_id``'s root."""
    table = requests(analysed)
    own = table.filter(pl.col("trace_id") == trace_id)
    if own.is_empty():
        raise NotFound(f"trace {trace_id} has no root span to compare by")
    stage, service = own.row(0, named=True)["name"], own.row(0, named=True)["service"]
    peers = table.filter(
        (pl.col("trace_id") != trace_id)
        & pl.col("name").eq_missing(stage)
        & pl.col("service").eq_missing(service)
        & pl.col("duration_ns").is_not_null()
    ).sort("duration_ns", "trace_id")
    if peers.is_empty():
        raise NotFound(f"no other timed request with root {quoted(stage)} to take as typical")
    return str(peers.get_column("trace_id")[(peers.height - 1) // 2])


def build(
    *,
    analysed: pl.DataFrame,
    logs: pl.DataFrame,
    ident: str,
    other: str,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    """Request ``ident`` (A) against ``other`` (B): another id, or ``typical``."""
    first = resolve_id(ident, spans=analysed, logs=logs, id_attrs=id_attrs).trace_id
    if other.strip().lower() == TYPICAL:
        second, chosen_by = typical_trace(analysed, first), TYPICAL
    else:
        second = resolve_id(other, spans=analysed, logs=logs, id_attrs=id_attrs).trace_id
        chosen_by = "id"
    a = analysed.filter(pl.col("trace_id") == first)
    b = analysed.filter(pl.col("trace_id") == second)
    aligned, only_a, only_b = align(a, b)
    side_a, side_b = _side(a, "id"), _side(b, chosen_by)
    headline = [
        f"A: trace {side_a.trace_id}, {side_a.stage}, {format_duration(side_a.duration_ms)}",
        f"B: trace {side_b.trace_id} ({'the typical request' if chosen_by == TYPICAL else 'by id'}), "
        f"{side_b.stage}, {format_duration(side_b.duration_ms)}",
    ]
    if only_a:
        headline.append(f"only in A: {', '.join(only_a)}")
    if only_b:
        headline.append(f"only in B: {', '.join(only_b)}")
    spans = combined(a, b)
    ends = [
        s.offset_ms + s.ms
        for c in spans
        for s in (c.a, c.b)
        if s is not None and s.offset_ms is not None and s.ms is not None
    ]
    return Report(
        name="compare",
        title=f"tracelens show {side_a.trace_id} --compare {other}",
        headline=headline,
        tables=[Table(key="aligned", title="Aligned spans", columns=ALIGNED_COLUMNS, rows=aligned)],
        payload=ComparePayload(a=side_a, b=side_b, only_a=only_a, only_b=only_b),
        inputs=list(inputs or ()),
        warnings=list(warnings or ()),
        view=CompareView(spans=spans, axis_ms=max(ends) if ends else None, headline=headline),
    )


def _side(trace: pl.DataFrame, chosen_by: str) -> ComparedRequest:
    root = trace.filter(pl.col("is_root")).sort("start_ns").head(1)
    if root.is_empty():
        root = trace.sort("depth", "start_ns").head(1)
    row = root.row(0, named=True)
    return ComparedRequest(
        trace_id=str(row["trace_id"]),
        stage=row["name"],
        service=row["service"],
        duration_ms=_ms(row["duration_ns"]),
        chosen_by=chosen_by,
    )
