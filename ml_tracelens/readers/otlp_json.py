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

from collections.abc import Callable, Iterable, Iterator, Sequence

import polars as pl

from ml_tracelens.readers.base import (
    BatchResult,
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support.jsondoc import is_line_based, iter_documents
from ml_tracelens.readers.support.otlp_chunks import SpanChunks, in_input_order
from ml_tracelens.readers.support.otlp_lenient import Columns, read_lenient
from ml_tracelens.readers.support.otlp_lines import read_lines
from ml_tracelens.schema import (
    OTEL_LOG_COLUMNS,
    SPAN_COLUMNS_WITH_END,
    logs_from_columns,
    spans_from_columns,
)

NAME = "otlp-json"
_KEYS = (b'"resourceSpans"', b'"resourceLogs"', b'"resourceMetrics"')


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
    spans: Columns = {c: [] for c in SPAN_COLUMNS_WITH_END}
    logs: Columns = {c: [] for c in OTEL_LOG_COLUMNS}
    batch = SpanChunks(source.name, stats)
    _read_source(source, line_based, stats, batch, spans, logs)
    return _result(source.name, stats, batch, spans, logs)


def read_ranges(
    source: InputSource,
    options: ReadOptions,
    range_bytes: int,
    sink: Callable[[ReadResult, int], object] | None = None,
) -> Iterator[ReadResult] | None:
    """The results of ``range_bytes`` of lines at a time (their frames handed to ``sink``
    where they are read, when given), or None for an input that is not a file of lines (one
    document is read whole)."""
    if source.path is None or not is_line_based(source):
        return None
    from ml_tracelens.readers.support.parallel import each_range

    return each_range(source.path, source.name, read_line_range, range_bytes, sink)


def read_many(sources: Sequence[InputSource], options: ReadOptions) -> BatchResult:
    """Read small inputs as ``read`` does, into one frame: the lenient path's Python lists of
    all inputs become one frame, and the typed path's spans of all inputs are mapped together
    (``SpanChunks`` keeps each row's input); each input's rows keep ``read``'s order, its lenient
    rows then its typed ones."""
    spans: Columns = {c: [] for c in SPAN_COLUMNS_WITH_END}
    logs: Columns = {c: [] for c in OTEL_LOG_COLUMNS}
    stats_of: list[ReadStats] = []
    lenient_ends: list[int] = []
    log_counts: list[int] = []
    chunks = SpanChunks(shared=True)
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
    span_frame = in_input_order(lenient, lenient_ends, chunks)
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
    batch: SpanChunks,
    spans: Columns,
    logs: Columns,
) -> None:
    if line_based:
        read_lines(source.lines(), source.name, stats, batch, spans, logs, file_start=True)
    else:
        for location, document in iter_documents(source, stats, line_based=False):
            read_lenient(document, location, stats, spans, logs)


def read_line_range(lines: Iterable[tuple[int, bytes]], name: str) -> ReadResult:
    """Read numbered lines (a byte range of a file, for parallel reading)."""
    stats = ReadStats(format=NAME)
    spans: Columns = {c: [] for c in SPAN_COLUMNS_WITH_END}
    logs: Columns = {c: [] for c in OTEL_LOG_COLUMNS}
    batch = SpanChunks(name, stats)
    # parallel._lines strips the BOM of the file's first line; a range's first line is not it.
    read_lines(lines, name, stats, batch, spans, logs, file_start=False)
    return _result(name, stats, batch, spans, logs)


def _result(
    name: str,
    stats: ReadStats,
    batch: SpanChunks,
    spans: Columns,
    logs: Columns,
) -> ReadResult:
    batch.flush()
    frames = [spans_from_columns(spans), *batch.frames]
    span_frame = _hex_ids(pl.concat(frames, how="vertical"), ("trace_id", "span_id", "parent_id"))
    log_frame = _hex_ids(logs_from_columns(logs), ("trace_id", "span_id", "correlation_id"))
    return ReadResult(stats=stats, spans=span_frame, logs=log_frame)


READER = ReaderSpec(
    name=NAME,
    description="OpenTelemetry OTLP/JSON traces and logs",
    accepts="single documents, Collector file exporter lines (metrics lines counted and "
    "skipped), instrumentationLibrarySpans",
    sniff=sniff,
    read=read,
    priority=10,
    read_many=read_many,
    read_ranges=read_ranges,
)


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
