"""OTLP/JSON traces and logs (OpenTelemetry protocol, JSON encoding).

Accepts one document per file, one per line (the Collector file exporter, which also mixes
``resourceLogs`` and ``resourceMetrics`` lines in: logs are read, metrics lines are counted as
ignored), and the older ``instrumentationLibrarySpans`` / ``instrumentationLibraryLogs`` names.

Minimal sample::

    {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "gateway"}}]},
      "scopeSpans": [{"spans": [{"traceId": "5b8e...", "spanId": "eee1...", "parentSpanId": "",
        "name": "POST /predict", "kind": 2, "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000120000000", "status": {"code": 2, "message": "boom"},
        "attributes": [{"key": "model.version", "value": {"stringValue": "v2"}}],
        "events": [{"name": "exception", "timeUnixNano": "...", "attributes": [...]}]}]}]}]}

Mapping: traceId/spanId/parentSpanId -> trace_id/span_id/parent_id (hex, or base64 as the
protobuf JSON mapping writes bytes, converted to hex); ``service.name`` resource attribute ->
service; name -> name; kind 1..5 or ``SPAN_KIND_*`` -> kind; ``*TimeUnixNano`` (strings or
numbers, never through float) -> start_ns/end_ns; status code 2 / ``STATUS_CODE_ERROR`` -> error
with status.message, else the ``exception.message`` of an ``exception`` event; an exception event
on a span with no status marks it as error; resource + span attributes -> attributes; events and
links kept as JSON. Log records: ``timeUnixNano`` (or ``observedTimeUnixNano``), severityText or
severityNumber -> level, body -> message, traceId/spanId.

A malformed span (no traceId or spanId, a time that is a boolean, a list or an object, ...) is
skipped and counted on its own as ``file:line#span N``, N being its 0-based position among the
document's spans; the document's other spans are read. An attribute value nested deeper than
``TRACELENS_MAX_JSON_DEPTH`` (in a line the typed decoder read) is dropped from its span and
counted in ``ignored``; the span's other attributes are kept.
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import orjson
import polars as pl

from ml_tracelens import limits
from ml_tracelens.otlp_values import (
    any_value,
    attributes_of,
    canonical_level,
    int_or_none,
    level_from_severity_number,
    tolerant_attributes,
)
from ml_tracelens.readers.base import (
    DEEP_VALUES_DROPPED,
    BatchResult,
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support.jsondoc import (
    BOM,
    describe_json_error,
    is_line_based,
    iter_documents,
    list_or_empty,
    loads,
    object_or_empty,
)
from ml_tracelens.readers.support.otlp_batch import canonical_from_batch
from ml_tracelens.readers.support.otlp_fast import (
    DECODER,
    SPLITTER,
    DecodeError,
    SpanBatch,
    decode_one_by_one,
    resource_attributes,
)
from ml_tracelens.schema import (
    OTEL_LOG_COLUMNS,
    SPAN_COLUMNS_WITH_END,
    logs_from_columns,
    spans_from_columns,
)

NAME = "otlp-json"
_KEYS = (b'"resourceSpans"', b'"resourceLogs"', b'"resourceMetrics"')
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
_SPAN_COLUMNS = SPAN_COLUMNS_WITH_END
_LOG_COLUMNS = OTEL_LOG_COLUMNS


def sniff(head: bytes) -> bool:
    return any(key in head for key in _KEYS)


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    line_based = is_line_based(source)
    if source.path is not None and line_based:
        from ml_tracelens.readers.support.parallel import read_in_parallel, worker_count

        workers = worker_count(source.size or 0)
        if workers > 1:
            return read_in_parallel(source.path, source.name, workers, read_line_range)
    stats = ReadStats(format=NAME)
    spans: dict[str, list[Any]] = {c: [] for c in _SPAN_COLUMNS}
    logs: dict[str, list[Any]] = {c: [] for c in _LOG_COLUMNS}
    batch = _Chunks(source.name, stats)
    _read_source(source, line_based, stats, batch, spans, logs)
    return _result(source.name, stats, batch, spans, logs)


def read_many(sources: Sequence[InputSource], options: ReadOptions) -> BatchResult:
    """Read small inputs as ``read`` does, into one frame: the lenient path's Python lists of
    all inputs become one frame, and the typed path's spans of all inputs are mapped together
    (``_Chunks`` keeps each row's input); each input's rows keep ``read``'s order, its lenient
    rows then its typed ones."""
    spans: dict[str, list[Any]] = {c: [] for c in _SPAN_COLUMNS}
    logs: dict[str, list[Any]] = {c: [] for c in _LOG_COLUMNS}
    stats_of: list[ReadStats] = []
    lenient_ends: list[int] = []
    log_counts: list[int] = []
    chunks = _Chunks(shared=True)
    for source in sources:
        stats = ReadStats(format=NAME)
        logs_before = len(logs["time_ns"])
        chunks.begin(source.name, stats)
        _read_source(source, is_line_based(source), stats, chunks, spans, logs)
        chunks.end()
        stats_of.append(stats)
        lenient_ends.append(len(spans["span_id"]))
        log_counts.append(len(logs["time_ns"]) - logs_before)
    chunks.flush()
    lenient = spans_from_columns(spans)
    del spans
    starts = [0, *lenient_ends[:-1]]
    typed_counts = chunks.counts
    if chunks.frames:
        typed = pl.concat(chunks.frames, how="vertical")
        # Runs of consecutive rows of one frame, so that inputs of one kind make one slice.
        runs: list[list[Any]] = []  # [frame, start, length]
        typed_start = 0
        for start, end, count in zip(starts, lenient_ends, typed_counts, strict=True):
            for frame, first, length in (
                (lenient, start, end - start),
                (typed, typed_start, count),
            ):
                if not length:
                    continue
                if runs and runs[-1][0] is frame and runs[-1][1] + runs[-1][2] == first:
                    runs[-1][2] += length
                else:
                    runs.append([frame, first, length])
            typed_start += count
        pieces = [frame.slice(first, length) for frame, first, length in runs]
        span_frame = pl.concat(pieces, how="vertical") if pieces else lenient
    else:
        span_frame = lenient
    span_counts = [
        end - start + count
        for start, end, count in zip(starts, lenient_ends, typed_counts, strict=True)
    ]
    return BatchResult(
        stats=stats_of,
        span_counts=span_counts,
        log_counts=log_counts,
        spans=_hex_ids(span_frame, ("trace_id", "span_id", "parent_id")),
        logs=_hex_ids(logs_from_columns(logs), ("trace_id", "span_id", "correlation_id")),
    )


def _read_source(
    source: InputSource,
    line_based: bool,
    stats: ReadStats,
    batch: _Chunks,
    spans: dict[str, list[Any]],
    logs: dict[str, list[Any]],
) -> None:
    if line_based:
        _read_lines(source.lines(), source.name, stats, batch, spans, logs, file_start=True)
    else:
        for location, document in iter_documents(source, stats, line_based=False):
            _read_lenient(document, location, stats, spans, logs)


def read_line_range(lines: Iterable[tuple[int, bytes]], name: str) -> ReadResult:
    """Read numbered lines (a byte range of a file, for parallel reading)."""
    stats = ReadStats(format=NAME)
    spans: dict[str, list[Any]] = {c: [] for c in _SPAN_COLUMNS}
    logs: dict[str, list[Any]] = {c: [] for c in _LOG_COLUMNS}
    batch = _Chunks(name, stats)
    # parallel._lines strips the BOM of the file's first line; a range's first line is not it.
    _read_lines(lines, name, stats, batch, spans, logs, file_start=False)
    return _result(name, stats, batch, spans, logs)


#: Spans decoded before they are turned into canonical frames (see ``_Chunks``).
FLUSH_SPANS = 50_000


class _Chunks:
    """The fast path's spans, turned into canonical frames every ``FLUSH_SPANS`` spans.

    Decoded spans wait in Python lists (about 600 bytes a span); converting them chunk by chunk
    keeps that at tens of megabytes however big the input is. A document is never split between
    chunks, so a line dropped for invalid UTF-8 goes whole.

    Several inputs may share the chunks (``shared``, for ``read_many``): each is ``begin``-ed
    and ``end``-ed in turn, its lines numbered after the previous inputs' lines in the batch
    (``offset + line``), so that one mapping serves them all and every row, skipped line and
    alteration still goes to its own input. Shared chunks are converted only between inputs,
    so an input's problems stay in the order ``read`` finds them.
    """

    def __init__(
        self, name: str | None = None, stats: ReadStats | None = None, *, shared: bool = False
    ) -> None:
        self.shared = shared
        self.batch = SpanBatch()
        self.depth = self.batch.depth
        self.frames: list[pl.DataFrame] = []
        #: (offset, name, stats) per input, and its typed rows in ``frames``
        self.inputs: list[tuple[int, str, ReadStats]] = []
        self.counts: list[int] = []
        #: inputs from this one on have rows in ``batch``
        self._first_pending = 0
        self.offset = 0
        if name is not None and stats is not None:
            self.begin(name, stats)

    def begin(self, name: str, stats: ReadStats) -> None:
        self.inputs.append((self.offset, name, stats))
        self.counts.append(0)

    def end(self) -> None:
        _, _, stats = self.inputs[-1]
        self.offset += stats.lines
        if len(self.batch) >= FLUSH_SPANS:
            self.flush()

    def add(self, document: Any, line: int) -> None:
        self.batch.add(document, self.offset + line)
        if not self.shared and len(self.batch) >= FLUSH_SPANS:
            self.flush()

    def set_positions(self, line: int, positions: list[int] | None) -> None:
        """Each row's position among the spans of ``line`` (None: forget them)."""
        if positions is None:
            self.batch.positions.pop(self.offset + line, None)
        else:
            self.batch.positions[self.offset + line] = positions

    def flush(self) -> None:
        if not len(self.batch):
            return
        pending = self.inputs[self._first_pending :]
        sources = [(offset, name) for offset, name, _ in pending]
        frame, bad_lines = canonical_from_batch(
            self.batch, sources if len(sources) > 1 or sources[0][0] else sources[0][1]
        )
        self.frames.append(frame)
        offsets = [offset for offset, _ in sources]
        lines = self.batch.line
        for key in bad_lines:
            # Raw attribute bytes are checked for UTF-8 only when the batch becomes columns.
            offset, name, stats = pending[bisect_left(offsets, key) - 1]
            _reject(stats, f"{name}:{key - offset}", "invalid UTF-8")
        bad = set(bad_lines)
        for key, where, keys in self.batch.deep_values:
            if key not in bad:
                offset, name, stats = pending[bisect_left(offsets, key) - 1]
                stats.alter(
                    f"{name}:{key - offset}#{where}",
                    DEEP_VALUES_DROPPED,
                    len(keys),
                    f"{', '.join(map(repr, keys[:3]))} nested deeper than {self.depth} levels "
                    "(TRACELENS_MAX_JSON_DEPTH)",
                )
        for index, offset in enumerate(offsets):
            end = offsets[index + 1] if index + 1 < len(offsets) else lines[-1]
            rows = bisect_right(lines, end) - bisect_right(lines, offset)
            rows -= sum(
                bisect_right(lines, key) - bisect_left(lines, key)
                for key in bad_lines
                if offset < key <= end
            )
            self.counts[self._first_pending + index] += rows
        if self.shared:
            self._first_pending = len(self.inputs)
        self.batch = SpanBatch()


def _result(
    name: str,
    stats: ReadStats,
    batch: _Chunks,
    spans: dict[str, list[Any]],
    logs: dict[str, list[Any]],
) -> ReadResult:
    batch.flush()
    frames = [spans_from_columns(spans), *batch.frames]
    span_frame = _hex_ids(pl.concat(frames, how="vertical"), ("trace_id", "span_id", "parent_id"))
    log_frame = _hex_ids(logs_from_columns(logs), ("trace_id", "span_id", "correlation_id"))
    return ReadResult(stats=stats, spans=span_frame, logs=log_frame)


def _read_lines(
    lines: Iterable[tuple[int, bytes]],
    name: str,
    stats: ReadStats,
    batch: _Chunks,
    spans: dict[str, list[Any]],
    logs: dict[str, list[Any]],
    *,
    file_start: bool,
) -> None:
    """One document per line: typed decoding first, the lenient path for anything else."""
    # Collecting millions of small objects triggers cyclic GC passes that find nothing to free.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for number, line in lines:
            stats.lines += 1
            if number == 1 and file_start:
                line = line.removeprefix(BOM)
            if not line.strip():
                stats.records += 1
                stats.ignore("blank lines")
                continue
            location = f"{name}:{number}"
            document = None
            if b'"resourceLogs"' not in line:
                try:
                    document = DECODER.decode(line)
                except msgspec.ValidationError:
                    # A value of the wrong type somewhere: one malformed span must not cost
                    # the other spans of its line.
                    if _read_span_by_span(line, number, location, stats, batch, spans):
                        continue
                    document = None
                except DecodeError:
                    document = None
                except UnicodeDecodeError:
                    # Invalid UTF-8 in a string field: the lenient path names the line.
                    document = None
            if document is None:
                # Checked for depth before parsing; the skip is counted inside.
                ok, parsed = loads(line, location, stats, batch.depth)
                if not ok:
                    continue
                stats.records += 1
                _read_lenient(parsed, location, stats, spans, logs)
                continue
            stats.records += 1
            if document.resourceSpans:
                try:
                    batch.add(document, number)
                except ValueError as exc:
                    _reject(stats, location, f"malformed OTLP ({exc})")
            elif b'"resourceMetrics"' in line:
                stats.ignore("metrics documents")
            elif b'"resourceSpans"' not in line:
                _reject(stats, location, "no resourceSpans or resourceLogs")
    finally:
        if gc_was_enabled:
            gc.enable()


def _read_span_by_span(
    line: bytes,
    number: int,
    location: str,
    stats: ReadStats,
    batch: _Chunks,
    spans: dict[str, list[Any]],
) -> bool:
    """Read a trace line whose spans are decoded one at a time: those the typed decoder takes
    go to the batch, the others are read the lenient way or skipped as items; the line is
    counted. False (nothing read or counted) when the line is not a trace document of the
    expected structure."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        # Bad bytes cost their whole line (as on the typed path, where they surface only when
        # the batch becomes columns): none of its spans may be read apart.
        return False
    try:
        split = SPLITTER.decode(line)
    except (*DecodeError, UnicodeDecodeError):
        return False
    if not split.resourceSpans:
        return False
    document, positions, failed = decode_one_by_one(split)
    depth = batch.depth
    first_row = len(spans["span_id"])
    items, problems = stats.skipped_items, len(stats.problems)
    contexts: dict[int, tuple[dict[str, Any], str]] = {}
    for position, raw, resource in failed:
        where = f"{location}#span {position}"
        data = bytes(raw)
        if limits.too_deep(data, depth):
            stats.skip_item(where, limits.depth_reason(depth))
            continue
        try:
            span = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            stats.skip_item(where, describe_json_error(exc, data))
            continue
        if id(resource) not in contexts:
            attributes = resource_attributes(resource, depth)
            service = str(attributes.get("service.name", "unknown_service"))
            contexts[id(resource)] = (attributes, service)
        _append_span(span, *contexts[id(resource)], location, where, stats, spans)
    if failed:
        batch.set_positions(number, positions)
    try:
        batch.add(document, number)
    except ValueError as exc:
        # Nothing of the document was added: the line is skipped whole, so undo the spans
        # read apart and their accounting too.
        batch.set_positions(number, None)
        for values in spans.values():
            del values[first_row:]
        stats.skipped_items = items
        del stats.problems[problems:]
        stats.skip(location, f"malformed OTLP ({exc})")
        return True
    stats.records += 1
    return True


def _read_lenient(
    document: Any,
    location: str,
    stats: ReadStats,
    spans: dict[str, list[Any]],
    logs: dict[str, list[Any]],
) -> None:
    if not isinstance(document, dict):
        _reject(stats, location, "not an OTLP object")
        return
    items, problems = stats.skipped_items, len(stats.problems)
    try:
        found = _read_document(document, location, stats, spans, logs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The document is skipped whole: the spans counted inside it are not skipped twice.
        stats.skipped_items = items
        del stats.problems[problems:]
        _reject(stats, location, f"malformed OTLP ({type(exc).__name__}: {exc})")
        return
    if not found:
        if "resourceMetrics" in document:
            stats.ignore("metrics documents")
        else:
            _reject(stats, location, "no resourceSpans or resourceLogs")


READER = ReaderSpec(
    name=NAME,
    description="OpenTelemetry OTLP/JSON traces and logs",
    accepts="single documents, Collector file exporter lines (metrics lines counted and "
    "skipped), instrumentationLibrarySpans",
    sniff=sniff,
    read=read,
    priority=10,
    read_many=read_many,
)


def _reject(stats: ReadStats, location: str, reason: str) -> None:
    # A rejected document was counted as read by the splitter; move it to skipped.
    stats.records -= 1
    stats.skip(location, reason)


def _read_document(
    document: dict[str, Any],
    location: str,
    stats: ReadStats,
    spans: dict[str, list[Any]],
    logs: dict[str, list[Any]],
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
    out: dict[str, list[Any]],
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
            _append_span(
                span, resource, service, location, f"{location}#span {position}", stats, out
            )
            position += 1
    return position


def _resource_attributes(resource: Any) -> dict[str, Any]:
    """A resource's attributes as plain values, an odd value kept as its JSON text
    (``tolerant_attributes``): one odd value must not cost every span under the resource."""
    return tolerant_attributes((resource or {}).get("attributes"))


def _append_span(
    span: Any,
    resource: dict[str, Any],
    service: str,
    location: str,
    where: str,
    stats: ReadStats,
    out: dict[str, list[Any]],
) -> None:
    """Append one span parsed by orjson, or count it as a skipped item at ``where``."""
    try:
        row = _span_row(span, resource, service)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        stats.skip_item(where, f"malformed OTLP span ({exc})")
        return
    for column, value in zip(_SPAN_COLUMNS, (*row, location), strict=True):
        out[column].append(value)


def _span_row(span: Any, resource: dict[str, Any], service: str) -> tuple[Any, ...]:
    """One OTLP span -> its canonical values in _SPAN_COLUMNS order, without the source."""
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
        for event in events:
            event = object_or_empty(event, "an event")
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


def _read_resource_logs(
    resource_logs: dict[str, Any], location: str, out: dict[str, list[Any]]
) -> None:
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


def _hex_ids(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """Convert base64 ids (the protobuf JSON mapping of bytes) to lowercase hex."""
    fixes = []
    if frame.is_empty():
        return frame
    # Only columns with a non-hex id can hold base64 (the check is half the cost of the fix).
    non_hex = frame.select(pl.col(c).str.contains("[^0-9a-f]").any() for c in columns).row(0)
    for column in (c for c, any_non_hex in zip(columns, non_hex, strict=True) if any_non_hex):
        col = pl.col(column)
        looks_base64 = ~col.str.contains(r"^[0-9a-f]+$") & col.str.contains(
            r"^[A-Za-z0-9+/]{11}=$|^[A-Za-z0-9+/]{22}==$"
        )
        decoded = col.str.decode("base64", strict=False).bin.encode("hex")
        fixes.append(pl.when(looks_base64).then(decoded).otherwise(col).alias(column))
    return frame.with_columns(fixes) if fixes else frame
