"""Builders shared by the tests: canonical span frames, and the files exporters write.

Canonical frames, from compact rows or the notation of algorithms.md:

    make_spans([("A", None, 0, 100), ("B", "A", 10, 60, {"status": "error"})])
    parse_spans("A[0,100]; B[10,60](A){status=error, service=api}; U[?,?](A)")

Both return a frame with exactly ``SPAN_SCHEMA`` (ids are kept as written, not normalized, so
tests read naturally). Defaults: trace id "t1", name = span id, service "svc", status "unset",
duration = end - start, attributes "{}", source "test:<row>". Times are multiplied by
``scale`` (e.g. ``scale=1_000_000`` to write milliseconds).

Files, for the readers and the CLI to read: OTLP/JSON spans, log records and documents
(``otlp_span``, ``otlp_log``, ``otlp_document``, written a line each by ``write_otlp_lines``);
requests of a root and its stages for the gates (``Request``, ``write_requests``); a request on
several services with its logs (``predict_request``, ``write_by_service``); console exporter
objects (``console_span``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ml_tracelens.schema import SPAN_SCHEMA

Row = tuple[Any, ...] | Mapping[str, Any]

#: short names accepted in row mappings and ``{...}`` attributes of the notation
ALIASES = {
    "id": "span_id",
    "parent": "parent_id",
    "trace": "trace_id",
    "start": "start_ns",
    "end": "end_ns",
    "duration": "duration_ns",
    "message": "status_message",
}


def make_spans(
    rows: Iterable[Row],
    *,
    trace_id: str = "t1",
    service: str = "svc",
    status: str = "unset",
    kind: str | None = None,
    scale: int = 1,
    **defaults: Any,
) -> pl.DataFrame:
    """A canonical span frame from ``(span_id, parent_id, start, end[, {column: value}])`` rows.

    Rows may also be mappings of column names (or the ``ALIASES``). ``defaults`` sets any other
    column for every row (e.g. ``source="x.json:1"``); per-row values win.
    """
    records = []
    for index, row in enumerate(rows):
        record: dict[str, Any] = {
            "trace_id": trace_id,
            "service": service,
            "status": status,
            "kind": kind,
            **{ALIASES.get(k, k): v for k, v in defaults.items()},
        }
        if isinstance(row, Mapping):
            fields = dict(row)
        else:
            span_id, parent_id, start, end, *extra = row
            fields = {"span_id": span_id, "parent_id": parent_id, "start_ns": start, "end_ns": end}
            if extra:
                fields.update(extra[0])
        record.update({ALIASES.get(k, k): v for k, v in fields.items()})
        record.setdefault("name", record.get("span_id"))
        record.setdefault("source", f"test:{index + 1}")
        for column in ("start_ns", "end_ns", "duration_ns"):
            if record.get(column) is not None:
                record[column] = int(record[column]) * scale
        if "duration_ns" not in record and None not in (
            record.get("start_ns"),
            record.get("end_ns"),
        ):
            record["duration_ns"] = record["end_ns"] - record["start_ns"]
        if isinstance(record.get("attributes"), Mapping):
            record["attributes"] = json.dumps(record["attributes"])
        record.setdefault("attributes", "{}")
        unknown = set(record) - set(SPAN_SCHEMA)
        if unknown:
            raise ValueError(f"not canonical columns: {sorted(unknown)}")
        records.append(record)
    columns = {
        name: pl.Series(name, [r.get(name) for r in records], dtype=pl.String).cast(dtype)
        if dtype in (SPAN_SCHEMA["kind"], SPAN_SCHEMA["status"])
        else pl.Series(name, [r.get(name) for r in records], dtype=dtype)
        for name, dtype in SPAN_SCHEMA.items()
    }
    return pl.DataFrame(columns)


#: The columns a reader fills from a span's own fields (not attributes, events or source):
#: what a test compares with a table written by hand.
SPAN_FIELDS = [
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "duration_ns",
    "status",
    "status_message",
]


_ITEM = re.compile(
    r"""^\s*(?P<id>[^\s\[\](){};]+)\s*
    \[\s*(?P<start>[-+\d?]*)\s*,\s*(?P<end>[-+\d?]*)\s*\]\s*
    (?:\(\s*(?P<parent>[^\s()]+)\s*\))?\s*
    (?:\{(?P<attrs>[^}]*)\})?\s*$""",
    re.VERBOSE,
)


def parse_spans(text: str, *, trace_id: str = "t1", **defaults: Any) -> pl.DataFrame:
    """Spans written as in algorithms.md: ``A[0,100]; B[10,60](A); C[20,30](B)``.

    Items are separated by ``;`` or newlines. ``?`` (or nothing) for a time means unknown.
    ``{key=value, ...}`` after an item sets columns (aliases allowed): status, service, name,
    kind, trace, duration... Other keyword arguments are passed on to ``make_spans``.
    """
    rows = []
    for item in re.split(r"[;\n]", text):
        if not item.strip():
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"cannot parse span {item.strip()!r}; expected ID[start,end](PARENT)")
        extra: dict[str, Any] = {}
        for pair in (match["attrs"] or "").split(","):
            if pair.strip():
                key, _, value = pair.partition("=")
                extra[key.strip()] = value.strip()
        rows.append(
            (match["id"], match["parent"], _time(match["start"]), _time(match["end"]), extra)
        )
    return make_spans(rows, trace_id=trace_id, **defaults)


def _time(text: str) -> int | None:
    return None if text in ("", "?") else int(text)


def by_span(frame: pl.DataFrame, column: str = "cp_ns") -> dict[str, int | None]:
    """``{span_id: value}`` of one result column, for compact assertions."""
    return dict(zip(frame.get_column("span_id"), frame.get_column(column), strict=True))


# --- OTLP/JSON, as exporters write it --------------------------------------------------------

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns
MS = 1_000_000  # ns
TRACE = "0af7651916cd43dd8448eb211c80319c"


def sid(number: int) -> str:
    """The span id numbered ``number`` (from 0): 16 hex digits, never all zeros."""
    return f"{number + 1:016x}"


def otlp_value(value: Any) -> dict[str, Any]:
    """An OTLP AnyValue: strings, booleans, integers (as decimal strings) and floats."""
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"doubleValue": value}


def otlp_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": otlp_value(value)} for key, value in attributes.items()]


#: ``otlp_span(status=...)`` words and the OTLP status object each stands for
STATUS_CODES = {"unset": {}, "ok": {"code": 1}, "error": {"code": 2}}


def otlp_span(
    trace: str,
    span: str,
    parent: str | None,
    name: str,
    start: Any,
    end: Any,
    *,
    kind: int | str | None = 2,
    attributes: Mapping[str, Any] | list[Any] | None = None,
    status: str | Mapping[str, Any] | None = None,
    message: str | None = None,
    events: list[Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One OTLP/JSON span.

    ``parent`` None is a root (``"parentSpanId": ""``, as the SDK writes it). An int time is
    written as a decimal string, as exporters do; any other value as it is (a malformed time
    stays malformed). ``kind``, ``attributes``, ``status`` and ``events`` left at None leave
    their key out. ``attributes`` is a mapping of plain values or a list written as it is;
    ``status`` is "unset", "ok" or "error" (with ``message``) or an OTLP status object.
    ``fields`` are OTLP keys set last, over anything above (``startTimeUnixNano=True``).
    """
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent or "",
        "name": name,
    }
    if kind is not None:
        out["kind"] = kind
    out["startTimeUnixNano"] = str(start) if isinstance(start, int) else start
    out["endTimeUnixNano"] = str(end) if isinstance(end, int) else end
    if attributes is not None:
        out["attributes"] = (
            otlp_attributes(attributes) if isinstance(attributes, Mapping) else attributes
        )
    if status is not None or message is not None:
        code = dict(STATUS_CODES[status or "error"]) if not isinstance(status, Mapping) else status
        out["status"] = code if message is None else {**code, "message": message}
    if events is not None:
        out["events"] = events
    out.update(fields)
    return out


