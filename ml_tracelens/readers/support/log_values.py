"""Polars expressions that turn the text of one log field into a canonical value.

Every JSON-lines log value reaches these expressions as text (see ``json_logs``: numbers arrive
as their shortest round-trip decimal in plain notation, e.g. ``1764147136.891234``, ``3``,
``0.0000001``), so one set of expressions serves both parse paths and no value passes through a
float on its way to nanoseconds.

Rules (documented for users in ``json_logs``):

- Decimal text -> nanoseconds with exact decimal arithmetic (``str.to_decimal``, 15 fraction
  digits, then rounded half to even at the nanosecond). Negative numbers are neither durations
  nor times; exponent notation (``1e3``) is accepted.
- Epoch numbers: the integer part decides the unit: below 1e11 seconds, below 1e14
  milliseconds, below 1e17 microseconds, else nanoseconds (1e11 s is the year 5138, so every
  realistic timestamp in one unit is far from the next unit's range).
- ISO-8601 / RFC 3339: ``YYYY-MM-DD[(T|t| )hh:mm[:ss[(.|,)fraction]]][ ][Z|±hh[[:]mm]]``;
  no zone means UTC; invalid dates (Feb 30) are rejected; fraction digits beyond the nanosecond
  are dropped.
- Durations: a bare number in the key's unit, or text with units, Go style compounds
  included: ``357.8ms``, ``49µs``, ``49us``, ``1.2s``, ``250ns``, ``2m``, ``1m30.5s``, ``1h``
  (``m``/``min`` are minutes); whitespace inside is ignored.
"""

from __future__ import annotations

import polars as pl

from ml_tracelens.durations import NS_PER_MS, NS_PER_S, NS_PER_US
from ml_tracelens.schema import INT64_MAX

#: Nanoseconds in one of each unit.
NS = 1
US = NS_PER_US
MS = NS_PER_MS
S = NS_PER_S
MINUTE = 60 * S
HOUR = 3600 * S
#: Unit words accepted in duration text and in ``--field duration=KEY:UNIT``.
UNITS = {
    "ns": NS,
    "us": US,
    "µs": US,
    "μs": US,
    "ms": MS,
    "s": S,
    "m": MINUTE,
    "min": MINUTE,
    "h": HOUR,
}

_FRACTION_DIGITS = 15
_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_UNIT = r"(?:ns|us|µs|μs|ms|min|h|m|s)"
_ISO = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)? ?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$"
)
_UNIT_LETTERS = "abcdefghijklmnopqrstuvwxyzµμ"

#: Level words and numbers -> canonical level; anything else is kept, lowercased. Numbers are
#: syslog severities (0-7, GELF) or pino/bunyan levels (10-60).
LEVELS = {
    "trace": "trace",
    "debug": "debug",
    "verbose": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "success": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "exception": "error",
    "severe": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
    "0": "fatal",
    "1": "fatal",
    "2": "fatal",
    "3": "error",
    "4": "warn",
    "5": "info",
    "6": "info",
    "7": "debug",
    "10": "trace",
    "20": "debug",
    "30": "info",
    "40": "warn",
    "50": "error",
    "60": "fatal",
}


def scaled_ns(number: pl.Expr, unit_ns: int | pl.Expr) -> pl.Expr:
    """A Decimal (from ``to_decimal``) in ``unit_ns`` units -> Int64 ns, half to even.

    Null when negative or out of Int64 range: out-of-range values become null before the
    multiplication because polars raises on Decimal overflow in either branch of a when/then.
    """
    bound = INT64_MAX // unit_ns if isinstance(unit_ns, int) else pl.lit(INT64_MAX) // unit_ns
    safe = pl.when((number >= 0) & (number < bound)).then(number)
    return (safe * unit_ns).round(0).cast(pl.Int64, strict=False)


def decimal(text: pl.Expr) -> pl.Expr:
    """Decimal text (``12``, ``357.8``, ``.5``) -> Decimal with 15 fraction digits, else null."""
    return text.str.to_decimal(scale=_FRACTION_DIGITS)


