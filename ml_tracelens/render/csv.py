"""CSV of a report's main table, the JSON `rows` (RFC 4180), safe to open in a spreadsheet.

Span names, attributes and error messages are attacker-controlled, and a spreadsheet runs a cell
that starts with a formula character (CSV or "formula" injection: ``=HYPERLINK(...)``,
``=cmd|' /C calc'!A0``, ``@SUM(...)``). Neutralised as the OWASP CSV Injection page and OWASP
ASVS 1.2.10 recommend:

* a text cell whose first character is ``=``, ``+``, ``-``, ``@``, tab, carriage return, line
  feed or NUL (or the full-width ``＝ ＋ － ＠``, which some spreadsheets also accept), also
  after leading spaces (some importers trim them), gets a leading single quote, which
  spreadsheets take as "this is text" and do not show;
* every cell that contains a comma, a semicolon (the separator of spreadsheets in many
  locales, which could otherwise start a new cell mid-text), a double quote, a tab, a carriage
  return or a line feed, or that starts or ends with a space, is wrapped in double quotes, with
  inner double quotes doubled (RFC 4180 2.6-2.7), so no text can end its cell early;
* a cell starting with ``::`` is quoted too, so a row printed to a CI log does not start with a
  GitHub Actions workflow command (quoting changes nothing in the data);
* numbers are written as numbers (a negative duration is ``-1.5``, not text); lists and
  objects as compact JSON.

Apart from that one quote, text is written exactly: a consumer that needs the untouched strings
should read ``--format json``.
"""

from __future__ import annotations

import io
import re

import orjson

from ml_tracelens.reports.result import JsonValue, Report

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", "＝", "＋", "－", "＠")
_NEEDS_QUOTES = re.compile(r"[,;\"\t\r\n]|^ | $|^::")


def render(report: Report) -> str:
    table = report.machine_table
    if table is None:
        return ""
    columns = [c for c in table.columns if c.machine]
    buffer = io.StringIO()
    buffer.write(",".join(quote(c.key) for c in columns) + "\n")
    for row in table.rows:
        buffer.write(",".join(quote(cell(row.get(c.key))) for c in columns) + "\n")
    return buffer.getvalue()


def cell(value: JsonValue) -> str:
    """The text of one cell, formula characters neutralised (before CSV quoting)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | dict):
        value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    text = str(value)
    return "'" + text if text.lstrip(" ").startswith(_FORMULA_STARTS) else text


def quote(text: str) -> str:
    """``text`` as one RFC 4180 field: quoted when it holds a separator, quote or line break."""
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text