def otlp_log(
    trace: str | None, span: str | None, time_ns: int, body: str, level: str = "INFO"
) -> dict[str, Any]:
    """One OTLP/JSON log record; a None id leaves its key out."""
    record: dict[str, Any] = {
        "timeUnixNano": str(time_ns),
        "severityText": level,
        "body": {"stringValue": body},
    }
    if trace is not None:
        record["traceId"] = trace
    if span is not None:
        record["spanId"] = span
    return record


def otlp_document(
    spans: Iterable[dict[str, Any]] | None,
    *,
    service: str | None = "svc",
    resource: Mapping[str, Any] | None = None,
    scope: Mapping[str, Any] | None = None,
    scope_key: str = "scopeSpans",
    logs: Iterable[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One OTLP/JSON document: the spans (None: no ``resourceSpans``) and the log records (None:
    no ``resourceLogs``) of one resource and one scope.

    The resource holds ``service.name`` then the ``resource`` attributes; with no service and
    no attributes there is no resource at all. ``scope`` is the scope object (``{"name": ...}``)
    and ``scope_key`` the name of the scope list (``instrumentationLibrarySpans`` in old
    exporters).
    """
    attributes = {**({"service.name": service} if service is not None else {}), **(resource or {})}
    holder = {"resource": {"attributes": otlp_attributes(attributes)}} if attributes else {}
    in_scope = {"scope": dict(scope)} if scope is not None else {}
    document: dict[str, Any] = {}
    if spans is not None:
        document["resourceSpans"] = [{**holder, scope_key: [{**in_scope, "spans": list(spans)}]}]
    if logs is not None:
        document["resourceLogs"] = [
            {**holder, "scopeLogs": [{**in_scope, "logRecords": list(logs)}]}
        ]
    return document


def write_jsonl(path: Path, documents: Iterable[Any]) -> Path:
    """One JSON document a line; a ``str`` or ``bytes`` item is written as the line it is."""
    lines = (
        item.encode()
        if isinstance(item, str)
        else item
        if isinstance(item, bytes)
        else orjson.dumps(item)
        for item in documents
    )
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def write_otlp_lines(
    path: Path, batches: Iterable[list[dict[str, Any]] | str | bytes], **document: Any
) -> Path:
    """OTLP/JSON lines as the Collector's file exporter writes them: one document a batch of
    spans (``document`` as for ``otlp_document``); a ``str`` or ``bytes`` item is written as the
    line it is (a damaged line)."""
    return write_jsonl(
        path,
        (
            batch if isinstance(batch, str | bytes) else otlp_document(batch, **document)
            for batch in batches
        ),
    )


# --- the OpenTelemetry console exporter ---------------------------------------------------------


def console_span(number: int, start: str, end: str, **fields: Any) -> dict[str, Any]:
    """One object as the SDK's ConsoleSpanExporter prints it: span ``number`` (its own trace),
    a root, status unset; ``fields`` add or replace keys (``kind``, ``resource``)."""
    return {
        "name": f"t{number}",
        "context": {"trace_id": f"0x{number + 1:032x}", "span_id": f"0x{sid(number)}"},
        "parent_id": None,
        "start_time": start,
        "end_time": end,
        "status": {"status_code": "UNSET"},
        **fields,
    }


# --- requests of a root and its stages, for the gates (check, diff, junit) ----------------------


@dataclass
class Child:
    name: str
    offset_ns: int  # from the request's start
    duration_ns: int
    error: bool = False


@dataclass
class Request:
    duration_ns: int
    error: bool = False
    children: list[Child] = field(default_factory=list)
    name: str = "POST /predict"


def request_spans(index: int, request: Request) -> list[dict[str, Any]]:
    """The spans of request number ``index`` (from 0), which starts ``index`` ms after T0: a
    server root and client children, each with an explicit status (OK on success, so that a
    request is in error exactly when its root says so)."""
    trace = f"{index + 1:032x}"
    root = f"{(index + 1) << 8:016x}"
    start = T0 + index * MS

    def span(span_id: str, parent: str | None, name: str, offset: int, duration: int, error: bool):
        return otlp_span(
            trace,
            span_id,
            parent,
            name,
            start + offset,
            start + offset + duration,
            kind=1 if parent else 2,
            status="error" if error else "ok",
            message=f"{name} failed" if error else None,
        )

    spans = [span(root, None, request.name, 0, request.duration_ns, request.error)]
    for number, child in enumerate(request.children, 1):
        child_id = f"{((index + 1) << 8) + number:016x}"
        spans.append(
            span(child_id, root, child.name, child.offset_ns, child.duration_ns, child.error)
        )
    return spans


def write_requests(path: Path, requests: list[Request], *, per_line: int = 50) -> Path:
    """OTLP/JSON lines of ``per_line`` requests each; requests 1 ms apart."""
    batches = [
        [
            span
            for index in range(first, min(first + per_line, len(requests)))
            for span in request_spans(index, requests[index])
        ]
        for first in range(0, len(requests), per_line)
    ]
    return write_otlp_lines(path, batches)


# --- one request on several services, with logs, for show and traces ---------------------------

T1 = "4bf92f3577b34da6a3ce929d0e0e4736"
T2 = "4bf92f9999999999aaaaaaaaaaaaaaaa"  # shares the 6-digit prefix 4bf92f with T1
T3 = "0af7651916cd43dd8448eb211c80319c"
T4 = "1af7651916cd43dd8448eb211c80319c"
A, B, C, D = "a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3", "d4d4d4d4d4d4d4d4"


def ms_span(
    trace: str,
    span: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    *,
    error: str | None = None,
    ok: bool = False,
    attrs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A span at milliseconds after T0, failing with the message ``error``, or with an explicit
    OK status when ``ok``, else unset."""
    return otlp_span(
        trace,
        span,
        parent,
        name,
        T0 + int(start_ms * MS),
        T0 + int(end_ms * MS),
        kind=1,
        attributes=attrs or {},
        status="error" if error else "ok" if ok else "unset",
        message=error,
    )


def ms_log(trace: str, span: str | None, at_ms: float, body: str, level: str = "INFO") -> dict:
    """A log record at milliseconds after T0."""
    return otlp_log(trace, span or "", T0 + int(at_ms * MS), body, level)


def predict_request() -> list[tuple[str, dict[str, Any]]]:
    """(service, span) of T1, whose core is algorithms.md's third critical-path vector:
    A[0,100] gateway root; B[10,70](A); C[25,45](B); D[30,50](B) failing with "boom"; then T2, a
    5 ms health check at 1 s."""
    return [
        (
            "gateway",
            ms_span(T1, A, None, "POST /predict", 0, 100, attrs={"request.id": "req-8f3a"}),
        ),
        ("model-server", ms_span(T1, B, A, "model.inference", 10, 70)),
        ("cache", ms_span(T1, C, B, "redis GET", 25, 45)),
        ("model-server", ms_span(T1, D, B, "tokenize", 30, 50, error="boom")),
        ("gateway", ms_span(T2, A, None, "GET /health", 1000, 1005)),
    ]


def write_by_service(
    path: Path,
    spans: list[tuple[str, dict[str, Any]]],
    logs: Iterable[tuple[str, dict[str, Any]]] = (),
) -> Path:
    """One resourceSpans line per service, then one resourceLogs line per service."""
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for service, span in spans:
        by_service[service].append(span)
    logs_by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for service, record in logs:
        logs_by_service[service].append(record)
    return write_jsonl(
        path,
        [
            *(otlp_document(items, service=s) for s, items in by_service.items()),
            *(otlp_document(None, service=s, logs=items) for s, items in logs_by_service.items()),
        ],
    )


# --- a dump to read in parallel -----------------------------------------------------------------


def write_small_traces(path: Path, count: int) -> Path:
    """``count`` traces of a root and two stages, one trace a line and 1 µs apart, no resource,
    and a truncated line after every seventh trace from the fourth on."""
    lines: list[list[dict[str, Any]] | str] = []
    for index in range(count):
        lines.append(
            [
                otlp_span(
                    f"{index:032x}",
                    f"{index * 10 + j + 1:016x}",
                    None if j == 0 else f"{index * 10 + 1:016x}",
                    "root" if j == 0 else f"stage{j}",
                    T0 + index * 1000 + j,
                    T0 + index * 1000 + 100 - j,
                    kind=None,
                )
                for j in range(3)
            ]
        )
        if index % 7 == 3:
            lines.append('{"resourceSpans": [truncated')
    return write_otlp_lines(path, lines, service=None)