class Steps:
    """with_columns steps on a LazyFrame, each intermediate computed once and dropped at the end.

    One big expression would repeat shared sub-expressions (polars does not always merge them),
    which costs seconds per million lines; named steps keep every operation to one pass.
    """

    def __init__(self, frame: pl.LazyFrame, out: str):
        self.frame = frame
        self.out = out
        self.temporaries: list[str] = []

    def col(self, name: str) -> pl.Expr:
        return pl.col(f"{self.out}\x02{name}")

    def add(self, **exprs: pl.Expr) -> None:
        named = [expr.alias(f"{self.out}\x02{name}") for name, expr in exprs.items()]
        self.temporaries += [f"{self.out}\x02{name}" for name in exprs]
        self.frame = self.frame.with_columns(named)

    def finish(self, result: pl.Expr) -> pl.LazyFrame:
        return self.frame.with_columns(result.alias(self.out)).drop(self.temporaries)


_UTC_LAYOUT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+Z$"


def utc_layout(text: pl.Expr) -> pl.Expr:
    """Whether every value is written ``YYYY-MM-DDThh:mm:ss.fractionZ`` (what most loggers
    write), as one Boolean: such text is no number, has nothing to strip and no offset, so
    ``parse_utc_layout`` reads it as ``parse_time`` would, at a third of the cost."""
    return text.str.contains(_UTC_LAYOUT).all()


def parse_utc_layout(frame: pl.LazyFrame, source: str, out: str) -> pl.LazyFrame:
    """``parse_time`` for a column whose every value passes ``utc_layout``."""
    text = pl.col(source)
    hours = text.str.slice(11, 2).cast(pl.Int64)
    minutes = text.str.slice(14, 2).cast(pl.Int64)
    seconds = text.str.slice(17, 2).cast(pl.Int64)
    # Fraction digits beyond the nanosecond are dropped, as in parse_time.
    digits = text.str.slice(20, text.str.len_bytes() - 21).str.slice(0, 9).str.pad_end(9, "0")
    days = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64)
    iso = (
        days * (86_400 * S) + hours * HOUR + minutes * MINUTE + seconds * S + digits.cast(pl.Int64)
    )
    valid = (hours <= 23) & (minutes <= 59) & (seconds <= 60)
    return frame.with_columns(pl.when(valid).then(iso).alias(out))


def parse_time(frame: pl.LazyFrame, source: str, out: str) -> pl.LazyFrame:
    """Epoch number (unit by magnitude) or ISO-8601 text in ``source`` -> Int64 ns in ``out``."""
    steps = Steps(frame, out)
    steps.add(text=pl.col(source).str.strip_chars())
    text = steps.col("text")
    has_seconds = text.str.slice(16, 1) == ":"
    # Fixed positions (YYYY-MM-DDThh:mm:ss) after one validating regex: capture groups cost
    # several times more than slices on a million lines.
    steps.add(
        number=decimal(text),
        iso=text.str.contains(_ISO),
        days=text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64),
        hours=text.str.slice(11, 2).cast(pl.Int64, strict=False).fill_null(0),
        minutes=text.str.slice(14, 2).cast(pl.Int64, strict=False).fill_null(0),
        seconds=pl.when(has_seconds)
        .then(text.str.slice(17, 2).cast(pl.Int64, strict=False))
        .otherwise(0),
        rest=pl.when(has_seconds).then(text.str.slice(19)).otherwise(text.str.slice(16)),
    )
    rest = steps.col("rest")
    steps.add(zone=rest.str.strip_chars_start(".,0123456789"))
    zone = steps.col("zone")
    # The fraction's digits sit between the separator and the zone; digits beyond the
    # nanosecond are dropped.
    digits = rest.str.slice(1, rest.str.len_chars() - zone.str.len_chars() - 1)
    fraction = (
        pl.when(rest.str.starts_with(".") | rest.str.starts_with(","))
        .then(digits.str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64, strict=False))
        .otherwise(0)
    )
    offset = zone.str.strip_chars_start(" ").str.replace(":", "", literal=True)
    zone_hours = offset.str.slice(1, 2).cast(pl.Int64, strict=False).fill_null(0)
    zone_minutes = offset.str.slice(3, 2).cast(pl.Int64, strict=False).fill_null(0)
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    hours, minutes, seconds = steps.col("hours"), steps.col("minutes"), steps.col("seconds")
    iso_ok = (
        steps.col("iso") & (hours <= 23) & (minutes <= 59) & (seconds <= 60) & (zone_hours <= 23)
    )
    # Summed in 128 bits: Int64 ns end in 1677 and 2262, where Int64 arithmetic wraps around
    # silently; the non-strict cast below makes a time beyond them null (unreadable), as an
    # invalid date is.
    iso = (
        steps.col("days").cast(pl.Int128) * (86_400 * S)
        + hours * HOUR
        + minutes * MINUTE
        + seconds * S
        + fraction
        - sign * (zone_hours * HOUR + zone_minutes * MINUTE)
    )
    number = steps.col("number")
    epoch = (
        pl.when(number < 10**11)
        .then(scaled_ns(number, S))
        .when(number < 10**14)
        .then(scaled_ns(number, MS))
        .when(number < 10**17)
        .then(scaled_ns(number, US))
        .otherwise(scaled_ns(number, NS))
    )
    return steps.finish(
        pl.when(number.is_not_null())
        .then(epoch)
        .when(iso_ok & (zone_minutes <= 59))
        .then(iso.cast(pl.Int64, strict=False))
    )


