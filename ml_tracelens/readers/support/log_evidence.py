"""What the text of a block proves the fast path must have read, and the values it must not hold.

The fast path (``log_fast``, whose docstring gives the proof) compares what polars read with
counts taken on the text of the block's lines (``Evidence``: keys, nulls, objects, lines), and
turns away values whose polars spelling can differ from the line path's (``check_leaves``:
lists, NUL characters, integers beyond 64 bits, float ties). Whatever cannot be proven raises
``FastPathUnavailable`` and the block is read line by line.
The counts run on polars' threads, beside the NDJSON reader: polars' CSV reader (no quoting, a
NUL separator) splits the block into a column of lines, and ``count_matches`` counts the
patterns, as escaped regular expressions: the regex engine's literal search takes 40% less CPU
than polars' literal path (0.11 s against 0.19 s for the three patterns of a 128 MB block).
Whitespace is deleted only from blocks that have some next to a colon.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import polars as pl

from ml_tracelens.readers.support.log_blocks import first_long_line

#: An unquoted number after a key (whitespace deleted) that is long enough to be an integer
#: beyond 64 bits or a float with a tie between shortest spellings, or has an exponent (whose
#: spelling polars may lengthen): only text holding one needs those values checked.
LONG_NUMBER = r":-?[0-9][0-9.]{15}|:-?[0-9][0-9.]*[eE]"


class FastPathUnavailable(Exception):
    """The fast path cannot prove its table equals the line-by-line one for this input."""


@dataclass(frozen=True)
class Evidence:
    """What the text of a block says polars must have read (see ``log_fast``'s docstring)."""

    keys: int  # unescaped '":' after deleting whitespace: every key, and some false alarms
    #: the most '":' in one line (at least the keys of any line), or 0 when no line is long
    #: enough to hold more than the caller's ``max_keys``
    widest: int
    nulls: int  # unescaped '":null'
    objects: int  # unescaped '":{'
    object_lines: int  # lines whose first non-blank character is "{"
    line_numbers: pl.Series  # 1-based numbers of the non-blank lines (Int64)
    brackets: bool  # any "[" in the text
    backslashes: bool  # any backslash in the text
    long_numbers: bool  # any number of 16+ characters, or with an exponent (``LONG_NUMBER``)


def gather_evidence(body: bytes, lines: int, max_keys: int) -> Evidence:
    """Count keys, nulls and objects in the text of ``body``, which holds ``lines`` lines.

    The text is split into a column of lines by polars' CSV reader (no quoting, a separator no
    valid JSON line holds raw), so the counts run on polars' threads rather than in Python.
    ``max_keys``: the keys a line may hold; ``widest`` is counted only when some line is long
    enough to hold more '":' than that (two bytes each), which a few jumps over the block tell.
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
    wide = first_long_line(body, 2 * max_keys + 1) is not None
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
                what: line.str.count_matches(re.escape("\\" * run + pattern)).sum()
                for what, pattern in patterns.items()
            },
            long_numbers=line.str.contains(LONG_NUMBER).any() if run == 0 else pl.lit(False),
            widest=line.str.count_matches('":').max() if run == 0 and wide else pl.lit(0),
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


def check_leaves(
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
