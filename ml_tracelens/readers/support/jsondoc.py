"""Split an input into JSON documents, whatever way they were written.

Three layouts occur in real dumps: one document per line (Collector file exporter, JSON-lines
logs), one document for the whole file (Jaeger/Zipkin downloads, pretty-printed OTLP), and
pretty-printed documents written back to back (the OpenTelemetry SDK console exporter). The
first line decides: if it is a whole JSON value the input is line-based, otherwise the whole
input is parsed as one document or, failing that, as concatenated documents.

Malformed lines or documents are counted in ``ReadStats`` with their ``file:line``; nothing is
dropped silently. In a whole-file input (one document, or documents back to back) invalid UTF-8
bytes are replaced with U+FFFD and counted as an alteration (``ReadStats.alter``) rather than
costing the whole file; a line-based input skips the line that holds them. Inputs are hostile until parsed (see ``limits.py``): a line or document over
the size limit is refused (``LimitExceeded``) before it is held whole, and one nested deeper
than the depth limit is skipped with that reason, in all three layouts. Lines and whole
documents are measured on their bytes before orjson sees them. Back-to-back documents need the
standard library's decoder to find where each ends: each is measured once found, one too deep
for that decoder's own stack is skipped for the same reason, and, as orjson does, unpaired
surrogate escapes are refused (no later stage could encode them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

from ml_tracelens import limits
from ml_tracelens.readers.base import UTF8_REPLACED, InputSource, ReadStats, read_line

BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def first_value_char(head: bytes) -> bytes:
    """The first non-blank byte of an input (after a BOM), or b'' for a blank input."""
    stripped = head.removeprefix(BOM).lstrip(_WHITESPACE)
    return stripped[:1]


def is_line_based(source: InputSource) -> bool:
    """Whether the first line of ``source`` is a whole JSON value (so: one document per line)."""
    limit = limits.current().max_document_bytes
    with source.open() as stream:
        try:
            first = read_line(stream, limit, source.name, 1)
        except limits.LimitExceeded:
            # Too long for a line; whole mode refuses it too if it is one document.
            return False
        if not stream.read(1):
            # A single line is one document either way; whole mode parses it only once.
            return False
    return _is_whole_json(first.removeprefix(BOM))


def iter_documents(
    source: InputSource, stats: ReadStats, *, line_based: bool | None = None
) -> Iterator[tuple[str, object]]:
    """Yield (location, parsed JSON value) for every document in ``source``; ``line_based``:
    what ``is_line_based`` said of it, when the caller asked already."""
    if is_line_based(source) if line_based is None else line_based:
        yield from _iter_lines(source, stats)
    else:
        yield from _iter_whole(source, stats)


def _is_whole_json(line: bytes) -> bool:
    if not line.strip(_WHITESPACE):
        return False
    if limits.too_deep(line, limits.current().max_json_depth):
        # Parsing it is what must not happen; a line that is one deep value is still a line.
        return line.rstrip(_WHITESPACE).endswith((b"}", b"]"))
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def loads(data: bytes, location: str, stats: ReadStats, depth: int) -> tuple[bool, object]:
    """Parse one line or document: (True, value), or (False, None) with the skip counted.

    For readers that parse lines themselves; ``depth`` is ``limits.current().max_json_depth``,
    read once per input.
    """
    if limits.too_deep(data, depth):
        stats.skip(location, limits.depth_reason(depth))
        return False, None
    try:
        return True, orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        stats.skip(location, describe_json_error(exc, data))
        return False, None


def _iter_lines(source: InputSource, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    name = source.name
    depth = limits.current().max_json_depth
    for number, line in source.lines():
        stats.lines += 1
        if number == 1:
            line = line.removeprefix(BOM)
        if not line.strip(_WHITESPACE):
            stats.records += 1
            stats.ignore("blank lines")
            continue
        # The cheap bound inline: nearly every line has fewer brackets than the depth limit.
        if (
            len(line) > depth
            and line.count(b"{") + line.count(b"[") > depth
            and limits.too_deep(line, depth)
        ):
            stats.skip(f"{name}:{number}", limits.depth_reason(depth))
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stats.skip(f"{name}:{number}", describe_json_error(exc, line))
            continue
        stats.records += 1
        yield f"{name}:{number}", value


def _iter_whole(source: InputSource, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    current = limits.current()
    data = source.read_bytes(max_bytes=current.max_document_bytes).removeprefix(BOM)
    if not limits.too_deep(data, current.max_json_depth):
        value = _whole(data)
        if value is _NOT_ONE_DOCUMENT and not is_utf8(data):
            # One bad byte must not cost a whole Jaeger or Zipkin download: read on with it
            # replaced, and count the change (--strict refuses it).
            data = _replace_invalid_utf8(source.name, data, stats)
            value = _whole(data)
        if value is not _NOT_ONE_DOCUMENT:
            stats.lines += 1
            stats.records += 1
            yield f"{source.name}:1", value
            return
    # Not one document (or too deep as a whole): documents back to back, each judged alone.
    yield from _iter_concatenated(source.name, data, stats, current.max_json_depth)


_NOT_ONE_DOCUMENT = object()


def _whole(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _NOT_ONE_DOCUMENT


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _replace_invalid_utf8(name: str, data: bytes, stats: ReadStats) -> bytes:
    """``data`` with each invalid UTF-8 sequence replaced by U+FFFD, the bytes replaced counted
    as an alteration at the line of the first."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = exc.start
    else:
        return data
    repaired = data.decode("utf-8", errors="replace").encode("utf-8")
    marks = repaired.count(_REPLACEMENT) - data.count(_REPLACEMENT)
    replaced = len(data) - (len(repaired) - len(_REPLACEMENT) * marks)
    line = data.count(b"\n", 0, first) + 1
    unit = "byte" if replaced == 1 else "bytes"
    stats.alter(f"{name}:{line}", UTF8_REPLACED, replaced, f"{replaced} {unit} in the input")
    return repaired