def parse_duration(
    frame: pl.LazyFrame,
    source: str,
    out: str,
    unit_ns: int,
    *,
    units: bool = True,
    compound: bool = True,
) -> pl.LazyFrame:
    """A bare number in ``unit_ns`` units, or text with unit suffixes -> Int64 ns.

    ``units``/``compound`` may be switched off when the caller knows no value has letters (or
    none has several number-unit pairs): the result is the same, only cheaper.
    """
    steps = Steps(frame, out)
    steps.add(text=pl.col(source).str.strip_chars())
    text = steps.col("text")
    bare = scaled_ns(decimal(text), unit_ns)
    if not units:
        return steps.finish(bare)
    steps.add(compact=text.str.replace_all(" ", "", literal=True).str.to_lowercase())
    compact = steps.col("compact")
    steps.add(number=compact.str.strip_chars_end(_UNIT_LETTERS))
    number = steps.col("number")
    multiplier = compact.str.slice(number.str.len_chars()).replace_strict(
        UNITS, default=None, return_dtype=pl.Int64
    )
    steps.add(bare=bare, single=scaled_ns(decimal(number), multiplier))
    if not compound:
        return steps.finish(pl.coalesce(steps.col("bare"), steps.col("single")))
    part_number = pl.element().str.strip_chars_end(_UNIT_LETTERS)
    part_unit = pl.element().str.slice(part_number.str.len_chars())
    steps.add(
        parts=compact.str.extract_all(f"{_NUMBER}{_UNIT}").list.eval(
            scaled_ns(
                decimal(part_number),
                part_unit.replace_strict(UNITS, default=None, return_dtype=pl.Int64),
            )
        ),
        whole=compact.str.contains(f"^(?:{_NUMBER}{_UNIT})+$"),
    )
    parts = steps.col("parts")
    several = pl.when(
        steps.col("whole") & (parts.list.drop_nulls().list.len() == parts.list.len())
    ).then(parts.list.sum())
    return steps.finish(pl.coalesce(steps.col("bare"), steps.col("single"), several))


_CANONICAL_LEVELS = sorted(set(LEVELS.values()))


def canonical_levels(text: pl.Expr) -> pl.Expr:
    """Whether every value is a canonical level word already, as one Boolean: ``normalize_level``
    would keep each as it is, so a dump written with them need not be normalized row by row."""
    return text.is_in(_CANONICAL_LEVELS).fill_null(True).all()


def normalize_level(text: pl.Expr) -> pl.Expr:
    word = text.str.strip_chars().str.to_lowercase()
    return pl.when(word != "").then(word.replace(LEVELS))


def plain_text(text: pl.Expr) -> pl.Expr:
    """Text kept as written; null when it is empty or only whitespace."""
    return pl.when(text.str.strip_chars() != "").then(text)


_ZEROS = r"^0+$"


def trace_id_text(text: pl.Expr) -> pl.Expr:
    """A trace-id key's value without the Cloud Logging ``projects/P/traces/`` or ``0x`` prefix."""
    return (
        text.str.strip_chars()
        .str.replace(r"^projects/[^/]*/traces/", "")
        .str.replace(r"^0[xX]", "")
    )


