"""Split an input into JSON documents, whatever way they were written.

Three layouts occur in real dumps: one document per line (Collector file exporter, JSON-lines
logs), one document for the whole file (Jaeger/Zipkin downloads, pretty-printed OTLP), and
pretty-printed documents written back to back (the OpenTelemetry SDK console exporter). The
first line decides: if it is a whole JSON value the input is line-based, otherwise the whole
input is parsed as one document or, failing that, as concatenated documents.

Malformed lines or documents are counted in ``ReadStats`` with their ``file:line``; nothing is
dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from ml_tracelens.readers.base import InputSource, ReadStats

BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


def first_value_char(head: bytes) -> bytes:
    """The first non-blank byte of an input (after a BOM), or b'' for a blank input."""
    stripped = head.removeprefix(BOM).lstrip(_WHITESPACE)
    return stripped[:1]


def is_line_based(source: InputSource) -> bool:
    """Whether the first line of ``source`` is a whole JSON value (so: one document per line)."""
    with source.open() as stream:
        first = stream.readline()
        if not stream.read(1):
            # A single line is one document either way; whole mode parses it only once.
            return False
    return _is_whole_json(first.removeprefix(BOM))


def iter_documents(source: InputSource, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    """Yield (location, parsed JSON value) for every document in ``source``."""
    if is_line_based(source):
        yield from _iter_lines(source, stats)
    else:
        yield from _iter_whole(source, stats)


def _is_whole_json(line: bytes) -> bool:
    if not line.strip(_WHITESPACE):
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _iter_lines(source: InputSource, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    name = source.name
    for number, line in source.lines():
        stats.lines += 1
        if number == 1:
            line = line.removeprefix(BOM)
        if not line.strip(_WHITESPACE):
            stats.records += 1
            stats.ignore("blank lines")
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stats.skip(f"{name}:{number}", describe_json_error(exc, line))
            continue
        stats.records += 1
        yield f"{name}:{number}", value


def _iter_whole(source: InputSource, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    data = source.read_bytes().removeprefix(BOM)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        yield from _iter_concatenated(source.name, data, stats)
        return
    stats.lines += 1
    stats.records += 1
    yield f"{source.name}:1", value


def _iter_concatenated(name: str, data: bytes, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        stats.lines += 1
        bad_line = data.count(b"\n", 0, exc.start) + 1
        stats.skip(f"{name}:{bad_line}", "invalid UTF-8")
        text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    position = 0
    line = 1
    while True:
        next_position = _skip_blank(text, position)
        line += text.count("\n", position, next_position)
        position = next_position
        if position >= len(text):
            return
        stats.lines += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            stats.skip(f"{name}:{exc.lineno}", f"invalid JSON: {exc.msg}")
            # Resynchronise at the next line that starts a new object or array.
            resume = _next_document_start(text, exc.pos + 1)
            line += text.count("\n", position, resume)
            position = resume
            continue
        stats.records += 1
        yield f"{name}:{line}", value
        line += text.count("\n", position, end)
        position = end


def _skip_blank(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _next_document_start(text: str, position: int) -> int:
    candidates = [i for i in (text.find("\n{", position), text.find("\n[", position)) if i >= 0]
    return min(candidates) + 1 if candidates else len(text)


def describe_json_error(exc: orjson.JSONDecodeError, line: bytes) -> str:
    message = str(exc).split(":", 1)[0]
    if isinstance(exc.__cause__, UnicodeDecodeError) or "utf-8" in str(exc).lower():
        return "invalid UTF-8"
    if len(line) and line.rstrip()[-1:] not in (b"}", b"]"):
        return f"truncated or invalid JSON ({message})"
    return f"invalid JSON ({message})"
