"""Zipkin v2 JSON spans (the ``/api/v2/trace/{id}`` answer, the UI's download, reporters' payloads).

A flat array of spans, in no particular order; one array per file, or per line (JSON lines of
arrays or of single span objects)::

    [{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "parentId": "6b221d5bc9e6496c",
      "name": "get /api", "kind": "SERVER", "timestamp": 1556604172355737, "duration": 1431,
      "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000},
      "remoteEndpoint": {"serviceName": "frontend", "ipv4": "172.17.0.13", "port": 63790},
      "tags": {"http.method": "GET", "error": "500"}, "shared": true,
      "annotations": [{"timestamp": 1556604172355800, "value": "wr"}]}]

Mapping to the canonical columns:

- traceId / id / parentId -> trace_id / span_id / parent_id (lowercased, left-padded; a parentId
  equal to the span's own id or all zeros means "no parent", as Zipkin's span cleaner has it;
  the self-references are counted in ``stats.ignored``).
- name -> name as written (Zipkin lowercases most names; missing -> "").
- kind CLIENT/SERVER/PRODUCER/CONSUMER -> lowercase; missing or unknown -> null (Zipkin has no
  "internal").
- timestamp / duration (µs, ints or numeric strings) -> start_ns / duration_ns by integer
  arithmetic; either may be missing and stays null (Zipkin also treats 0 as "not recorded").
- localEndpoint.serviceName -> service (missing -> ``unknown_service``).
- attributes: ``service.name``; localEndpoint ipv4/ipv6 and port -> ``net.host.ip`` /
  ``net.host.port``; remoteEndpoint serviceName -> ``peer.service``, ipv4/ipv6 -> ``net.peer.ip``,
  port -> ``net.peer.port``; then the span's tags, which win on a clash.
- status: tag ``error`` (any value, often the message or an HTTP code) or ``otel.status_code`` =
  ERROR -> error; ``otel.status_code`` = OK -> ok; else unset. status_message: the ``error`` tag
  unless empty or "true", else ``otel.status_description``, else an exception annotation's
  ``exception.message``.
- annotations -> events ``[{name, time_ns, attributes}]``; the OpenTelemetry exporter writes an
  event as the JSON text ``{"name": {attributes}}``, which is unpacked.

Shared span ids (B3): a CLIENT span and its SERVER half report the same ``id``, the server with
``shared: true`` (or, backfilled as Zipkin does, a non-shared SERVER with the same id as a
CLIENT). The canonical table needs one id per span, with the server half as the child of the
client half (algorithms.md), and the spans the server started (``parentId`` = the shared id)
under the server half. So:

- a server half keeps the id: children whose ``parentId`` is the shared id, even children read
  from another file, hang under it without rewriting;
- the other (caller) span of the group becomes ``<id>:client`` and keeps its ``parentId``;
- each server half's parent is ``<id>:client``; a server half whose client half is absent from
  the file keeps its id and its parentId;
- several server halves for one id (Kafka consumers of one send): the earliest keeps the id,
  the others become ``<id>:server2``, ``<id>:server3``...; a span whose parentId is such an id is
  put under the server half on its own localEndpoint (the latest starting at or before it), as
  Zipkin's SpanNode does, else under the client half;
- a piece without kind, times, tags or annotations that repeats the id and localEndpoint of
  another span (late "flush" reports) is merged into it (only its name is used, when the other
  has none) and counted in ``stats.ignored``, not kept as a conflicting duplicate;
- identical copies of a span in a file with shared ids are dropped (and counted) before the
  numbering, so a span reported twice does not become two server halves.

A malformed span (wrong-typed field, missing id) is skipped and counted as ``file#index``
(``file:line#index`` for JSON lines past the first), where index is the span's 0-based position
in its array, so ``jq '.[index]'`` shows it.
"""

from __future__ import annotations

from typing import Any

import orjson

from ml_tracelens.readers.base import InputSource, ReaderSpec, ReadOptions, ReadResult, ReadStats
from ml_tracelens.readers.support.jsondoc import BOM, first_value_char, iter_documents
from ml_tracelens.readers.support.zipkin_model import (
    SHARED_COLUMNS,
    checked_id,
    micros_to_ns,
    parse_spans,
    shared_id_result,
)

NAME = "zipkin-json"
_KINDS = {"CLIENT": "client", "SERVER": "server", "PRODUCER": "producer", "CONSUMER": "consumer"}
_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "status",
    "status_message",
    "attributes",
    "events",
    "source",
)
_ROW = (*_COLUMNS, *SHARED_COLUMNS)


def sniff(head: bytes) -> bool:
    body = head.removeprefix(BOM)
    if b'"traceId"' not in body or b'"id"' not in body or b'"resourceSpans"' in body:
        return False
    first = first_value_char(body)
    # JSON lines of single span objects: demand a Zipkin-only key so JSON logs that happen to
    # carry "traceId" and "id" are not claimed.
    return first == b"[" or (first == b"{" and b'"localEndpoint"' in body)


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    stats = ReadStats(format=NAME)
    rows: list[tuple[Any, ...]] = []
    for location, document in iter_documents(source, stats):
        if isinstance(document, dict) and "traceId" in document:
            spans: list[Any] = [document]
        elif isinstance(document, list):
            spans = document
        else:
            stats.records -= 1
            stats.skip(location, "not a Zipkin v2 span array")
            continue
        parse_spans(
            rows, spans, _parse_span, stats, what="Zipkin", name=source.name, location=location
        )
    return shared_id_result(rows, _ROW, stats)


