"""The lenient OTLP/JSON path: documents the typed decoder turns away, read value by value.

The fast path (``otlp_fast``) decodes documents of the expected types straight into columns;
anything else (log documents, odd shapes, a value of the wrong type, a whole document that is
not line-based) is parsed by orjson and read here one span at a time, so that what is wrong is
named precisely and a malformed span is skipped as an item (``file:line#span N``) while the
document's other spans are read. Rows go to Python lists, one per canonical column
(``Columns``), which the reader turns into a frame (``schema.spans_from_columns``).
"""

from __future__ import annotations

from typing import Any

import orjson

from ml_tracelens.otlp_values import (
    any_value,
    attributes_of,
    canonical_level,
    int_or_none,
    level_from_severity_number,
    tolerant_attributes,
)
from ml_tracelens.readers.base import ReadStats
from ml_tracelens.readers.support.jsondoc import list_or_empty, object_or_empty
from ml_tracelens.schema import SPAN_COLUMNS_WITH_END

#: Canonical column -> its values so far, one list per column (spans or logs).
Columns = dict[str, list[object]]


_SPAN_KINDS = {
    0: None,
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_UNSPECIFIED": None,
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}


_STATUS = {
    0: "unset",
    1: "ok",
    2: "error",
    "STATUS_CODE_UNSET": "unset",
    "STATUS_CODE_OK": "ok",
    "STATUS_CODE_ERROR": "error",
}


