"""Line-based OTLP/JSON inputs (one document a line, as the Collector's file exporter writes):
each line decoded by the typed decoder first, the lenient path taking what it cannot.

A line whose types are wrong somewhere is split into its spans and decoded span by span, so that
one malformed span costs only itself; log and metrics lines, and what still does not decode, go
to the lenient path (``otlp_lenient``), which names what is wrong.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

import msgspec
import orjson

from ml_tracelens import limits
from ml_tracelens.readers.base import ReadStats
from ml_tracelens.readers.support.jsondoc import BOM, describe_json_error, loads
from ml_tracelens.readers.support.otlp_chunks import SpanChunks
from ml_tracelens.readers.support.otlp_fast import (
    DECODER,
    SPLITTER,
    DecodeError,
    decode_one_by_one,
    resource_attributes,
)
from ml_tracelens.readers.support.otlp_lenient import Columns, append_span, read_lenient, reject


def read_lines(
    lines: Iterable[tuple[int, bytes]],
    name: str,
    stats: ReadStats,
    batch: SpanChunks,
    spans: Columns,
    logs: Columns,
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
                read_lenient(parsed, location, stats, spans, logs)
                continue
            stats.records += 1
            if document.resourceSpans:
                try:
                    batch.add(document, number)
                except ValueError as exc:
                    reject(stats, location, f"malformed OTLP ({exc})")
            elif b'"resourceMetrics"' in line:
                stats.ignore("metrics documents")
            elif b'"resourceSpans"' not in line:
                reject(stats, location, "no resourceSpans or resourceLogs")
    finally:
        if gc_was_enabled:
            gc.enable()


def _read_span_by_span(
    line: bytes,
    number: int,
    location: str,
    stats: ReadStats,
    batch: SpanChunks,
    spans: Columns,
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
    contexts: dict[int, tuple[dict[str, object], str]] = {}
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
        append_span(span, *contexts[id(resource)], location, where, stats, spans)
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
