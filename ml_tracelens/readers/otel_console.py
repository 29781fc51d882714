"""What the OpenTelemetry SDK's console exporters print (``ConsoleSpanExporter``, and
``ConsoleLogRecordExporter`` when a program sends both to the same stream).

Each span or log record is an indented JSON object, written back to back (``}\\n{``): neither one
JSON document nor JSON lines. A span, as the Python SDK writes it::

    {
        "name": "model.forward",
        "context": {"trace_id": "0x5873a1f3ecf5e42bac993b0733fd5715",
                    "span_id": "0xfc75837136f3bb78", "trace_state": "[]"},
        "kind": "SpanKind.CLIENT",
        "parent_id": "0x3b117a91681c3af8",
        "start_time": "2026-11-26T09:08:05.868905Z",
        "end_time": "2026-11-26T09:08:05.869277Z",
        "status": {"status_code": "ERROR", "description": "CUDA out of memory"},
        "attributes": {"model.version": "v2"},
        "events": [{"name": "exception", "timestamp": "2026-11-26T09:08:05.869261Z",
                    "attributes": {"exception.type": "RuntimeError", ...}}],
        "links": [{"context": {"trace_id": "0x...", "span_id": "0x...", ...}, "attributes": {}}],
        "resource": {"attributes": {"service.name": "inference-api", ...}, "schema_url": ""}
    }

Mapping to the canonical columns: context.trace_id / context.span_id / parent_id (``0x``
prefix dropped; parent_id null for roots) -> trace_id / span_id / parent_id; name -> name;
``SpanKind.SERVER`` -> server (and so on); start_time / end_time (ISO-8601, microseconds or more
digits, ``Z`` or an offset; no zone means UTC) -> start_ns / end_ns by integer arithmetic on the
parsed date and the fraction's digits, never through a float; status_code ERROR / OK / UNSET ->
error / ok / unset with ``description`` as status_message; as in OTLP, an ``exception`` event on
a span with status UNSET makes it an error, and its ``exception.message`` is the message when
the status has none; ``resource.attributes`` + attributes -> attributes, with
``resource.attributes["service.name"]`` -> service (missing -> ``unknown_service``); events ->
``[{name, time_ns, attributes}]``; links -> ``[{trace_id, span_id, type: "link"}]``.

A log record (``body``, ``severity_text``, ``timestamp``, ``trace_id``...) goes to the log table:
timestamp (or observed_timestamp) -> time_ns, severity_text (or severity_number) -> level, body
-> message, all-zero trace/span ids (a record outside any span) -> null.

A malformed object is skipped and counted at its ``file:line``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ml_tracelens.durations import NS_PER_S
from ml_tracelens.otlp_values import canonical_level, level_from_severity_number
from ml_tracelens.readers.base import InputSource, ReaderSpec, ReadOptions, ReadResult, ReadStats
from ml_tracelens.readers.support.jsondoc import iter_documents, list_or_empty, object_or_empty
from ml_tracelens.readers.support.zipkin_model import canonical_id, checked_id, span_location
from ml_tracelens.schema import (
    INT64_MAX,
    INT64_MIN,
    KINDS,
    OTEL_LOG_COLUMNS,
    SPAN_COLUMNS_WITH_END,
    logs_from_columns,
    spans_from_columns,
)

NAME = "otel-console"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)
_HEX_TRACE_ID = re.compile(rb'"trace_id"\s*:\s*"0x[0-9a-fA-F]')
# The SDK writes the span context as an object that opens with the 0x trace id.
_CONTEXT_OBJECT = re.compile(rb'"context"\s*:\s*\{\s*"trace_id"\s*:\s*"0x[0-9a-fA-F]')
_STATUS = {"ERROR": "error", "OK": "ok", "UNSET": "unset"}
_SPAN_COLUMNS = SPAN_COLUMNS_WITH_END
_LOG_COLUMNS = OTEL_LOG_COLUMNS


def sniff(head: bytes) -> bool:
    if b'"resourceSpans"' in head or b'"resourceLogs"' in head:
        return False
    if not _HEX_TRACE_ID.search(head):
        return False
    # A span has the SDK's context object; a log record the SDK's severity_text and
    # observed_timestamp. Loose JSON logs may carry a 0x trace id, but not these shapes.
    spans = _CONTEXT_OBJECT.search(head) is not None
    logs = b'"severity_text"' in head and b'"observed_timestamp"' in head
    return spans or logs


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    stats = ReadStats(format=NAME)
    spans: dict[str, list[Any]] = {c: [] for c in _SPAN_COLUMNS}
    logs: dict[str, list[Any]] = {c: [] for c in _LOG_COLUMNS}
    for location, document in iter_documents(source, stats):
        # A list is what a program gets by collecting to_json() outputs itself.
        items = document if isinstance(document, list) else [document]
        whole = not isinstance(document, list)
        for index, item in enumerate(items):
            where = location if whole else span_location(source.name, location, index)
            try:
                if isinstance(item, dict) and "context" in item:
                    _append(spans, _parse_span(item), where)
                elif isinstance(item, dict) and ("body" in item or "severity_text" in item):
                    _append(logs, _parse_log(item), where)
                else:
                    raise TypeError("neither a console span nor a console log record")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                reason = f"malformed console exporter object ({exc})"
                if whole:
                    stats.records -= 1
                    stats.skip(where, reason)
                else:
                    stats.skip_item(where, reason)
    return ReadResult(stats=stats, spans=spans_from_columns(spans), logs=logs_from_columns(logs))


READER = ReaderSpec(
    name=NAME,
    description="OpenTelemetry SDK console exporter output (ConsoleSpanExporter)",
    accepts="indented span (and log record) objects written back to back, as printed to stdout",
    sniff=sniff,
    read=read,
    priority=40,
)


def _append(columns: dict[str, list[Any]], row: tuple[Any, ...], where: str) -> None:
    for name, value in zip(columns, (*row, where), strict=True):
        columns[name].append(value)


def _parse_span(span: dict[str, Any]) -> tuple[Any, ...]:
    context = object_or_empty(span.get("context"), "context")
    trace_id = _hex(context.get("trace_id"), "context.trace_id", required=True)
    span_id = _hex(context.get("span_id"), "context.span_id", required=True)
    resource = object_or_empty(
        object_or_empty(span.get("resource"), "resource").get("attributes"), "resource"
    )
    attributes = dict(resource)
    attributes.update(object_or_empty(span.get("attributes"), "attributes"))
    service = resource.get("service.name") or "unknown_service"
    status = object_or_empty(span.get("status"), "status")
    code = _STATUS.get(str(status.get("status_code", "UNSET")).rsplit(".", 1)[-1].upper(), "unset")
    message = status.get("description") or None
    events = [_event(e) for e in list_or_empty(span.get("events"), "events")]
    exception = next((e for e in events if e["name"] == "exception"), None)
    if exception is not None and code == "unset":
        code = "error"
    if code == "error" and message is None and exception is not None:
        found = exception["attributes"].get("exception.message")
        message = str(found) if found else None
    links = [_link(link) for link in list_or_empty(span.get("links"), "links")]
    kind = str(span.get("kind") or "").rsplit(".", 1)[-1].lower()
    name = span.get("name")
    if not isinstance(name, str):
        raise TypeError(f"name is not a string: {name!r}")
    return (
        trace_id,
        span_id,
        _hex(span.get("parent_id"), "parent_id"),
        str(service),
        name,
        kind if kind in KINDS else None,
        iso_to_ns(span.get("start_time"), "start_time"),
        iso_to_ns(span.get("end_time"), "end_time"),
        code,
        str(message) if message is not None else None,
        orjson.dumps(attributes).decode(),
        orjson.dumps(events).decode() if events else None,
        orjson.dumps(links).decode() if links else None,
    )


def _parse_log(record: dict[str, Any]) -> tuple[Any, ...]:
    resource = object_or_empty(
        object_or_empty(record.get("resource"), "resource").get("attributes"), "resource"
    )
    attributes = dict(resource)
    attributes.update(object_or_empty(record.get("attributes"), "attributes"))
    time_ns = iso_to_ns(record.get("timestamp"), "timestamp")
    if time_ns is None:
        time_ns = iso_to_ns(record.get("observed_timestamp"), "observed_timestamp")
    level = canonical_level(
        record.get("severity_text") or level_from_severity_number(record.get("severity_number"))
    )
    body = record.get("body")
    trace_id = _hex(record.get("trace_id"), "trace_id")
    return (
        time_ns,
        level,
        body if body is None or isinstance(body, str) else orjson.dumps(body).decode(),
        trace_id,
        _hex(record.get("span_id"), "span_id"),
        trace_id,
        str(resource.get("service.name") or "unknown_service"),
        attributes.get("exception.message"),
        orjson.dumps(attributes).decode(),
    )


def iso_to_ns(value: object, field: str) -> int | None:
    """An ISO-8601 time -> int ns since the epoch, from the date and the fraction's digits.

    ``datetime`` keeps microseconds only and a float of seconds would round, so the fraction is
    read as digits and the rest as whole days and seconds.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} is not a string: {value!r}")
    match = _ISO.match(value.strip())
    if match is None:
        raise ValueError(f"{field} is not an ISO-8601 time: {value!r}")
    zone = match["zone"] or "Z"
    if zone in ("Z", "z"):
        zone = "+00:00"
    try:
        moment = datetime.fromisoformat(match["base"].replace(" ", "T") + zone)
    except ValueError as exc:
        raise ValueError(f"{field} is not a valid time: {value!r}") from exc
    delta: timedelta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    fraction = (match["fraction"] or "")[:9].ljust(9, "0")
    ns = seconds * NS_PER_S + int(fraction)
    if not INT64_MIN <= ns <= INT64_MAX:
        # The canonical tables hold Int64 ns: 1677-09-21 to 2262-04-11.
        raise ValueError(f"{field} is out of the range of times tracelens holds: {value!r}")
    return ns


def _event(event: Any) -> dict[str, Any]:
    event = object_or_empty(event, "event")
    return {
        "name": str(event.get("name", "")),
        "time_ns": iso_to_ns(event.get("timestamp"), "event timestamp"),
        "attributes": object_or_empty(event.get("attributes"), "event attributes"),
    }


def _link(link: Any) -> dict[str, Any]:
    context = object_or_empty(object_or_empty(link, "link").get("context"), "link context")
    return {
        "trace_id": _hex(context.get("trace_id"), "link trace_id", required=True),
        "span_id": _hex(context.get("span_id"), "link span_id", required=True),
        "type": "link",
    }


def _hex(value: Any, field: str, *, required: bool = False) -> str | None:
    """``0x``-prefixed hex id -> canonical hex; null, empty or all zeros -> None."""
    if isinstance(value, str) and value[:2].lower() == "0x":
        value = value[2:] or "0"  # "0x" alone has no digits: an id of zeros, so absent
    digits = checked_id(value, field, required=required)
    return None if digits is None else canonical_id(digits)
