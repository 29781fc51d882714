"""The fast path of the JSON-lines log reader: polars' NDJSON reader, with proof nothing was lost.

polars parses every value as text (a schema of String leaves sampled from the input), which
gives numbers the spelling ``json_logs.render`` gives them, but it silently drops keys missing
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

The counts run on polars' threads, beside the NDJSON reader: polars' CSV reader (no quoting, a
NUL separator) splits the block into a column of lines, and literal ``count_matches`` count
the patterns; whitespace is deleted only from blocks that have some next to a colon.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import polars as pl
from polars.datatypes import DataTypeClass

from ml_tracelens import limits
from ml_tracelens.readers.base import ReadStats
from ml_tracelens.readers.support import log_aliases
from ml_tracelens.readers.support.log_fields import LINE, column_name
from ml_tracelens.readers.support.log_keys import column_budget

BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"
BLANK = "blank lines"
COLLISIONS = "colliding keys (dotted and nested spelling of one key; the shallower kept)"
#: Lines sampled for the schema: the first ones, then slices spread over the input.
SAMPLE_HEAD_LINES = 2_000
SAMPLE_SLICES = 256
SAMPLE_SLICE_LINES = 16
MAX_DEPTH = 32

#: An unquoted number after a key (whitespace deleted) that is long enough to be an integer
#: beyond 64 bits or a float with a tie between shortest spellings, or has an exponent (whose
#: spelling polars may lengthen): only text holding one needs those values checked.
LONG_NUMBER = r":-?[0-9][0-9.]{15}|:-?[0-9][0-9.]*[eE]"

Tree = dict[str, "Tree | None"]  # key -> nested object tree, or None for a value read as text


class FastPathUnavailable(Exception):
    """The fast path cannot prove its table equals the line-by-line one for this input."""


def skip_reason(exc: orjson.JSONDecodeError, line: bytes) -> str:
    message = str(exc).split(":", 1)[0]
    if b"\x00" in line:
        return "NUL byte in line"
    if "utf-8" in str(exc).lower():
        return "invalid UTF-8"
    if line.rstrip(WHITESPACE)[-1:] not in (b"}", b"]"):
        return f"truncated or invalid JSON ({message})"
    return f"invalid JSON ({message})"


def json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "null"


def line_problem(line: bytes) -> str | None:
    """Why one line is not a JSON object (None when it is one)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return skip_reason(exc, line)
    return None if type(value) is dict else f"not a JSON object ({json_kind(value)})"


def _bad_line(line: bytes, depth: int) -> str | None:
    """Why the line path would skip this non-blank line (None when it reads it), in its words:
    the depth is checked before parsing there."""
    if not line.strip(WHITESPACE):
        return None
    if limits.too_deep(line, depth):
        return limits.depth_reason(depth)
    keys = limits.current().max_keys_per_line
    if limits.too_many_keys(line, keys):
        return limits.keys_reason(keys)
    return line_problem(line)


def plain_float(value: float) -> str:
    """Shortest round-trip digits in positional notation, no trailing zeros: 1e-07 -> 0.0000001."""
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def float_text(values: pl.Series) -> pl.Series:
    """Float64 -> text exactly as ``plain_float`` spells each value, a whole column at once."""
    # polars prints repr's shortest digits (ties to even, as repr); only exponent forms differ.
    text = values.cast(pl.String)
    exponent = text.str.contains("e", literal=True).fill_null(False)
    text = text.str.strip_suffix(".0")
    if exponent.any():
        where = exponent.arg_true()
        text = text.scatter(where, [plain_float(values[i]) for i in where.to_list()])
    return text


def count_lines(body: bytes) -> int:
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


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
        problem = _bad_line(body[:first_end], depth)
        if problem:
            stats.skip(f"{name}:{first_line}", problem)
            body = body[first_end + 1 :]
            skipped_first = 1
    last_start = body.rfind(b"\n", 0, len(body) - 1 if body.endswith(b"\n") else len(body)) + 1
    problem = _bad_line(body[last_start:].rstrip(b"\r\n"), depth)
    if problem:
        stats.skip(f"{name}:{first_line + stats.lines - 1}", problem)
        body = body[:last_start]
    budget = column_budget(stats.lines - stats.skipped, len(body))
    schema = _schema(_sample_tree(body, min(depth, MAX_DEPTH), budget))
    # Both run on polars' threads: the values against the schema, and the evidence from the text.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(_read, body, schema)
        evidence = _evidence(body, stats.lines - stats.skipped)
        frame = reading.result()
    # Keys become positional names: a key like "*" or "^a$" must never reach pl.col as a pattern.
    frame = frame.rename({key: f"\x01{index}" for index, key in enumerate(frame.columns)})
    if evidence.widest > limits.current().max_keys_per_line:
        raise FastPathUnavailable("a line may have more keys than TRACELENS_MAX_KEYS_PER_LINE")
    line_numbers = evidence.line_numbers
    if not frame.height == evidence.object_lines == len(line_numbers):
        raise FastPathUnavailable(
            f"{frame.height} rows, {evidence.object_lines} objects, {len(line_numbers)} lines"
        )
    structs, leaves = _nodes(schema)
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
    _check_leaves(
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
        return pl.read_ndjson(io.BytesIO(body), schema=schema, ignore_errors=True)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError) as exc:
        raise FastPathUnavailable(f"polars NDJSON reader: {str(exc).splitlines()[0]}") from exc