def read_lenient(
    document: object,
    location: str,
    stats: ReadStats,
    spans: Columns,
    logs: Columns,
) -> None:
    """Read one document parsed by orjson into ``spans`` and ``logs``: a document that is not
    OTLP is skipped whole at ``location``, a malformed span alone (as an item)."""
    if not isinstance(document, dict):
        reject(stats, location, "not an OTLP object")
        return
    items, problems = stats.skipped_items, len(stats.problems)
    try:
        found = _read_document(document, location, stats, spans, logs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The document is skipped whole: the spans counted inside it are not skipped twice.
        stats.skipped_items = items
        del stats.problems[problems:]
        reject(stats, location, f"malformed OTLP ({type(exc).__name__}: {exc})")
        return
    if not found:
        if "resourceMetrics" in document:
            stats.ignore("metrics documents")
        else:
            reject(stats, location, "no resourceSpans or resourceLogs")


def reject(stats: ReadStats, location: str, reason: str) -> None:
    """Skip a document that was counted as read (a record) when it was split off."""
    stats.records -= 1
    stats.skip(location, reason)


def _read_document(
    document: dict[str, Any],
    location: str,
    stats: ReadStats,
    spans: Columns,
    logs: Columns,
) -> bool:
    found = False
    start_spans = len(spans["span_id"])
    start_logs = len(logs["time_ns"])
    position = 0
    try:
        for resource_spans in list_or_empty(document.get("resourceSpans"), "resourceSpans"):
            found = True
            position = _read_resource_spans(resource_spans, location, stats, spans, position)
        for resource_logs in document.get("resourceLogs") or ():
            found = True
            _read_resource_logs(resource_logs, location, logs)
    except Exception:
        for values in spans.values():
            del values[start_spans:]
        for values in logs.values():
            del values[start_logs:]
        raise
    return found or "resourceSpans" in document or "resourceLogs" in document


def _read_resource_spans(
    resource_spans: Any,
    location: str,
    stats: ReadStats,
    out: Columns,
    position: int,
) -> int:
    """Append the spans of one resourceSpans item, skipping malformed ones as items; returns
    the position of the next span in the document. A malformed container raises."""
    if not isinstance(resource_spans, dict):
        raise TypeError("a resourceSpans item is not an object")
    resource = _resource_attributes(resource_spans.get("resource"))
    service = str(resource.get("service.name", "unknown_service"))
    scopes = list_or_empty(
        resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans"),
        "scopeSpans",
    )
    for scope in scopes:
        if not isinstance(scope, dict):
            raise TypeError("a scopeSpans item is not an object")
        for span in list_or_empty(scope.get("spans"), "spans"):
            append_span(
                span, resource, service, location, f"{location}#span {position}", stats, out
            )
            position += 1
    return position


def _resource_attributes(resource: Any) -> dict[str, object]:
    """A resource's attributes as plain values, an odd value kept as its JSON text
    (``tolerant_attributes``): one odd value must not cost every span under the resource."""
    return tolerant_attributes((resource or {}).get("attributes"))


def append_span(
    span: object,
    resource: dict[str, object],
    service: str,
    location: str,
    where: str,
    stats: ReadStats,
    out: Columns,
) -> None:
    """Append one span parsed by orjson, or count it as a skipped item at ``where``."""
    try:
        row = _span_row(span, resource, service)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        stats.skip_item(where, f"malformed OTLP span ({exc})")
        return
    for column, value in zip(SPAN_COLUMNS_WITH_END, (*row, location), strict=True):
        out[column].append(value)


def _span_row(span: object, resource: dict[str, object], service: str) -> tuple[Any, ...]:
    """One OTLP span -> its canonical values in SPAN_COLUMNS_WITH_END order, without the source."""
    if not isinstance(span, dict):
        raise TypeError(f"a span is not an object but {type(span).__name__}")
    trace_id = _required_id(span, "traceId")
    span_id = _required_id(span, "spanId")
    parent_id = span.get("parentSpanId") or None
    if parent_id is not None and not isinstance(parent_id, str):
        raise TypeError(f"parentSpanId is not a string: {parent_id!r}")
    attributes = dict(resource)
    attributes.update(attributes_of(span.get("attributes")))
    status = object_or_empty(span.get("status") or None, "status")
    code = _STATUS.get(_scalar(status.get("code", 0), "status.code"), "unset")
    message = status.get("message") or None
    events = list_or_empty(span.get("events") or None, "events")
    exception_message = None
    event_list = None
    if events:
        event_list = []
        for item in events:
            # JSON as parsed: a value of the wrong type raises below and costs the span.
            event: dict[str, Any] = object_or_empty(item, "an event")
            event_attributes = attributes_of(event.get("attributes"))
            event_list.append(
                {
                    "name": event.get("name"),
                    "time_ns": int_or_none(event.get("timeUnixNano")),
                    "attributes": event_attributes,
                }
            )
            if event.get("name") == "exception" and exception_message is None:
                exception_message = str(
                    event_attributes.get("exception.message")
                    or event_attributes.get("exception.type")
                    or "exception"
                )
    if exception_message is not None and code == "unset":
        code = "error"
    if code == "error" and message is None:
        message = exception_message
    links = [
        object_or_empty(link, "a link")
        for link in list_or_empty(span.get("links") or None, "links")
    ]
    return (
        trace_id,
        span_id,
        parent_id,
        service,
        str(span.get("name", "")),
        _SPAN_KINDS.get(_scalar(span.get("kind", 0), "kind")),
        _time(span, "startTimeUnixNano"),
        _time(span, "endTimeUnixNano"),
        code,
        message,
        orjson.dumps(attributes).decode(),
        orjson.dumps(event_list).decode() if event_list else None,
        orjson.dumps(
            [
                {"trace_id": link.get("traceId"), "span_id": link.get("spanId"), "type": "link"}
                for link in links
            ]
        ).decode()
        if links
        else None,
    )


def _time(span: dict[str, Any], key: str) -> int | None:
    value = span.get(key)
    try:
        return int_or_none(value)
    except (TypeError, ValueError):
        shown = repr(value) if len(repr(value)) <= 60 else type(value).__name__
        raise ValueError(f"{key} is not a time in nanoseconds: {shown}") from None


def _required_id(span: dict[str, Any], key: str) -> str:
    value = span.get(key)
    if value is None:
        raise ValueError(f"missing {key}")
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string: {value!r}")
    return value


def _scalar(value: Any, key: str) -> int | str | None:
    """A code or name (kind, status code): a number or a string, looked up as such."""
    if value is not None and not isinstance(value, int | str):
        raise TypeError(f"{key} is not a number or a name: {type(value).__name__}")
    return value


def _read_resource_logs(resource_logs: dict[str, Any], location: str, out: Columns) -> None:
    resource = _resource_attributes(resource_logs.get("resource"))
    service = str(resource.get("service.name", "unknown_service"))
    scopes = resource_logs.get("scopeLogs") or resource_logs.get("instrumentationLibraryLogs") or ()
    for scope in scopes:
        for record in scope.get("logRecords") or ():
            attributes = dict(resource)
            attributes.update(attributes_of(record.get("attributes")))
            time_ns = int_or_none(record.get("timeUnixNano")) or int_or_none(
                record.get("observedTimeUnixNano")
            )
            level = record.get("severityText") or level_from_severity_number(
                record.get("severityNumber")
            )
            body = any_value(record.get("body")) if record.get("body") is not None else None
            trace_id = record.get("traceId") or None
            out["time_ns"].append(time_ns)
            out["level"].append(canonical_level(level))
            out["message"].append(
                body if isinstance(body, str) or body is None else orjson.dumps(body).decode()
            )
            out["trace_id"].append(trace_id)
            out["span_id"].append(record.get("spanId") or None)
            out["correlation_id"].append(trace_id)
            out["service"].append(service)
            out["error_message"].append(attributes.get("exception.message"))
            out["attributes"].append(orjson.dumps(attributes).decode())
            out["source"].append(location)