READER = ReaderSpec(
    name=NAME,
    description="Zipkin v2 JSON spans",
    accepts="a span array per file or per line, single spans per line; shared client/server "
    "ids are split into a client and a server span",
    sniff=sniff,
    read=read,
    priority=30,
)


def _parse_span(span: Any, where: str) -> tuple[Any, ...]:
    """One Zipkin span -> a row laid out as _ROW."""
    if not isinstance(span, dict):
        raise TypeError(f"a span must be an object, not {type(span).__name__}")
    if "binaryAnnotations" in span:
        raise ValueError("Zipkin v1 span (binaryAnnotations); only v2 is read")
    trace_id = checked_id(span.get("traceId"), "traceId", required=True)
    span_id = checked_id(span.get("id"), "id", required=True)
    parent_id = checked_id(span.get("parentId"), "parentId")
    name = _str(span.get("name"), "name") or ""
    raw_kind = _str(span.get("kind"), "kind")
    kind = _KINDS.get(raw_kind.upper()) if raw_kind else None
    start_ns = _positive(micros_to_ns(span.get("timestamp"), "timestamp"))
    duration_ns = _positive(micros_to_ns(span.get("duration"), "duration"))
    local = _object(span.get("localEndpoint"), "localEndpoint")
    remote = _object(span.get("remoteEndpoint"), "remoteEndpoint")
    tags = _object(span.get("tags"), "tags")
    annotations = span.get("annotations") or []
    if not isinstance(annotations, list):
        raise TypeError("annotations is not a list")
    service = _str(local.get("serviceName"), "localEndpoint.serviceName") or None

    attributes: dict[str, Any] = {}
    if service:
        attributes["service.name"] = service
    _endpoint_attributes(attributes, local, "net.host")
    if remote.get("serviceName"):
        attributes["peer.service"] = remote["serviceName"]
    _endpoint_attributes(attributes, remote, "net.peer")
    attributes.update(tags)

    events = [_event(a) for a in annotations]
    status, message = _status(tags, events)
    shared = span.get("shared") is True
    endpoint = None
    if local:
        parts = (local.get("serviceName"), local.get("ipv4"), local.get("ipv6"), local.get("port"))
        endpoint = "|".join("" if p is None else str(p) for p in parts)
    bare = (
        kind is None
        and start_ns is None
        and duration_ns is None
        and not tags
        and not annotations
        and not remote
        and not shared
    )
    return (
        trace_id,
        span_id,
        parent_id,
        service or "unknown_service",
        name,
        kind,
        start_ns,
        duration_ns,
        status,
        message,
        orjson.dumps(attributes).decode(),
        orjson.dumps(events).decode() if events else None,
        where,
        shared,
        endpoint,
        bare,
    )


def _status(tags: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, str | None]:
    code = str(tags.get("otel.status_code", "")).upper()
    if "error" not in tags and code != "ERROR":
        return ("ok" if code == "OK" else "unset"), None
    error = tags.get("error")
    if error is not None and str(error) not in ("", "true"):
        return "error", str(error)
    description = tags.get("otel.status_description")
    if description:
        return "error", str(description)
    for event in events:
        if event["name"] == "exception":
            found = event["attributes"].get("exception.message")
            if found:
                return "error", str(found)
    return "error", None


def _event(annotation: Any) -> dict[str, Any]:
    if not isinstance(annotation, dict):
        raise TypeError("an annotation is not an object")
    value = annotation.get("value")
    if not isinstance(value, str):
        raise TypeError(f"annotation value is not a string: {value!r}")
    name, attributes = value, {}
    # The OpenTelemetry Zipkin exporter encodes an event as '{"<name>": {<attributes>}}'.
    if value.startswith("{") and value.endswith("}"):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict) and len(decoded) == 1:
            only_name, only_value = next(iter(decoded.items()))
            if isinstance(only_value, dict):
                name, attributes = only_name, only_value
    return {
        "name": name,
        "time_ns": micros_to_ns(annotation.get("timestamp"), "annotation timestamp"),
        "attributes": attributes,
    }


def _endpoint_attributes(out: dict[str, Any], endpoint: dict[str, Any], prefix: str) -> None:
    ip = endpoint.get("ipv4") or endpoint.get("ipv6")
    if ip:
        out[f"{prefix}.ip"] = ip
    if endpoint.get("port"):
        out[f"{prefix}.port"] = endpoint["port"]


def _positive(value: int | None) -> int | None:
    # Zipkin's model stores 0 (and nothing less) as "not recorded".
    return value if value is not None and value > 0 else None


def _str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{field} is not a string: {value!r}")


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{field} is not an object")
    return value