def _check_leaves(
    frame: pl.DataFrame,
    leaves: list[tuple[tuple[str, ...], pl.Expr]],
    *,
    brackets: bool = True,
    backslashes: bool = True,
    long_numbers: bool = True,
) -> None:
    """Turn away values whose polars spelling can differ from the line path's (one query).

    ``brackets``/``backslashes``/``long_numbers``: whether the block's text holds any "[", any
    "\\", any number ``LONG_NUMBER`` matches; a list needs the first, a NUL in a value (an
    escape) the second, a float tie or an integer beyond 64 bits the third, so without them
    those checks are skipped.
    """
    if not leaves:
        return
    lists, nul, big, tie = [], [], [], []
    for _, text in leaves:
        if brackets:
            # A list arrives as polars' own text of it (the line path writes orjson's).
            lists.append(text.str.starts_with("[") & text.str.ends_with("]"))
        if backslashes:
            # polars reads a lone surrogate escape as NUL where orjson rejects the line (a real
            # \u0000 is turned away too: rare, and the line path reads it).
            nul.append(text.str.contains("\x00", literal=True))
        if not long_numbers:
            continue
        # Both checks below need 17+ characters; null out shorter values so they cost nothing.
        long = pl.when(text.str.len_bytes() >= 17).then(text)
        number = long.str.contains(r"^-?[0-9]*\.?[0-9]+$")
        point = long.str.contains(".", literal=True)
        # orjson reads integers beyond 64 bits (20+ characters) as floats; polars keeps their
        # digits.
        big.append(number & ~point & (long.str.len_bytes() >= 20))
        # The reader breaks ties between two shortest spellings (1608882928643910.25 ->
        # ...910.3) unlike repr (...910.2); ties need 16+ significant digits, so respell those
        # as the line path does (float_text; an exponent form only errs towards falling back).
        decimal = pl.when(number & point).then(long)
        respelled = decimal.cast(pl.Float64, strict=False).cast(pl.String).str.strip_suffix(".0")
        tie.append(respelled != decimal)

    def anywhere(found: list[pl.Expr]) -> pl.Expr:
        return pl.any_horizontal(found).any() if found else pl.lit(False)

    found = frame.select(
        lists=anywhere(lists), nul=anywhere(nul), big=anywhere(big), tie=anywhere(tie)
    ).row(0, named=True)
    reasons = {
        "lists": "list values",
        "nul": "NUL characters or lone surrogate escapes",
        "big": "integers beyond 64 bits",
        "tie": "a float whose shortest spelling is a tie",
    }
    problems = [reason for flag, reason in reasons.items() if found[flag]]
    if problems:
        raise FastPathUnavailable(", ".join(problems))


@dataclass(frozen=True)
class Evidence:
    """What the text of a block says polars must have read (see the module docstring)."""

    keys: int  # unescaped '":' after deleting whitespace: every key, and some false alarms
    widest: int  # the most '":' in one line: at least the keys of any line
    nulls: int  # unescaped '":null'
    objects: int  # unescaped '":{'
    object_lines: int  # lines whose first non-blank character is "{"
    line_numbers: pl.Series  # 1-based numbers of the non-blank lines (Int64)
    brackets: bool  # any "[" in the text
    backslashes: bool  # any backslash in the text
    long_numbers: bool  # any number of 16+ characters, or with an exponent (``LONG_NUMBER``)


