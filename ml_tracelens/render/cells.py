"""Human formatting of cell values, shared by the terminal and markdown renderers.

Telemetry text is attacker-controlled (span names and messages come from request payloads), so
every string shown to a person passes through ``printable``: control characters, including
ESC, carriage return, backspace, the bell and bidi overrides, are shown escaped, never emitted.
"""

from __future__ import annotations

import re
from typing import Any

from ml_tracelens.reports.model import ColumnKind

# C0/C1 controls (tab and newline included: a cell is one line), DEL, and the bidi
# embedding/override/isolate characters that can reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPARK_BARS = "▁▂▃▄▅▆▇█"


def printable(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def format_value(value: Any, kind: ColumnKind) -> str:
    if value is None:
        return "-"
    if kind is ColumnKind.MS:
        return format_ms(value)
    if kind is ColumnKind.SHARE:
        return f"{value * 100:.1f}%"
    if kind is ColumnKind.INT:
        return f"{value:,}"
    if kind is ColumnKind.FLOAT:
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if kind is ColumnKind.BOOL:
        return "yes" if value else "no"
    if kind is ColumnKind.SPARK:
        return sparkline(value)
    if isinstance(value, list):
        return printable(", ".join(str(v) for v in value))
    return printable(str(value))


def format_ms(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def sparkline(counts: list[int]) -> str:
    if not counts:
        return ""
    peak = max(counts)
    if peak == 0:
        return _SPARK_BARS[0] * len(counts)
    return "".join(
        " "
        if c == 0
        else _SPARK_BARS[min(len(_SPARK_BARS) - 1, c * len(_SPARK_BARS) // (peak + 1))]
        for c in counts
    )
