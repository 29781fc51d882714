"""A JSON-lines input cut into newline-aligned blocks and lines, refusing an overlong line.

``json_logs.read`` parses an input block by block so that memory stays bounded on big dumps
(stdin and gzip stream; a regular file is read in place, one piece a block); every line is
held to the document-size limit (``TRACELENS_MAX_DOCUMENT_BYTES``) on the way, and a line over
it refuses the input with its ``file:line``, as ``InputSource.lines`` does.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import IO

from ml_tracelens import limits

#: Bytes read and parsed at a time (whole lines), bounding memory on big dumps.
BLOCK_BYTES = 128 * 1024 * 1024


def blocks(
    stream: IO[bytes], name: str, size: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(block, number of its first line, its line count): whole lines, about ``size`` bytes each.

    A line longer than the document-size limit (``limits.py``) raises ``LimitExceeded`` naming
    it, as ``InputSource.lines`` does.
    """
    size = size or BLOCK_BYTES
    limit = limits.current().max_document_bytes
    in_place = _regular_file(stream)
    first_line = 1
    while True:
        if in_place:
            # Find where the block's last line ends, then read the block in one piece: no copy
            # of it is made to append that line's tail.
            start = stream.tell()
            stream.seek(start + size)
            tail = stream.readline(limit + 1)
            end = stream.tell()
            stream.seek(start)
            block = stream.read(end - start)
        else:
            block = stream.read(size)
            tail = b"" if block.endswith(b"\n") else stream.readline(limit + 1)
            if tail:
                block += tail
        if not block:
            return
        if len(tail) > limit and not tail.endswith(b"\n"):
            # No newline within limit + 1 bytes of the tail: the block's last line is too long.
            raise _too_long(name, first_line + block.count(b"\n"), limit)
        lines = count_lines(block)
        long_line = first_long_line(block, limit) if len(block) > limit else None
        if long_line is not None:
            raise _too_long(name, first_line + long_line, limit)
        yield block, first_line, lines
        first_line += lines


def _regular_file(stream: IO[bytes]) -> bool:
    """Whether ``stream`` reads a regular file directly (so seeking is cheap): not a pipe, and
    not a decompressor, whose seeks back decompress again from the start."""
    raw = getattr(stream, "raw", None)
    if not isinstance(stream, io.BufferedReader) or not isinstance(raw, io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _too_long(name: str, line: int, limit: int) -> limits.LimitExceeded:
    return limits.LimitExceeded(
        f"{name}:{line}: line longer than {limits.format_size(limit)} "
        "(TRACELENS_MAX_DOCUMENT_BYTES); raise the limit to read it"
    )


def first_long_line(block: bytes, limit: int) -> int | None:
    """Index of the first line of ``block`` longer than ``limit`` bytes (trailing ``\\r`` not
    counted), if any.

    Line by line, a 128 MB block is a million ``split`` pieces; instead each step jumps to the
    last newline within ``limit`` bytes of a line's start, so a block of short lines takes a few
    steps of ``limit`` bytes each, and only a line that may be long is measured.
    """
    start = 0
    while start < len(block):
        newline = block.rfind(b"\n", start, start + limit + 1)
        if newline < 0:
            end = block.find(b"\n", start)
            end = len(block) if end < 0 else end
            if len(block[start:end].rstrip(b"\r")) > limit:
                return block.count(b"\n", 0, start)
            newline = end
        start = newline + 1
    return None


def count_lines(body: bytes) -> int:
    """Lines of ``body``, a last line with no newline after it counted too."""
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def split_lines(data: bytes) -> list[bytes]:
    """Lines as ``InputSource.lines`` splits them: on b"\\n" only (a trailing ``\\r`` is
    whitespace to orjson)."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines
