"""JSON-lines logs: one JSON object per line, keys as the logging library wrote them.

Samples (structlog, python-json-logger, loguru ``serialize=True``, ECS)::

    {"event": "stage done", "request_id": "r-1", "stage": "infer", "duration_ms": 12.5,
     "level": "info", "timestamp": "2026-11-26T08:52:16.891234Z"}
    {"asctime": "2026-11-26 08:52:16,891", "levelname": "ERROR", "message": "boom",
     "request_id": "r-1", "exc_info": "Traceback ...\\nValueError: boom"}
    {"text": "...", "record": {"time": {"timestamp": 1764147136.891234}, "level": {"name": "INFO"},
     "message": "done", "extra": {"request_id": "r-1", "stage": "infer", "duration_ms": 12.5}}}
    {"@timestamp": "2026-11-26T08:52:16.891Z", "log.level": "info", "message": "done",
     "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736", "service": {"name": "api"},
     "event": {"duration": 12500000}}

Mapping to the canonical log table (``LOG_SCHEMA``): nested objects are flattened to dotted keys,
then the aliases in ``log_aliases`` pick time, level, message, trace/span/parent-span/correlation
ids, service, stage, duration and error text; everything else goes to ``attributes``, a JSON
object whose values are all text (numbers as plain decimals, booleans ``true``/``false``, lists
as JSON text; keys sorted; null values omitted). ``source`` is ``file:line``. ``error`` (never
null) says whether the line signals an error: an error or fatal level, an error or exception
field holding anything but ``false``/``null``/``""``/``0``/``ok``/``none``, or an HTTP status
>= 500; ``error_message`` is the error field's text, else the exception's ``type: message``,
else (on an error line) the log message. ``unread_reason`` names a time or duration present but
unreadable. The rules in full are in ``log_aliases``; value rules (times, durations, levels) in
``log_values``.

Detection (``sniff``): at least half of the first ``SNIFF_LINES`` complete non-blank lines (and
at least one) are JSON objects, so a rotated file whose first line is cut, or a line holding
``NaN``, does not hide a log; the reader skips such lines with their location.

Inputs are read in newline-aligned blocks of ``BLOCK_BYTES`` (memory stays bounded; stdin and gzip
stream), each parsed on one of two paths that give the same table. The fast path (``log_fast``)
lets polars' NDJSON reader read every value as text against a schema sampled from the block, then
proves from counts on the text of its lines that it lost nothing; anything it cannot prove (lists,
integers beyond 64 bits, lone surrogate escapes, a float whose shortest spelling is a tie, an
object where the sample saw text, a malformed line anywhere but first or last) goes to the
line-by-line orjson path, which skips bad lines with their ``file:line``. Both paths flatten
(``flat_columns``) and map (``log_fields.to_logs``) with the same code. Known difference: in an
object with a repeated key whose later value is ``null``, orjson keeps the null and polars the
earlier value.

Measured on a 128 MB block (548k flat lines of the benchmark dump) on 2 shared cores: the fast
path takes 1.7-1.9 s of CPU and 1.0-1.2 s of wall time against 2.4-2.5 s and 2.3 s line by line.
Of its CPU, polars' NDJSON reader takes about 30%, the proof (lines split, patterns counted,
values checked) about as much, and the mapping a quarter. Columns whose every value is canonical
already (trace and span ids, level words, times in one UTC layout) skip their per-row rules after
one whole-column check. On loguru's nested records polars' struct reader is no faster than orjson.

Limits (``limits.py``): a line longer than ``TRACELENS_MAX_DOCUMENT_BYTES`` refuses the input; a
line nested deeper than ``TRACELENS_MAX_JSON_DEPTH``, or with more keys than
``TRACELENS_MAX_KEYS_PER_LINE``, is skipped with its location (both checked on the raw bytes).
A block whose lines bring more distinct keys than its column budget (``log_keys``) keeps the
keys the mapping reads as columns and hands the others to it as (row, key, text) triples: same
table, memory in proportion to the bytes. The orjson path parses at most ``CHUNK_LINES`` lines
and ``CHUNK_BYTES`` bytes at a time.

Accounting: ``lines == records + skipped``; blank lines are records counted under
``ignored["blank lines"]``; a valid JSON line that is not an object is skipped; an object with no
recognised key is still a log row. ``ReadStats.warnings`` holds a sentence per ``--field`` key
that no line has; ``ReadStats.sample_keys`` the keys of the first ``SAMPLE_KEY_RECORDS`` records
(of the first block holding any), for messages about logs with nothing to analyse.
"""

from __future__ import annotations

import io
import os
import stat
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import IO, Any, Literal

import orjson
import polars as pl