_REPLACEMENT = "\ufffd".encode()


def _iter_concatenated(
    name: str, data: bytes, stats: ReadStats, depth: int
) -> Iterator[tuple[str, object]]:
    text = _replace_invalid_utf8(name, data, stats).decode("utf-8")
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
        except RecursionError:
            # The standard decoder recurses per level; this document is far too deep.
            stats.skip(f"{name}:{line}", limits.depth_reason(depth))
            resume = _next_document_start(text, position + 1)
            line += text.count("\n", position, resume)
            position = resume
            continue
        problem = _refusal(text, position, end, value, depth)
        if problem:
            stats.skip(f"{name}:{line}", problem)
        else:
            stats.records += 1
            yield f"{name}:{line}", value
        line += text.count("\n", position, end)
        position = end


def _refusal(text: str, start: int, end: int, value: Any, depth: int) -> str | None:
    """Why a document the standard decoder accepted must still be skipped, if it must.

    The same rules as the orjson paths: no deeper than the depth limit, and no unpaired
    surrogate escapes (which orjson rejects and no later stage could encode).
    """
    document = text[start:end]
    if limits.too_deep(document.encode("utf-8", errors="replace"), depth):
        return limits.depth_reason(depth)
    if _SURROGATE_ESCAPE.search(document):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return "invalid JSON: unpaired surrogate in a string"
    return None


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
    if "depth limit" in message or "recursion" in message.lower():
        return limits.depth_reason(min(limits.current().max_json_depth, limits.PARSER_MAX_DEPTH))
    if len(line) and line.rstrip()[-1:] not in (b"}", b"]"):
        return f"truncated or invalid JSON ({message})"
    return f"invalid JSON ({message})"


def object_or_empty(value: object, what: str) -> dict[str, object]:
    """An object of a document; null or absent is empty, anything else but an object raises."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object but {type(value).__name__}")
    return value


def list_or_empty(value: object, what: str) -> list[object]:
    """A list of a document; null or absent is empty, anything else but a list raises."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{what} is not a list but {type(value).__name__}")
    return value