def _evidence(body: bytes, lines: int) -> Evidence:
    """Count keys, nulls and objects in the text of ``body``, which holds ``lines`` lines.

    The text is split into a column of lines by polars' CSV reader (no quoting, a separator no
    valid JSON line holds raw), so the counts run on polars' threads rather than in Python.
    """
    if not body:
        empty = pl.Series(dtype=pl.Int64)
        return Evidence(0, 0, 0, 0, 0, empty, brackets=False, backslashes=False, long_numbers=False)
    try:
        table = pl.read_csv(
            io.BytesIO(body),
            has_header=False,
            separator="\x00",
            quote_char=None,
            schema={"line": pl.String},
        )
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError) as exc:
        # A raw NUL or invalid UTF-8: such a line is not JSON, and the line path says where.
        raise FastPathUnavailable(f"lines of text: {str(exc).splitlines()[0]}") from exc
    if table.height != lines:
        raise FastPathUnavailable(f"{table.height} lines of text, {lines} expected")
    line = pl.col("line")
    # Single bytes are found by memchr in the block itself, cheaper than a pass over the lines.
    brackets = b"[" in body
    backslashes = b"\\" in body
    spaced, plain = table.select(
        # Whitespace next to a colon hides '":' patterns: delete it (and all other) first.
        spaced=line.str.contains(r"[ \t\r]:|:[ \t\r]").any(),
        plain=line.str.starts_with("{").fill_null(False).all(),
    ).row(0)
    escapes = backslashes and b'\\"' in body
    if spaced:
        table = table.select(line.str.replace_all(r"[ \t\r]", ""))
    every_line = pl.int_range(1, lines + 1, dtype=pl.Int64, eager=True)
    if plain:
        # Every line starts with "{": none is blank, all are objects.
        line_numbers = every_line
        object_lines = lines
    else:
        stripped = line.str.strip_chars(" \t\r")
        found = table.select(
            non_blank=stripped.str.len_bytes().fill_null(0) > 0,
            is_object=stripped.str.starts_with("{").fill_null(False),
        )
        object_lines = int(found.get_column("is_object").sum())
        non_blank = found.get_column("non_blank")
        line_numbers = every_line.filter(non_blank)
    # With an escaped quote somewhere, '\":' is no key: count occurrences after an even run of
    # backslashes as c(0) - c(1) + c(2) - ..., c(k) counting those after at least k.
    patterns = {"keys": '":', "nulls": '":null', "objects": '":{'}
    counts = dict.fromkeys(patterns, 0)
    run = 0  # backslashes before the pattern
    widest = 0
    while True:
        sums = table.select(
            **{
                what: line.str.count_matches("\\" * run + pattern, literal=True).sum()
                for what, pattern in patterns.items()
            },
            long_numbers=line.str.contains(LONG_NUMBER).any() if run == 0 else pl.lit(False),
            widest=line.str.count_matches('":', literal=True).max() if run == 0 else pl.lit(0),
        ).row(0, named=True)
        if run == 0:
            long_numbers = bool(sums.pop("long_numbers"))
            widest = int(sums.pop("widest") or 0)
        sign = -1 if run % 2 else 1
        for what in patterns:
            counts[what] += sign * int(sums[what] or 0)
        if not escapes or not any(sums[what] for what in patterns):
            break
        run += 1
    return Evidence(
        keys=counts["keys"],
        widest=widest,
        nulls=counts["nulls"],
        objects=counts["objects"],
        object_lines=object_lines,
        line_numbers=line_numbers,
        brackets=brackets,
        backslashes=backslashes,
        long_numbers=long_numbers,
    )


def _sample_lines(body: bytes) -> list[bytes]:
    lines = body[: _after_lines(body, 0, SAMPLE_HEAD_LINES)].split(b"\n")
    rest = _after_lines(body, 0, SAMPLE_HEAD_LINES)
    for index in range(SAMPLE_SLICES):
        offset = rest + (len(body) - rest) * index // SAMPLE_SLICES
        start = body.find(b"\n", offset) + 1 if offset else 0
        if start <= 0 or start >= len(body):
            continue
        lines += body[start : _after_lines(body, start, SAMPLE_SLICE_LINES)].split(b"\n")
    return lines


def _after_lines(body: bytes, start: int, count: int) -> int:
    position = start
    for _ in range(count):
        found = body.find(b"\n", position)
        if found < 0:
            return len(body)
        position = found + 1
    return position


def _sample_tree(body: bytes, depth: int, budget: int | None = None) -> Tree:
    """The keys of the sampled lines as a tree; FastPathUnavailable past ``budget`` keys (the
    line path reads such blocks within its own budget) or on a sampled line over the keys
    limit (the line path skips it)."""
    tree: Tree = {}
    nodes = 0
    max_keys = limits.current().max_keys_per_line
    for line in _sample_lines(body):
        if not line.strip(WHITESPACE):
            continue
        if limits.too_many_keys(line, max_keys):
            raise FastPathUnavailable("a line with more keys than TRACELENS_MAX_KEYS_PER_LINE")
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the reader will fail on it and say so
        if type(document) is dict:
            nodes += _merge(tree, document, depth)
            if budget is not None and nodes > budget:
                raise FastPathUnavailable(f"more than {budget:,} distinct keys")
    return tree