from ml_tracelens import limits
from ml_tracelens.readers.base import (
    BatchResult,
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support import log_aliases, log_batch, log_fields, log_flat, log_keys
from ml_tracelens.readers.support.log_fast import (
    BLANK,
    BOM,
    COLLISIONS,
    WHITESPACE,
    FastPathUnavailable,
    count_lines,
    fast_raw,
    flat_columns,
    float_text,
    json_kind,
    skip_reason,
)
from ml_tracelens.readers.support.log_flat import render
from ml_tracelens.schema import empty_logs

NAME = "json-logs"
#: Bytes read and parsed at a time (whole lines), bounding memory on big dumps.
BLOCK_BYTES = 128 * 1024 * 1024
#: Lines, and bytes of them, mapped per polars call on the orjson path.
CHUNK_LINES = 100_000
CHUNK_BYTES = 32 * 1024 * 1024

ParsePath = Literal["auto", "fast", "python"]


#: Complete non-blank lines of the head the sniffer judges.
SNIFF_LINES = 20
#: Records whose keys are kept in ``ReadStats.sample_keys``, and at most how many keys.
SAMPLE_KEY_RECORDS = 5
MAX_SAMPLE_KEYS = 100


@dataclass
class ParsedLogs:
    logs: pl.DataFrame
    stats: ReadStats
    path: str  # "fast" or "python"
    fallback_reason: str | None = None
    #: the ``--field`` keys (``Plan.user_keys`` values) some line of the block has
    found_keys: frozenset[str] = frozenset()


def sniff(head: bytes) -> bool:
    """Claim an input when at least half of the first ``SNIFF_LINES`` complete non-blank lines
    of the head (and at least one) are JSON objects; readers before us had their go.

    Several lines, so that a log whose first line is cut (a rotated file read from the middle)
    or holds what JSON does not allow (``NaN``) is still ours; the reader skips that line with
    its location. A last line with no newline after it may be cut by the head's end: it counts
    as an object when it is one or starts like one, so a first line longer than the head is
    judged by its start; pretty-printed documents (``{`` alone on a line) are not claimed.
    """
    lines = head.removeprefix(BOM).split(b"\n")
    last = lines.pop()
    judged = objects = 0
    for line in lines:
        if not line.strip(WHITESPACE):
            continue
        judged += 1
        objects += _is_object(line)
        if judged == SNIFF_LINES:
            break
    else:
        stripped = last.strip(WHITESPACE)
        if stripped:
            judged += 1
            objects += _is_object(stripped) or (stripped.startswith(b"{") and stripped != b"{")
    return judged > 0 and 2 * objects >= judged


def _is_object(line: bytes) -> bool:
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return False


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    """Read an input block by block (newline-aligned), so memory stays bounded on big dumps.

    A ``--field`` key that no line has is a warning in ``ReadStats.warnings``.
    """
    plan = log_aliases.plan(options.field_map)
    stats = ReadStats(format=NAME)
    frames = []
    found: set[str] = set()
    with source.open() as stream:
        for block, first_line, lines in blocks(stream, source.name):
            parsed = parse_logs(
                block, source.name, options, first_line=first_line, plan=plan, line_count=lines
            )
            stats.add(parsed.stats)
            found |= parsed.found_keys
            if parsed.logs.height:
                frames.append(parsed.logs)
    for message in log_aliases.unfound_field_warnings(plan, options.field_map, found):
        stats.warn(message)
    logs = pl.concat(frames, how="vertical") if frames else empty_logs()
    return ReadResult(stats=stats, logs=logs)


#: An input batched by ``read_many`` holds at most this much text; a larger one (a small
#: compressed file can decompress to a lot) is read on its own.
BATCH_INPUT_BYTES = 4 * 1024 * 1024


def read_many(sources: Sequence[InputSource], options: ReadOptions) -> BatchResult:
    """Read small inputs together (``log_batch``): each is split into lines and parsed on its
    own with orjson, then all their lines are mapped at once; each gets what ``read`` gives."""
    plan = log_aliases.plan(options.field_map)
    batch = log_batch.LogBatch(
        plan,
        options.field_map,
        sample_records=SAMPLE_KEY_RECORDS,
        max_sample_keys=MAX_SAMPLE_KEYS,
    )
    current = limits.current()
    largest = min(BATCH_INPUT_BYTES, current.max_document_bytes)
    for source in sources:
        with source.open() as stream:
            data = stream.read(largest + 1)
        if len(data) > largest or data.count(b"\n") >= CHUNK_LINES:
            # Read it as a whole input (which also refuses a line over the size limit).
            batch.add_result(read(source, options))
            continue
        stats = ReadStats(format=NAME)
        lines = _lines(data.removeprefix(BOM))
        stats.lines = len(lines)
        documents: list[dict[str, Any]] = []
        numbers: list[int] = []
        checks = LineChecks.of(data, lines, current.max_json_depth, current.max_keys_per_line)
        parse_lines(lines, 1, source.name, stats, checks, documents, numbers)
        stats.records = stats.lines - stats.skipped
        batch.add(source.name, stats, documents, numbers, size=len(data))
    return batch.result()


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


READER = ReaderSpec(
    name=NAME,
    description="JSON-lines logs (structlog, python-json-logger, loguru, ECS, plain loggers)",
    accepts="one JSON object per line; --field FIELD=KEY maps keys the aliases miss",
    sniff=sniff,
    read=read,
    priority=90,
    read_many=read_many,
)


def parse_logs(
    data: bytes,
    name: str,
    options: ReadOptions,
    *,
    path: ParsePath = "auto",
    first_line: int = 1,
    plan: log_aliases.Plan | None = None,
    line_count: int | None = None,
) -> ParsedLogs:
    """Parse JSON-lines bytes whose first line is number ``first_line`` of input ``name``
    (``line_count``: their number of lines, when the caller has counted them).

    ``path`` forces one parse path (tests, benchmarks); "auto" tries the fast one first.
    ``plan`` is ``log_aliases.plan(options.field_map)``, made once by a caller parsing blocks.
    """
    if plan is None:
        plan = log_aliases.plan(options.field_map)
    depth = limits.current().max_json_depth
    reason = None
    found: set[str] = set()
    if path != "python":
        try:
            stats, raw = fast_raw(
                data,
                name,
                plan,
                format_name=NAME,
                first_line=first_line,
                depth=depth,
                line_count=line_count,
            )
        except FastPathUnavailable as exc:
            if path == "fast":
                raise
            reason = str(exc)
        else:
            # polars rejects raw control characters in strings, so without a backslash in the
            # text no value holds a character JSON must escape.
            plain = b"\\" not in data
            logs = _finish(stats, [(raw, None)], name, plan, found, plain=plain)
            return ParsedLogs(logs, stats, "fast", found_keys=frozenset(found))
    stats = ReadStats(format=NAME)
    keep = log_keys.mapped_keys(plan)
    chunks = _python_chunks(data, name, stats, first_line=first_line, depth=depth, keep=keep)
    logs = _finish(stats, chunks, name, plan, found)
    return ParsedLogs(logs, stats, "python", reason, frozenset(found))


def _finish(
    stats: ReadStats,
    raws: Iterator[RawChunk] | list[RawChunk],
    name: str,
    plan: log_aliases.Plan,
    found: set[str],
    *,
    plain: bool = False,
) -> pl.DataFrame:
    """Map raw chunks to log rows; note in ``found`` the ``--field`` keys they hold, and in
    ``stats.sample_keys`` the keys of the first records."""
    frames = []
    wanted = frozenset(plan.user_keys.values())
    for raw, triples in raws:
        if not raw.height:
            continue
        columns = [c for c in raw.columns if c != log_fields.LINE]
        if wanted - found:
            names = columns if triples is None else [*columns, *triples["name"].unique()]
            found.update(log_fields.keys_held(names, wanted - found))
        if not stats.sample_keys:
            stats.sample_keys = _sample_keys(raw.head(SAMPLE_KEY_RECORDS), columns, triples)
        logs, unread = log_fields.to_logs(
            raw, source_name=name, plan_=plan, plain_values=plain, extra=triples
        )
        for what, count in unread.items():
            stats.ignore(what, count)
        frames.append(logs)
    return pl.concat(frames, how="vertical") if frames else empty_logs()


def _sample_keys(
    head: pl.DataFrame, columns: list[str], triples: pl.DataFrame | None = None
) -> list[str]:
    held: set[str] = set()
    if columns:
        nulls = head.select(columns).null_count().row(0)
        held.update(c for c, n in zip(columns, nulls, strict=True) if n < head.height)
    if triples is not None:
        first = triples.filter(pl.col("row") < head.height).get_column("name")
        held.update(first.to_list())
    return sorted(held)[:MAX_SAMPLE_KEYS]


# --- line by line (orjson) ---------------------------------------------------------------------


def _python_chunks(
    data: bytes, name: str, stats: ReadStats, *, first_line: int, depth: int, keep: frozenset[str]
) -> Iterator[RawChunk]:
    lines = _lines(data.removeprefix(BOM) if first_line == 1 else data)
    stats.lines = len(lines)
    checks = LineChecks.of(data, lines, depth)
    for start, end, size in _chunk_bounds(lines):
        documents: list[dict[str, Any]] = []
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
    documents: list[dict[str, Any]],
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


def _lines(data: bytes) -> list[bytes]:
    """Lines as ``InputSource.lines`` splits them: on b"\\n" only (a trailing ``\\r`` is
    whitespace to orjson)."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines


_EMPTY: dict[str, Any] = {}
_NONE = type(None)
_UNION_STEP = 1_000

#: A chunk's text columns (+ the line column ``log_fields.LINE``), and the (row, name, text) triples of the keys that did
#: not fit as columns (``log_keys``), or None.
RawChunk = tuple[pl.DataFrame, pl.DataFrame | None]


def _raw_frame(
    documents: list[dict[str, Any]],
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
    level: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = [((), documents)]
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
    documents: list[dict[str, Any]], numbers: list[int], stats: ReadStats, *, keep: frozenset[str]
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
