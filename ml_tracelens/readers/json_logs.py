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
at least one; ``BANNER_OBJECTS`` after a banner of several lines) from the first JSON line on
(within ``BANNER_LINES``) are JSON objects, a line holding ``NaN`` or ``Infinity`` (as Python's
``json`` writes them) counting as one, so a rotated file whose first line is cut, a start-up
banner, or lines holding ``NaN`` do not hide a log; the reader skips such lines with their
location and reason.

Inputs are read in newline-aligned blocks (``log_blocks``: memory stays bounded; stdin and gzip
stream), each parsed on one of two paths that give the same table. The fast path (``log_fast``)
lets polars' NDJSON reader read every value as text against a schema sampled from the block, then
proves from counts on the text of its lines that it lost nothing; anything it cannot prove (lists,
integers beyond 64 bits, lone surrogate escapes, a float whose shortest spelling is a tie, an
object where the sample saw text, a malformed line anywhere but first or last) goes to the
line-by-line orjson path (``log_lines``), which skips bad lines with their ``file:line``. Both
paths flatten (``log_flat.flat_columns``) and map (``log_fields.to_logs``) with the same code.
Known difference: in an object with a repeated key whose later value is ``null``, orjson keeps
the null and polars the earlier value.

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
table, memory in proportion to the bytes. The orjson path parses a block a chunk of lines at a
time (``log_lines.CHUNK_LINES``, ``CHUNK_BYTES``).

Accounting: ``lines == records + skipped``; blank lines are records counted under
``ignored["blank lines"]``; a valid JSON line that is not an object is skipped; an object with no
recognised key is still a log row. ``ReadStats.warnings`` holds a sentence per ``--field`` key
that no line has; ``ReadStats.sample_keys`` the keys of the first ``SAMPLE_KEY_RECORDS`` records
(of the first block holding any), for messages about logs with nothing to analyse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

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
from ml_tracelens.readers.support import log_aliases, log_batch, log_fields, log_keys
from ml_tracelens.readers.support.log_blocks import blocks, split_lines
from ml_tracelens.readers.support.log_fast import FastPathUnavailable, fast_raw
from ml_tracelens.readers.support.log_lines import (
    CHUNK_LINES,
    LineChecks,
    RawChunk,
    line_chunks,
    parse_lines,
)
from ml_tracelens.readers.support.log_problems import BOM, WHITESPACE, with_non_finite_numbers
from ml_tracelens.schema import empty_logs

NAME = "json-logs"

ParsePath = Literal["auto", "fast", "python"]


#: Complete non-blank lines of the head the sniffer judges.
SNIFF_LINES = 20
#: Lines before the first JSON line that detection passes over (a start-up banner), and the
#: JSON lines it then needs (a cut first line is no banner).
BANNER_LINES = 100
BANNER_OBJECTS = 5
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
    # Judged from the first JSON line on: a server's start-up banner may come before it, and
    # then it takes a few JSON lines, not one, to claim the input.
    first = next((i for i, line in enumerate(lines[:BANNER_LINES]) if _is_object(line)), 0)
    passed_over = sum(1 for line in lines[:first] if line.strip(WHITESPACE))
    del lines[:first]
    needed = BANNER_OBJECTS if passed_over > 1 else 1
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
    return objects >= needed and 2 * objects >= judged


def _is_object(line: bytes) -> bool:
    """A JSON object, or one but for the NaN or Infinity Python's ``json`` writes (the reader
    then skips it, saying so)."""
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return with_non_finite_numbers(line)


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
        lines = split_lines(data.removeprefix(BOM))
        stats.lines = len(lines)
        documents: list[dict[str, object]] = []
        numbers: list[int] = []
        checks = LineChecks.of(data, lines, current.max_json_depth, current.max_keys_per_line)
        parse_lines(lines, 1, source.name, stats, checks, documents, numbers)
        stats.records = stats.lines - stats.skipped
        batch.add(source.name, stats, documents, numbers, size=len(data))
    return batch.result()


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
    chunks = line_chunks(data, name, stats, first_line=first_line, depth=depth, keep=keep)
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