def _merge(tree: Tree, document: dict[str, Any], limit: int) -> int:
    """Merge the keys of ``document`` into ``tree``; returns how many nodes were added."""
    added = 0
    stack: list[tuple[Tree, dict[str, Any], int]] = [(tree, document, 1)]
    while stack:
        node, value, depth = stack.pop()
        if depth > limit:
            raise FastPathUnavailable(f"objects nested deeper than {limit}")
        for key, item in value.items():
            if type(item) is list:
                # The checks after reading would turn the block away: do not read it.
                raise FastPathUnavailable("list values")
            if type(item) is dict:
                child = node.get(key)
                if not isinstance(child, dict):
                    added += key not in node
                    child = node[key] = {}  # an object wins over text: text lines fail the count
                stack.append((child, item, depth + 1))
            elif key not in node:
                node[key] = None
                added += 1
    return added


def _schema(tree: Tree) -> pl.Schema:
    """Tree -> polars schema with String leaves, built bottom-up without recursion."""
    order: list[Tree] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(child for child in node.values() if isinstance(child, dict))
    dtypes: dict[int, pl.DataType] = {}
    for node in reversed(order):
        fields = {
            k: (dtypes[id(c)] if isinstance(c, dict) else pl.String()) for k, c in node.items()
        }
        dtypes[id(node)] = pl.Struct(fields)
    root = dtypes[id(tree)]
    assert isinstance(root, pl.Struct)
    return pl.Schema({field.name: field.dtype for field in root.fields})


def _nodes(schema: pl.Schema) -> tuple[list[pl.Expr], list[tuple[tuple[str, ...], pl.Expr]]]:
    """(struct nodes, (path, leaf) pairs) of a schema, columns by their positional names."""
    structs: list[pl.Expr] = []
    leaves: list[tuple[tuple[str, ...], pl.Expr]] = []
    stack: list[tuple[tuple[str, ...], pl.Expr, pl.DataType | DataTypeClass]] = [
        ((key,), pl.col(f"\x01{index}"), dtype) for index, (key, dtype) in enumerate(schema.items())
    ]
    while stack:
        path, expr, dtype = stack.pop()
        if isinstance(dtype, pl.Struct):
            structs.append(expr)
            names = [f"\x01{index}" for index in range(len(dtype.fields))]
            positional = expr.struct.rename_fields(names)
            stack.extend(
                ((*path, f.name), positional.struct.field(n), f.dtype)
                for n, f in zip(names, dtype.fields, strict=True)
            )
        else:
            leaves.append((path, expr))
    return structs, leaves


def _non_null(
    frame: pl.DataFrame, structs: list[pl.Expr], leaves: list[pl.Expr]
) -> tuple[int, int]:
    """Non-null struct nodes and non-null leaves of ``frame`` (one query)."""

    def total(exprs: list[pl.Expr]) -> pl.Expr:
        return pl.sum_horizontal(e.is_not_null().sum() for e in exprs) if exprs else pl.lit(0)

    held = frame.select(structs=total(structs), leaves=total(leaves)).row(0)
    return int(held[0]), int(held[1])


def flat_columns(
    frame: pl.DataFrame, leaves: list[tuple[tuple[str, ...], pl.Expr]]
) -> tuple[pl.DataFrame, int]:
    """Leaves -> one text column per dotted key (plus the line column ``LINE``), and the count of values lost
    where two spellings of one key meet (``{"a.b": 1, "a": {"b": 2}}``): the one with fewer path
    segments wins, ties by path order. Both parse paths merge here, so they agree."""
    by_name: dict[str, list[tuple[tuple[str, ...], pl.Expr]]] = {}
    for path, expr in leaves:
        by_name.setdefault(column_name(path), []).append((path, expr))
    columns = []
    losers = []
    for name, spellings in by_name.items():
        spellings.sort(key=lambda item: (len(item[0]), item[0]))
        exprs = [expr for _, expr in spellings]
        columns.append(pl.coalesce(exprs).alias(name) if len(exprs) > 1 else exprs[0].alias(name))
        if len(exprs) > 1:
            present = pl.sum_horizontal(e.is_not_null().cast(pl.Int64) for e in exprs)
            losers.append((present - 1).clip(lower_bound=0).sum())
    raw = frame.select(*columns, LINE)
    # Keys polars was told about but no line has: dropping them changes nothing downstream.
    empty = [c for c in raw.columns if raw.get_column(c).null_count() == raw.height]
    raw = raw.drop(empty)
    collisions = int(frame.select(pl.sum_horizontal(losers)).item()) if losers else 0
    return raw, collisions
