"""The fast path of the JSON-lines log reader: polars' NDJSON reader, with proof nothing was lost.

polars parses every value as text (a schema of String leaves sampled from the input), which
gives numbers the spelling ``log_flat.render`` gives them, but it silently drops keys missing
from the schema, keeps the first of duplicated keys and turns a type clash into null. So after
reading, the values it holds must account for every key in the bytes:

- ``held`` = non-null struct nodes + non-null leaves polars read. Each is a distinct key with a
  non-null value, so ``held <= truth`` (the file's non-null keys), with equality only when
  nothing was dropped, duplicated or nulled by a clash.
- With whitespace deleted, every key ends in ``":`` with an unescaped quote (escape parity is
  counted exactly: occurrences after >= k backslashes, alternating). A string *starting* with
  ``:`` adds extra ``":`` matches, so ``keys - nulls >= truth`` where ``nulls`` counts ``":null``
  (an extra ``":null`` match is also an extra ``":`` match). Hence ``held == keys - nulls``
  proves ``held == truth``; a mismatch (possibly a false alarm such as ``":8080"``) falls back.
- An object under a key the sample saw as text arrives as one text leaf; ``{}`` or all-null
  objects would pass the count, so non-null struct nodes must also equal the ``":{`` count.

Other checks turn away what the counts cannot see: lists (polars' own text of them), integers
beyond 64 bits (orjson makes them floats), lone surrogate escapes (polars makes them NUL), and
floats whose shortest spelling is a tie (polars and ``repr`` pick different last digits). It is
assumed that polars and orjson parse a decimal literal to the same (nearest) double. Anything
unproven raises ``FastPathUnavailable`` and the caller parses line by line; so does a sampled
schema past the block's column budget (``log_keys``: polars would make a column per key for
every row) and a block where a line may hold more keys than ``TRACELENS_MAX_KEYS_PER_LINE``
(its most ``":`` in one line), whose lines the line path checks one by one.

The schema comes from a sample of the block (``log_schema_sample``); the counts and the value
checks are in ``log_evidence``, with ``FastPathUnavailable`` (raised there and by sampling, and
re-exported here for callers).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import polars as pl

from ml_tracelens import limits
from ml_tracelens.readers.base import ReadStats
from ml_tracelens.readers.support import log_aliases
from ml_tracelens.readers.support.log_blocks import count_lines
from ml_tracelens.readers.support.log_evidence import (
    FastPathUnavailable,
    check_leaves,
    gather_evidence,
)
from ml_tracelens.readers.support.log_fields import LINE
from ml_tracelens.readers.support.log_flat import flat_columns
from ml_tracelens.readers.support.log_keys import column_budget
from ml_tracelens.readers.support.log_problems import BLANK, BOM, COLLISIONS, bad_line
from ml_tracelens.readers.support.log_schema_sample import (
    MAX_DEPTH,
    sample_tree,
    schema_nodes,
    schema_of,
)

__all__ = ["FastPathUnavailable", "fast_raw"]


def fast_raw(
    data: bytes,
    name: str,
    plan: log_aliases.Plan,
    *,
    format_name: str,
    first_line: int = 1,
    depth: int = MAX_DEPTH,
    line_count: int | None = None,
) -> tuple[ReadStats, pl.DataFrame]:
    """Text columns per flattened key plus the line column ``LINE``, and the accounting, or FastPathUnavailable.

    ``depth``: the JSON depth limit; the sampled schema may not exceed it, and a line deeper
    than the schema cannot pass the key count, so no line over the limit is read here.
    ``line_count``: the number of lines of ``data``, when the caller has counted them.
    """
    body = data.removeprefix(BOM) if first_line == 1 else data
    lines = count_lines(body) if line_count is None else line_count
    stats = ReadStats(format=format_name, lines=lines)
    # A rotated file read from the middle starts with half a line, and a dump cut short by a
    # killed process ends in one: the first and last bad lines are taken here, so that such
    # files keep the fast path. (A lone line is the last one.)
    first_end = body.find(b"\n")
    skipped_first = 0
    if first_end >= 0:
        problem = bad_line(body[:first_end], depth)
        if problem:
            stats.skip(f"{name}:{first_line}", problem)
            body = body[first_end + 1 :]
            skipped_first = 1
    last_start = body.rfind(b"\n", 0, len(body) - 1 if body.endswith(b"\n") else len(body)) + 1
    problem = bad_line(body[last_start:].rstrip(b"\r\n"), depth)
    if problem:
        stats.skip(f"{name}:{first_line + stats.lines - 1}", problem)
        body = body[:last_start]
    budget = column_budget(stats.lines - stats.skipped, len(body))
    schema = schema_of(sample_tree(body, min(depth, MAX_DEPTH), budget))
    max_keys = limits.current().max_keys_per_line
    # Both run on polars' threads: the values against the schema, and the evidence from the text.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(_read, body, schema)
        evidence = gather_evidence(body, stats.lines - stats.skipped, max_keys)
        frame = reading.result()
    # Keys become positional names: a key like "*" or "^a$" must never reach pl.col as a pattern.
    frame = frame.rename({key: f"\x01{index}" for index, key in enumerate(frame.columns)})
    if evidence.widest > max_keys:
        raise FastPathUnavailable("a line may have more keys than TRACELENS_MAX_KEYS_PER_LINE")
    line_numbers = evidence.line_numbers
    if not frame.height == evidence.object_lines == len(line_numbers):
        raise FastPathUnavailable(
            f"{frame.height} rows, {evidence.object_lines} objects, {len(line_numbers)} lines"
        )
    structs, leaves = schema_nodes(schema)
    held_structs, held_leaves = _non_null(frame, structs, [expr for _, expr in leaves])
    held = held_structs + held_leaves
    if held + evidence.nulls != evidence.keys:
        raise FastPathUnavailable(
            f"{evidence.keys} keys in the bytes, {held + evidence.nulls} read"
        )
    if held_structs != evidence.objects:
        # An object under a key the sample saw as text would arrive as text.
        raise FastPathUnavailable(
            f"{evidence.objects} object values in the bytes, {held_structs} read"
        )
    check_leaves(
        frame,
        leaves,
        brackets=evidence.brackets,
        backslashes=evidence.backslashes,
        long_numbers=evidence.long_numbers,
    )
    frame = frame.with_columns((line_numbers + (first_line - 1 + skipped_first)).alias(LINE))
    raw, collisions = flat_columns(frame, leaves)
    blank = stats.lines - stats.skipped - frame.height
    stats.records = blank + frame.height
    if blank:
        stats.ignore(BLANK, blank)
    if collisions:
        stats.ignore(COLLISIONS, collisions)
    return stats, raw


def _read(body: bytes, schema: pl.Schema) -> pl.DataFrame:
    try:
        # The bytes themselves, not a BytesIO: polars copies a file object's contents first
        # (0.04 s of wall and 0.07 s of CPU per 128 MB block).
        return pl.read_ndjson(body, schema=schema, ignore_errors=True)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError) as exc:
        raise FastPathUnavailable(f"polars NDJSON reader: {str(exc).splitlines()[0]}") from exc


def _non_null(
    frame: pl.DataFrame, structs: list[pl.Expr], leaves: list[pl.Expr]
) -> tuple[int, int]:
    """Non-null struct nodes and non-null leaves of ``frame`` (one query)."""

    def total(exprs: list[pl.Expr]) -> pl.Expr:
        return pl.sum_horizontal(e.is_not_null().sum() for e in exprs) if exprs else pl.lit(0)

    held = frame.select(structs=total(structs), leaves=total(leaves)).row(0)
    return int(held[0]), int(held[1])