def hex_trace_id(text: pl.Expr) -> pl.Expr:
    """16 or 32 hex digits, not all zero (OpenTelemetry's 'no trace') -> lowercase trace id."""
    value = trace_id_text(text)
    is_hex = value.str.contains(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
    return pl.when(is_hex & ~value.str.contains(_ZEROS)).then(value.str.to_lowercase())


def canonical_trace_ids(text: pl.Expr) -> pl.Expr:
    """Whether every value is a trace id as ``hex_trace_id`` writes it (16 or 32 lowercase hex
    digits, not all zero) and as ``schema.normalize_id`` keeps it (a 32-digit one not starting
    with 16 zeros), as one Boolean: then both keep each as it is and ``non_hex_trace_id`` gives
    none, and checking costs a fifth of the two."""
    return _canonical_ids(text, zero=["0" * 16, "0" * 32])


def _canonical_ids(text: pl.Expr, *, zero: list[str]) -> pl.Expr:
    length = text.str.len_bytes()
    sized = (length == 16) | ((length == 32) & ~text.str.starts_with("0" * 16))
    canonical = sized & ~text.str.contains("[^0-9a-f]") & ~text.is_in(zero)
    return canonical.fill_null(True).all()


def non_hex_trace_id(text: pl.Expr) -> pl.Expr:
    """A value under a trace-id key that is not a trace id: usable as a correlation id."""
    value = trace_id_text(text)
    is_hex = value.str.contains(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
    return pl.when(~is_hex & (value != "") & ~value.str.contains(_ZEROS)).then(value)


def canonical_span_ids(text: pl.Expr) -> pl.Expr:
    """Whether every value is a span id as ``span_id`` and ``schema.normalize_id`` keep it (16
    lowercase hex digits, or 32 not starting with 16 zeros; not all zero), as one Boolean."""
    return _canonical_ids(text, zero=["0" * 16])


def span_id(text: pl.Expr) -> pl.Expr:
    value = text.str.strip_chars().str.replace(r"^0[xX]", "")
    return pl.when((value != "") & ~value.str.contains(_ZEROS)).then(value)


#: Values of an error or exception field that say "no error" (trimmed, any case): JSON false,
#: 0 and "" arrive as this text; "none" and "null" are a None or null written as text.
NOT_ERRORS = ("", "0", "false", "ok", "none", "null")
#: HTTP statuses from this one up are server errors.
SERVER_ERROR_STATUS = 500


def signals_error(text: pl.Expr) -> pl.Expr:
    """Whether an error or exception field's value says an error happened (False for null)."""
    return ~text.str.strip_chars().str.to_lowercase().is_in(NOT_ERRORS).fill_null(True)


def server_error_status(text: pl.Expr) -> pl.Expr:
    """Whether an HTTP status field holds a number >= 500 (False for null and non-numbers)."""
    return (decimal(text.str.strip_chars()) >= SERVER_ERROR_STATUS).fill_null(False)


def negative_number(text: pl.Expr) -> pl.Expr:
    """Whether text starts as a negative number (``-5``, ``-1.5ms``): a negative duration."""
    return text.str.contains(rf"^\s*-\s*{_NUMBER}").fill_null(False)


def error_text(text: pl.Expr) -> pl.Expr:
    """The message of an error field: its first line (a multi-line message's headline, a Java
    stack trace's exception), but a Python traceback's last line (``ValueError: boom``); null
    for ``true`` (no message) and for the values that say "no error"."""
    whole = text.str.strip_chars()
    traceback = whole.str.starts_with("Traceback (most recent call last)")
    last = whole.str.extract(r"([^\n]*)$", 1)
    first = whole.str.extract(r"^([^\n]*)", 1)
    line = pl.when(traceback).then(last).otherwise(first).str.strip_chars()
    return pl.when(~line.str.to_lowercase().is_in([*NOT_ERRORS, "true"])).then(line)


def typed_error(message: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """``type: message`` (``ValueError: boom``) when a type is known and the message does not
    start with it already; the message alone otherwise."""
    kind = kind.str.strip_chars()
    typed = (kind != "") & ~message.str.starts_with(kind + ":")
    return pl.when(typed.fill_null(False)).then(kind + ": " + message).otherwise(message)
