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
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

import orjson
from rich.cells import cell_len

from ml_tracelens.durations import format_duration
from ml_tracelens.reports.result import ColumnKind, JsonValue, Table

# What ``printable`` escapes (see above), in parts other renderers need too, as bodies of regex
# character classes. TERMINAL_CONTROLS: DEL and the C1 controls, the bidi marks, embeddings,
# overrides and isolates, the line and paragraph separators; a JSON encoder writes them raw, so
# ``render.json`` escapes them as well. SURROGATES: lone surrogates, which neither UTF-8 nor XML
# (``render.junit``) can carry.
TERMINAL_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
SURROGATES = "\ud800-\udfff"
TERMINAL_CONTROL = re.compile(f"[{TERMINAL_CONTROLS}]")
_UNSAFE = re.compile(f"[\\\\\x00-\x1f{TERMINAL_CONTROLS}{SURROGATES}]")
# What the runner strips before looking for "::" (.NET's TrimStart, a superset of it to be safe:
# older .NET also trimmed the zero-width space and the BOM), plus the SGR codes of a styled line.
_LINE_START = "^((?:[^\\S\\r\\n]|[\u180e\u200b\u2060\ufeff]|\x1b\\[[0-9;]*m)*)"
_WORKFLOW_COMMAND = re.compile(_LINE_START + "::", re.MULTILINE)
_LEGACY_COMMAND = "##["
_SPARK_BARS = "▁▂▃▄▅▆▇█"
ELLIPSIS = "…"
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


#: Kinds shown right-aligned, as numbers.
NUMERIC_KINDS = frozenset(
    {ColumnKind.INT, ColumnKind.FLOAT, ColumnKind.MS, ColumnKind.SHARE, ColumnKind.BOOL}
)


def format_value(value: JsonValue, kind: ColumnKind) -> str:
    if value is None:
        return "-"
    if kind is ColumnKind.MS:
        return format_duration(_number(value, kind))
    if kind is ColumnKind.SHARE:
        return f"{_number(value, kind) * 100:.1f}%"
    if kind is ColumnKind.INT:
        return f"{_number(value, kind):,}"
    if kind is ColumnKind.FLOAT:
        number = _number(value, kind)
        return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:.3g}"
    if kind is ColumnKind.BOOL:
        return "yes" if value else "no"
    if kind is ColumnKind.SPARK:
        return sparkline(_counts(value))
    if kind is ColumnKind.SHARES and isinstance(value, dict):
        return clip(", ".join(share_items(value)))
    return clip(text_of(value))


def _number(value: JsonValue, kind: ColumnKind) -> int | float:
    """The value of a numeric cell; a report that puts anything else there is wrong."""
    if not isinstance(value, int | float):
        raise TypeError(f"a {kind} cell holds {type(value).__name__}, not a number")
    return value


def _counts(value: JsonValue) -> list[int]:
    """The bin counts of a sparkline cell; a report that puts anything else there is wrong."""
    if isinstance(value, list):
        counts = [c for c in value if isinstance(c, int)]
        if len(counts) == len(value):
            return counts
    raise TypeError(f"a {ColumnKind.SPARK} cell holds {value!r}, not bin counts")


def empty_note(table: Table) -> str:
    """The sentence shown instead of an empty table (never a bare "(no rows)")."""
    return table.empty_note or f"no {table.title[:1].lower()}{table.title[1:]}"


def text_of(value: JsonValue) -> str:
    """The text of a non-numeric cell before it is made printable."""
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        # attributes, events: JSON, as the json format writes them (not Python's repr)
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def share_items(shares: Mapping[str, JsonValue]) -> list[str]:
    """``{"billing": 0.309, "other": 0.004}`` as ``["billing 31%", "other <1%"]``: names made
    printable, percentages whole (half to even), a share that rounds to 0 shown as ``<1%``."""
    return [f"{printable(str(name))} {_whole_percent(share)}" for name, share in shares.items()]


def _whole_percent(share: JsonValue) -> str:
    if not isinstance(share, int | float):
        return printable(str(share))
    percent = (Decimal(repr(float(share))) * 100).to_integral_value(ROUND_HALF_EVEN)
    return "<1%" if percent == 0 and share > 0 else f"{percent}%"


def shorten_middle(text: str, width: int) -> str:
    """``text`` made printable and, when it is wider than ``width`` cells, shortened in the
    middle with "…" (``model.in…ference``), so that both ends, which tell names apart, stay.

    The cut is made on the raw text and each side made printable after, so no escape (``\\x1b``,
    a doubled backslash) is split in two and passes for another.
    """
    shown = clip(text)
    if cell_len(shown) <= width:
        return shown
    if width <= 1:
        return ELLIPSIS[:width]
    room = width - 1
    head = _fitting_prefix(text, (room + 1) // 2)
    tail = _fitting_prefix(text[::-1], room - (room + 1) // 2)
    while True:
        candidate = printable(text[:head]) + ELLIPSIS + (printable(text[-tail:]) if tail else "")
        if cell_len(candidate) <= width or (head == 0 and tail == 0):
            return candidate
        # Defusing a leading "::" or a "##[" made a side wider than its characters: give back one.
        if head >= tail:
            head -= 1
        else:
            tail -= 1


def shorten_items(items: list[str], width: int) -> str:
    """Printable ``items`` joined by ", ", as many as fit in ``width`` cells, then ", …"."""
    whole = ", ".join(items)
    if cell_len(whole) <= width:
        return whole
    kept: list[str] = []
    for item in items:
        if cell_len(", ".join([*kept, item, ELLIPSIS])) > width:
            break
        kept.append(item)
    return ", ".join([*kept, ELLIPSIS])


def _fitting_prefix(text: str, cells: int) -> int:
    """How many characters from the start of ``text`` fit in ``cells`` once made printable."""
    used = 0
    for count, char in enumerate(text):
        used += cell_len(_UNSAFE.sub(_escape, char))
        if used > cells:
            return count
    return len(text)


def clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``printable(text)``, cut after ``limit`` characters with a count of the rest."""
    if len(text) <= limit:
        return printable(text)
    return printable(text[:limit]) + f"… (+{len(text) - limit:,} characters)"


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
