"""Jaeger JSON traces (the query API's ``/api/traces`` answer and the UI's "Download JSON").

Layouts read, each one document per file or one per line (JSON lines):

- the query API / UI wrapper ``{"data": [trace, ...], "total": 0, "errors": null}``;
- a bare trace object ``{"traceID": ..., "spans": [...], "processes": {...}}``;
- a bare array of spans each embedding its ``process`` (or an array of trace objects).

Minimal sample::

    {"data": [{"traceID": "5b8aa5a2d2c872e8321cf37308d69df2",
      "spans": [{"traceID": "5b8aa5a2d2c872e8321cf37308d69df2", "spanID": "6d1f47b1e0f8e0a1",
        "operationName": "POST /predict", "processID": "p1",
        "references": [{"refType": "CHILD_OF", "traceID": "5b8a...", "spanID": "51f1b4e5..."}],
        "startTime": 1700000000123456, "duration": 120000,
        "tags": [{"key": "span.kind", "type": "string", "value": "server"},
                 {"key": "error", "type": "bool", "value": true}],
        "logs": [{"timestamp": 1700000000200000, "fields": [
                 {"key": "event", "type": "string", "value": "error"},
                 {"key": "message", "type": "string", "value": "CUDA out of memory"}]}]}],
      "processes": {"p1": {"serviceName": "gateway",
                           "tags": [{"key": "hostname", "type": "string", "value": "gw-1"}]}}}]}

Mapping to the canonical columns:

- traceID / spanID -> trace_id / span_id (lowercased, left-padded: Jaeger drops leading zeros).
- parent_id: the first ``CHILD_OF`` reference with the span's own trace id, else the legacy
  ``parentSpanID`` (all zeros = none). Every other reference (``FOLLOWS_FROM``, further or
  cross-trace ``CHILD_OF``) goes to ``links`` as ``{trace_id, span_id, type}`` with type
  ``follows_from`` / ``child_of``; a FOLLOWS_FROM is never a parent.
- service: ``processes[processID].serviceName`` or the span's embedded ``process``
  (missing -> ``unknown_service``).
- name: operationName. kind: the ``span.kind`` tag (server, client, producer, consumer,
  internal), else null.
- startTime / duration in µs (ints or int64 strings) -> start_ns / duration_ns, integer math.
- attributes: ``service.name``, the process tags, then the span tags (span wins); typed tags
  (string, bool, int64, float64, binary) become JSON values, a value that does not parse as its
  declared type is kept as written.
- status: error when the ``error`` tag is true (or a non-empty string other than "false"), when
  ``otel.status_code`` = ERROR, or when a span log has an ``error`` / ``error.object`` field or
  ``event`` = error; ok only when ``otel.status_code`` = OK (Jaeger has no ok/unset
  distinction); else unset. status_message: ``otel.status_description``, else the error log's
  ``message`` / ``error.message`` / ``error.object`` / ``error`` field, else the ``error`` tag
  when it is a message rather than a flag.
- logs -> events ``[{name, time_ns, attributes}]``; name is the ``event`` field, else "log".

Spans that share an id as Zipkin client/server halves do (a server and a client span with one
spanID, from Zipkin-instrumented services) are split as in ``zipkin_json``. A malformed span is
skipped and counted as ``file#index`` (``file:line#index`` past line 1), index being its 0-based
position among the document's spans.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import orjson

from ml_tracelens.readers.base import InputSource, ReaderSpec, ReadOptions, ReadResult, ReadStats
from ml_tracelens.readers.support.jsondoc import iter_documents
from ml_tracelens.readers.support.zipkin_model import (
    SHARED_COLUMNS,
    canonical_id,
    checked_id,
    micros_to_ns,
    parse_spans,
    shared_id_result,
    span_location,
)
from ml_tracelens.schema import KINDS, SPAN_COLUMNS_WITH_DURATION

NAME = "jaeger-json"
_COLUMNS = SPAN_COLUMNS_WITH_DURATION
_ROW = (*_COLUMNS, *SHARED_COLUMNS)
_MESSAGE_FIELDS = ("message", "error.message", "error.object", "error")
_NOT_A_MESSAGE = ("", "true", "false")


class _Trace:
    """The spans of one trace object with the process table they refer to."""

    def __init__(self, spans: Any, processes: Any, trace_id: Any):
        if not isinstance(spans, list):
            raise TypeError(f"spans is not a list but {type(spans).__name__}")
        if processes is not None and not isinstance(processes, dict):
            raise TypeError(f"processes is not an object but {type(processes).__name__}")
        self.spans = spans
        self.processes = processes or {}
        self.trace_id = trace_id


def sniff(head: bytes) -> bool:
    # operationName too: some loggers name their correlation fields traceID / spanID.
    keys = (b'"traceID"', b'"spanID"', b'"operationName"')
    return all(key in head for key in keys) and b'"resourceSpans"' not in head


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    stats = ReadStats(format=NAME)
    rows: list[tuple[Any, ...]] = []
    for location, document in iter_documents(source, stats):
        # Spans are numbered across the document's traces.
        index = 0
        for trace in _traces(document, location, source.name, stats):
            index = parse_spans(
                rows,
                trace.spans,
                functools.partial(_parse_span, trace=trace),
                stats,
                what="Jaeger",
                name=source.name,
                location=location,
                first=index,
            )
    return shared_id_result(rows, _ROW, stats)


READER = ReaderSpec(
    name=NAME,
    description="Jaeger JSON traces (query API, UI download)",
    accepts='{"data": [traces]} wrapper, bare trace objects, arrays of spans with embedded '
    "process; one per file or per line",
    sniff=sniff,
    read=read,
    priority=20,
)


def _traces(document: Any, location: str, name: str, stats: ReadStats) -> Iterator[_Trace]:
    """The trace objects of one document, whichever layout it has.

    A document that is not Jaeger at all is moved from read to skipped; one malformed trace in
    a ``data`` list is skipped on its own (``file#data[i]``, each of its spans counted as a
    skipped item) and the others are read.
    """
    if isinstance(document, dict) and "data" in document:
        data = document["data"]
        if data is None or isinstance(data, list):
            for number, item in enumerate(data or ()):
                try:
                    yield _trace_of(item)
                except TypeError as exc:
                    where = span_location(name, location, f"data[{number}]")
                    _skip_trace(stats, where, str(exc), item)
            return
        reason = "data is not a list"
    elif isinstance(document, dict) and ("spans" in document or "spanID" in document):
        try:
            yield _trace_of(document)
            return
        except TypeError as exc:
            reason = str(exc)
    elif isinstance(document, list):
        yield from _traces_of_array(document, location, name, stats)
        return
    else:
        reason = "no data, spans or spanID"
    stats.records -= 1
    stats.skip(location, f"not a Jaeger trace document ({reason})")


def _trace_of(item: Any) -> _Trace:
    if not isinstance(item, dict):
        raise TypeError(f"a trace is not an object but {type(item).__name__}")
    if "spans" not in item and "spanID" in item:
        # A single span with an embedded process (JSON lines of spans).
        return _Trace([item], None, item.get("traceID"))
    return _Trace(item.get("spans"), item.get("processes"), item.get("traceID"))


def _traces_of_array(
    items: list[Any], location: str, name: str, stats: ReadStats
) -> Iterator[_Trace]:
    # An array of trace objects, or of spans (kept as one group so that indexes are the array
    # positions).
    if not (items and all(isinstance(i, dict) and "spans" in i for i in items)):
        yield _Trace(items, None, None)
        return
    for number, item in enumerate(items):
        try:
            yield _trace_of(item)
        except TypeError as exc:
            _skip_trace(stats, span_location(name, location, f"[{number}]"), str(exc), item)


def _skip_trace(stats: ReadStats, where: str, reason: str, item: Any) -> None:
    """Count a trace object that cannot be read: each of its spans is a skipped item (one item
    when it has no list of spans), so that no span of it goes uncounted."""
    spans = item.get("spans") if isinstance(item, dict) else None
    stats.skip_item(where, reason)
    if isinstance(spans, list) and len(spans) > 1:
        stats.skipped_items += len(spans) - 1


def _parse_span(span: Any, where: str, *, trace: _Trace) -> tuple[Any, ...]:
    """One Jaeger span -> a row laid out as _ROW."""
    if not isinstance(span, dict):
        raise TypeError(f"a span must be an object, not {type(span).__name__}")
    trace_id = checked_id(span.get("traceID") or trace.trace_id, "traceID", required=True)
    span_id = checked_id(span.get("spanID"), "spanID", required=True)
    process = span.get("process")
    if process is None:
        process = trace.processes.get(span.get("processID")) or {}
    if not isinstance(process, dict):
        raise TypeError("process is not an object")
    service = process.get("serviceName")
    if service is not None and not isinstance(service, str):
        raise TypeError(f"serviceName is not a string: {service!r}")

    parent_id, links = _references(span, trace_id)
    tags = _tags(span.get("tags"))
    attributes: dict[str, Any] = {"service.name": service} if service else {}
    process_tags = _tags(process.get("tags"))
    attributes.update(process_tags)
    if isinstance(span.get("tag"), dict):
        # Jaeger's Elasticsearch layout may store tags as a map with '.' written as '@'.
        attributes.update({k.replace("@", "."): v for k, v in span["tag"].items()})
    attributes.update(tags)
    events, error_log_message, has_error_log = _logs(span.get("logs"))
    status, message = _status(tags, error_log_message, has_error_log)
    kind = str(tags.get("span.kind", "")).lower()
    name = span.get("operationName") or ""
    if not isinstance(name, str):
        raise TypeError(f"operationName is not a string: {name!r}")
    service = service or "unknown_service"
    endpoint = "|".join(
        (service, str(process_tags.get("hostname", "")), str(process_tags.get("ip", "")))
    )
    return (
        trace_id,
        span_id,
        parent_id,
        service,
        name,
        kind if kind in KINDS else None,
        micros_to_ns(span.get("startTime"), "startTime"),
        micros_to_ns(span.get("duration"), "duration"),
        status,
        message,
        orjson.dumps(attributes).decode(),
        orjson.dumps(events).decode() if events else None,
        orjson.dumps(links).decode() if links else None,
        where,
        False,  # Jaeger has no shared flag: server halves are found by kind
        endpoint,
        False,
    )


def _references(span: dict[str, Any], trace_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    references = span.get("references") or []
    if not isinstance(references, list):
        raise TypeError("references is not a list")
    parent_id = None
    links = []
    for reference in references:
        if not isinstance(reference, dict):
            raise TypeError("a reference is not an object")
        ref_type = str(reference.get("refType", "")).lower()
        ref_trace = checked_id(reference.get("traceID"), "reference traceID") or trace_id
        ref_span = checked_id(reference.get("spanID"), "reference spanID", required=True)
        if parent_id is None and ref_type == "child_of" and _same_id(ref_trace, trace_id):
            parent_id = ref_span
            continue
        links.append(
            {
                "trace_id": canonical_id(ref_trace),
                "span_id": canonical_id(ref_span),
                "type": ref_type or "link",
            }
        )
    if parent_id is None:
        parent_id = checked_id(span.get("parentSpanID"), "parentSpanID")
    return parent_id, links


def _logs(logs: Any) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Events, the first error log's message, and whether any log reports an error."""
    if logs is None:
        return [], None, False
    if not isinstance(logs, list):
        raise TypeError("logs is not a list")
    events = []
    message = None
    has_error = False
    for log in logs:
        if not isinstance(log, dict):
            raise TypeError("a log is not an object")
        fields = _tags(log.get("fields"))
        event_name = fields.pop("event", None)
        is_error = event_name == "error" or "error" in fields or "error.object" in fields
        if is_error and not has_error:
            has_error = True
            message = next(
                (
                    str(fields[key])
                    for key in _MESSAGE_FIELDS
                    if key in fields and str(fields[key]).lower() not in _NOT_A_MESSAGE
                ),
                None,
            )
        events.append(
            {
                "name": str(event_name) if event_name is not None else "log",
                "time_ns": micros_to_ns(log.get("timestamp"), "log timestamp"),
                "attributes": fields,
            }
        )
    return events, message, has_error


