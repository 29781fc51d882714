"""Durations as people read them: three significant digits with a unit that fits.

``35.0µs``, ``1.43ms``, ``251ms``, ``2.51s``; from a minute on, minutes and whole seconds
(``3m12s``), from an hour on, hours and whole minutes (``2h05m``). Every text format (terminal,
plain text, markdown, the `show` waterfall) prints durations with ``format_duration``, and so do
the sentences reports write (headlines, verdicts, diff cells), which is why this module sits
outside render/ (reports do not import renderers); JSON keeps the exact milliseconds.

Rounding happens once, half to even, on the decimal value a person would write for the number
(the shortest text that reads back as the same float: ``0.055`` is 0.055, not
0.05499999...), never on a float that was scaled first. A value that rounds up to the next unit
is written in that unit: 999.5µs is ``1.00ms``, 59.95s is ``1m00s``.

The canonical tables hold times and durations as integer nanoseconds; ``NS_PER_US``,
``NS_PER_MS`` and ``NS_PER_S`` are the factors every layer converts with. They are integers, so
exact arithmetic (``Fraction``, ``Decimal``, ``int``) stays exact. Milliseconds as a float are
``float(ns) / NS_PER_MS``, correctly rounded (``core.stats.ns_to_ms`` for columns, which polars
would otherwise divide by a reciprocal); Python's ``int / int`` rounds only once, so past 2**53
ns it can differ from the column's value in the last bit.
``length_ns`` reads a length of time given as an option (``--since 10m``, ``--window 1h``).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: Nanoseconds in one of each unit of a length of time given as an option (``--since 10m``,
#: ``--window 1h``).
LENGTH_UNITS_NS = {
    "ms": NS_PER_MS,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86_400 * NS_PER_S,
}
_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")

MICRO = "µ"
_THOUSAND = Decimal(1000)
_MINUTE_S = Decimal(60)
_HOUR_S = Decimal(3600)
#: Units below a minute, each as (symbol, how many milliseconds one of it is).
_SMALL_UNITS = (
    ("ns", Decimal("0.000001")),
    (MICRO + "s", Decimal("0.001")),
    ("ms", Decimal(1)),
    ("s", _THOUSAND),
)


def format_duration(milliseconds: float | int | Decimal | None) -> str:
    """``milliseconds`` as a person reads it (see the module docstring); ``-`` for None."""
    if milliseconds is None:
        return "-"
    exact = _decimal(milliseconds)
    if not exact.is_finite():
        return str(milliseconds)
    sign = "-" if exact < 0 else ""
    exact = abs(exact)
    if exact == 0:
        return "0ms"
    return sign + _magnitude(exact)


def length_ns(text: str) -> float | None:
    """A length of time such as ``10m``, ``1.5h`` or ``250ms`` (units ms, s, m, h, d) in
    nanoseconds, None when ``text`` is not one. A float: each caller makes it whole its own way."""
    match = _LENGTH.match(text)
    return None if match is None else float(match[1]) * LENGTH_UNITS_NS[match[2]]


def _decimal(value: float | int | Decimal) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    # repr: the shortest decimal that reads back as this float, i.e. the number as written.
    return Decimal(repr(float(value)))


def _magnitude(milliseconds: Decimal) -> str:
    seconds = milliseconds / _THOUSAND
    if seconds >= _MINUTE_S:
        return _clock(seconds)
    for index, (symbol, size) in enumerate(_SMALL_UNITS):
        in_unit = milliseconds / size
        last = index == len(_SMALL_UNITS) - 1
        if in_unit >= _THOUSAND and not last:
            continue
        shown = significant(in_unit, 3)
        if shown >= _THOUSAND and not last:
            continue  # 999.5µs rounds to 1000µs: write it as 1.00ms
        if last and shown >= _MINUTE_S:
            return _clock(seconds)  # 59.95s rounds to 60.0s: write it as 1m00s
        return f"{shown}{symbol}"
    raise AssertionError("unreachable: seconds below a minute end the loop")


def _clock(seconds: Decimal) -> str:
    whole_seconds = int(seconds.to_integral_value(ROUND_HALF_EVEN))
    if whole_seconds < _HOUR_S:
        minutes, rest = divmod(whole_seconds, 60)
        return f"{minutes}m{rest:02d}s"
    whole_minutes = int((seconds / _MINUTE_S).to_integral_value(ROUND_HALF_EVEN))
    hours, minutes = divmod(whole_minutes, 60)
    return f"{hours}h{minutes:02d}m"


def significant(value: Decimal, digits: int) -> Decimal:
    """``value`` (positive) rounded half to even to ``digits`` significant digits, written with
    exactly that many digits (``Decimal('9.995')`` to 3 is ``10.0``), never in exponent form."""
    places = digits - 1 - value.adjusted()
    rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    if rounded.adjusted() != value.adjusted():
        # Rounding carried into a new digit (9.995 -> 10.00): drop the extra trailing zero,
        # which changes how it is written, not its value.
        places -= 1
        rounded = rounded.quantize(Decimal(1).scaleb(-places))
    if places < 0:
        rounded = rounded.quantize(Decimal(1))
    return rounded
