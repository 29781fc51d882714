"""Human formatting of cell values, shared by the terminal and markdown renderers.

Telemetry text is attacker-controlled (span names and messages come from request payloads), so
every string shown to a person passes through ``printable``: control characters, including
ESC, carriage return, backspace, the bell and bidi overrides, are shown escaped, never emitted.

What ``printable`` escapes, as ``\\xNN`` or ``\\uNNNN``:

* C0 controls U+0000-U+001F (ESC starts ANSI/OSC sequences such as OSC 8 hyperlinks and
  title changes; CR and backspace overwrite what was printed; BEL rings; tab and newline would
  break a cell or a one-line message), DEL, and C1 controls U+0080-U+009F (U+009B is a
  one-character CSI, U+009D an OSC, on terminals that honour 8-bit controls);
* bidi marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069), which reorder what a terminal shows ("Trojan Source");
* the line and paragraph separators U+2028 and U+2029, which some terminals and viewers break
  lines on;
* lone surrogates (undecodable bytes in file names arrive as them), which no UTF-8 terminal
  can be sent;
* the backslash itself, as ``\\\\``: then the text ``\\x1b`` typed into a span name (shown
  ``\\\\x1b``) cannot pass for an escaped ESC (shown ``\\x1b``).

CI logs are read by machines too: the GitHub Actions runner obeys a line of a step's output that
starts, after whitespace, with ``::`` (``::error::...``, ``::add-mask::...``, ``::stop-commands::``)
or that holds ``##[`` anywhere (the legacy syntax, e.g. ``##[error]...``). ``printable`` writes
such a leading ``::`` as ``\\:\\:`` and ``##[`` as ``##\\[`` (unambiguous: a backslash from the
data is doubled), and ``defuse_ci_commands`` does the same to whole rendered lines, where
wrapping could put text from the middle of a value at the start of a line.

Everything else, including all printable non-ASCII text, is shown as it is. Rich markup needs
no escaping here: renderers hand text to rich as ``Text`` objects, never as markup.

Text cells are also cut at ``MAX_CELL_CHARS`` with a count of what was left out: one 10 MB
error message must not fold into a million terminal lines. ``--format json`` and ``csv`` keep
every character.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ml_tracelens.reports.model import ColumnKind

_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# What the runner strips before looking for "::" (.NET's TrimStart, a superset of it to be safe:
# older .NET also trimmed the zero-width space and the BOM), plus the SGR codes of a styled line.
_LINE_START = "^((?:[^\\S\\r\\n]|[\u180e\u200b\u2060\ufeff]|\x1b\\[[0-9;]*m)*)"
_WORKFLOW_COMMAND = re.compile(_LINE_START + "::", re.MULTILINE)
_LEGACY_COMMAND = "##["
_SPARK_BARS = "▁▂▃▄▅▆▇█"
#: The most characters of one text value a table or markdown cell shows.
MAX_CELL_CHARS = 1000


def printable(text: str) -> str:
    """``text`` safe to write to a terminal or a CI log: unsafe characters shown as escapes, CI
    workflow commands defused (see above)."""
    return defuse_ci_commands(_UNSAFE.sub(_escape, text))


def defuse_ci_commands(text: str) -> str:
    """``text`` with no line a CI runner would take as a workflow command: a line's leading
    ``::`` becomes ``\\:\\:``, every ``##[`` becomes ``##\\[``."""
    if _LEGACY_COMMAND in text:
        text = text.replace(_LEGACY_COMMAND, "##\\[")
    if "::" in text:
        text = _WORKFLOW_COMMAND.sub(r"\1\\:\\:", text)
    return text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def fit_encoding(text: str, encoding: str | None) -> str:
    """``text`` as a stream in ``encoding`` can carry it: what it cannot (``PYTHONIOENCODING=ascii``,
    a Latin-1 terminal) written as ``\\xNN``/``\\uNNNN`` escapes, so nothing fails to print."""
    encoding = encoding or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:  # an encoding Python does not know
        return text.encode("ascii", "backslashreplace").decode("ascii")
    return text


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
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        # attributes, events: JSON, as the json format writes them (not Python's repr)
        return clip(orjson.dumps(value, default=str).decode())
    if isinstance(value, list):
        return clip(", ".join(str(v) for v in value))
    return clip(str(value))


def clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``printable(text)``, cut after ``limit`` characters with a count of the rest."""
    if len(text) <= limit:
        return printable(text)
    return printable(text[:limit]) + f"… (+{len(text) - limit:,} characters)"


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