def _status(
    tags: dict[str, Any], error_log_message: str | None, has_error_log: bool
) -> tuple[str, str | None]:
    code = str(tags.get("otel.status_code", "")).upper()
    error_tag = tags.get("error")
    tag_says_error = error_tag is True or (
        isinstance(error_tag, str) and error_tag.strip().lower() not in ("", "false")
    )
    if not (tag_says_error or code == "ERROR" or has_error_log):
        return ("ok" if code == "OK" else "unset"), None
    description = tags.get("otel.status_description")
    if description:
        return "error", str(description)
    if error_log_message:
        return "error", error_log_message
    if isinstance(error_tag, str) and error_tag.strip().lower() not in _NOT_A_MESSAGE:
        return "error", error_tag
    return "error", None


def _tags(tags: Any) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise TypeError("tags is not a list")
    out = {}
    for tag in tags:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            raise TypeError(f"a tag is not a {{key, type, value}} object: {tag!r}")
        out[tag["key"]] = _typed(tag.get("type"), tag.get("value"))
    return out


def _typed(kind: Any, value: Any) -> Any:
    """A typed Jaeger tag value as JSON; one that does not parse as its type is kept as written."""
    kind = str(kind or "").lower()
    try:
        if kind == "bool" and isinstance(value, str):
            lowered = value.strip().lower()
            return {"true": True, "false": False}.get(lowered, value)
        if kind == "int64" and isinstance(value, str):
            return int(value)
        if kind == "float64" and isinstance(value, str):
            return float(value)
    except ValueError:
        return value
    return value


def _same_id(left: str, right: str) -> bool:
    # Jaeger writers disagree on leading zeros and case; compare as the schema normalizes.
    return left.lower().lstrip("0") == right.lower().lstrip("0")
