"""The line-by-line parse path of JSON-lines logs: each line parsed by orjson on its own.

It reads what the fast path (``log_fast``) cannot prove it reads exactly, and small inputs read
together (``json_logs.read_many``). Each line is first held to the limits (``LineChecks``: depth
and keys per line, checked on the raw bytes, so a hostile line never reaches a recursive
consumer); a bad line is skipped with its ``file:line`` and the reason (``log_problems``). The
parsed objects become one text column per flattened key, merged as the fast path merges them
(``log_flat``), at most ``CHUNK_LINES`` lines and ``CHUNK_BYTES`` bytes at a time, since parsed
lines take several times their bytes; past the block's column budget (``log_keys``) the keys
that are not mapped travel as (row, key, text) triples.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any

import orjson
import polars as pl

from ml_tracelens import limits
from ml_tracelens.readers.base import ReadStats
from ml_tracelens.readers.support import log_fields, log_flat, log_keys
from ml_tracelens.readers.support.log_blocks import split_lines
from ml_tracelens.readers.support.log_flat import flat_columns, float_text, render
from ml_tracelens.readers.support.log_problems import (
    BLANK,
    BOM,
    COLLISIONS,
    WHITESPACE,
    json_kind,
    skip_reason,
)

#: Lines, and bytes of them, mapped per polars call on the orjson path.
CHUNK_LINES = 100_000
CHUNK_BYTES = 32 * 1024 * 1024


#: A chunk's text columns (+ the line column ``log_fields.LINE``), and the (row, name, text)
#: triples of the keys that did not fit as columns (``log_keys``), or None.
RawChunk = tuple[pl.DataFrame, pl.DataFrame | None]


def line_chunks(
    data: bytes, name: str, stats: ReadStats, *, first_line: int, depth: int, keep: frozenset[str]
) -> Iterator[RawChunk]:
    lines = split_lines(data.removeprefix(BOM) if first_line == 1 else data)
    stats.lines = len(lines)
    checks = LineChecks.of(data, lines, depth)
    for start, end, size in _chunk_bounds(lines):
        documents: list[dict[str, object]] = []
        numbers: list[int] = []
        parse_lines(lines[start:end], start + first_line, name, stats, checks, documents, numbers)
        if documents:
            raw = _raw_frame(documents, numbers, stats, size=size, keep=keep)
            # The parsed lines are not needed while the chunk is mapped: free them first.
            del documents, numbers
            yield raw
    stats.records = stats.lines - stats.skipped


def _chunk_bounds(lines: list[bytes]) -> Iterator[tuple[int, int, int]]:
    """(start, end, bytes) of consecutive chunks of at most ``CHUNK_LINES`` lines and, unless
    one line is longer, ``CHUNK_BYTES`` bytes: parsed lines take several times their bytes."""
    ends = list(accumulate(map(len, lines)))
    start = 0
    while start < len(lines):
        before = ends[start - 1] if start else 0
        end = min(start + CHUNK_LINES, bisect_right(ends, before + CHUNK_BYTES))
        end = max(end, start + 1)
        yield start, end, ends[end - 1] - before
        start = end


@dataclass(frozen=True)
class LineChecks:
    """The limits each line is held to before parsing (``limits.py``), with checks that cannot
    fire on a given block replaced by a no-op."""

    depth: int
    max_keys: int
    too_deep: Callable[[bytes, int], bool]
    too_many_keys: Callable[[bytes, int], bool]

    @classmethod
    def of(
        cls, data: bytes, lines: list[bytes], depth: int, max_keys: int | None = None
    ) -> LineChecks:
        """The checks for ``lines``, the lines of ``data``."""
        if max_keys is None:
            max_keys = limits.current().max_keys_per_line
        # A key takes at least 4 bytes ("":0) and is followed by a colon.
        many_keys = data.count(b":") > max_keys and max(map(len, lines), default=0) > 4 * max_keys
        return cls(
            depth,
            max_keys,
            limits.too_deep if may_nest_deeper(data, depth) else _never,
            limits.too_many_keys if many_keys else _never,
        )


def parse_lines(
    lines: list[bytes],
    first_number: int,
    name: str,
    stats: ReadStats,
    checks: LineChecks,
    documents: list[dict[str, object]],
    numbers: list[int],
) -> None:
    """Parse ``lines`` (numbered from ``first_number``) with orjson: the objects and their line
    numbers go to ``documents`` and ``numbers``; blank and bad lines are counted in ``stats``
    (``lines`` and ``records`` are the caller's)."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    depth, too_deep = checks.depth, checks.too_deep
    max_keys, too_many_keys = checks.max_keys, checks.too_many_keys
    for number, line in enumerate(lines, start=first_number):
        if too_deep(line, depth):
            # Checked before parsing: a hostile line never reaches a recursive consumer.
            stats.skip(f"{name}:{number}", limits.depth_reason(depth))
            continue
        if too_many_keys(line, max_keys):
            stats.skip(f"{name}:{number}", limits.keys_reason(max_keys))
            continue
        try:
            value = loads(line)
        except decode_error as exc:
            if line.strip(WHITESPACE):
                stats.skip(f"{name}:{number}", skip_reason(exc, line))
            else:
                stats.ignore(BLANK)
            continue
        if type(value) is dict:
            documents.append(value)
            numbers.append(number)
        else:
            stats.skip(f"{name}:{number}", f"not a JSON object ({json_kind(value)})")


_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def may_nest_deeper(data: bytes, depth: int) -> bool:
    """Whether any line of ``data`` may nest more than ``depth`` levels (False is certain).

    Innermost bracket pairs are peeled a round at a time over the whole block: a line's own
    balanced brackets peel the same whatever surrounds them, so pairs left after ``depth``
    rounds mean a deep line or brackets inside strings; then each line is checked on its own.
    """
    structure = data.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(depth):
        peeled = structure.replace(b"[]", b"")
        if len(peeled) == len(structure):
            break
        structure = peeled
    # Anything left is deeper nesting, or brackets inside strings that paired with real ones
    # and may hide depth: either way the lines are checked one by one.
    return bool(structure)


def _never(line: bytes, limit: int) -> bool:
    return False


_EMPTY: dict[str, Any] = {}
_NONE = type(None)
_UNION_STEP = 1_000


def _raw_frame(
    documents: list[dict[str, object]],
    numbers: list[int],
    stats: ReadStats,
    *,
    size: int,
    keep: frozenset[str],
) -> RawChunk:
    """Documents -> one text column per flattened key, merged exactly as the fast path merges.

    Column by column (one C-level map per key and level) rather than document by document,
    while the keys fit the column budget (``log_keys``, ``size``: the bytes of the lines);
    past it, document by document into columns for ``keep`` and triples for the rest.
    """
    leaves: list[tuple[tuple[str, ...], pl.Series]] = []
    level: list[tuple[tuple[str, ...], list[dict[str, object]]]] = [((), documents)]
    get = dict.get
    budget = log_keys.column_budget(len(documents), size)
    while level:
        prefix, objects = level.pop()
        found: set[str] = set()
        for start in range(0, len(objects), _UNION_STEP):
            # In steps, so that lines each bringing keys of their own stop the walk early.
            found = found.union(*objects[start : start + _UNION_STEP])
            if len(found) > budget:
                return _spilled(documents, numbers, stats, keep=keep)
        budget -= len(found)
        for key in found:
            column = list(map(get, objects, repeat(key)))
            kinds = set(map(type, column))
            if dict in kinds:
                level.append(((*prefix, key), [c if type(c) is dict else _EMPTY for c in column]))
                column = [None if type(c) is dict else c for c in column]
                kinds.discard(dict)
            kinds.discard(_NONE)
            if kinds:
                leaves.append(((*prefix, key), _text_series(column, kinds)))
    names = [f"\x01{index}" for index in range(len(leaves))]
    frame = pl.DataFrame(
        [
            pl.Series(log_fields.LINE, numbers, dtype=pl.Int64),
            *(series.alias(n) for n, (_, series) in zip(names, leaves, strict=True)),
        ]
    )
    paths = [(path, pl.col(n)) for n, (path, _) in zip(names, leaves, strict=True)]
    raw, collisions = flat_columns(frame, paths)
    if collisions:
        stats.ignore(COLLISIONS, collisions)
    return raw, None


def _spilled(
    documents: list[dict[str, object]],
    numbers: list[int],
    stats: ReadStats,
    *,
    keep: frozenset[str],
) -> RawChunk:
    columns, triples, collisions = log_flat.spill(documents, keep)
    if collisions:
        stats.ignore(COLLISIONS, collisions)
    frame = pl.DataFrame([pl.Series(log_fields.LINE, numbers, dtype=pl.Int64), *columns.values()])
    return frame, triples


def _text_series(column: list[Any], kinds: set[type]) -> pl.Series:
    """Values of one key as text, spelled like ``render`` (whole columns of numbers at once)."""
    if kinds == {str}:
        return pl.Series(column, dtype=pl.String)
    if kinds == {int} and all(-(2**63) <= c < 2**63 for c in column if c is not None):
        return pl.Series(column, dtype=pl.Int64).cast(pl.String)
    if kinds == {float}:
        return float_text(pl.Series(column, dtype=pl.Float64))
    return pl.Series(
        [c if c is None or type(c) is str else render(c) for c in column], dtype=pl.String
    )
