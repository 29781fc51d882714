"""CSV of a report's primary table, safe to open in a spreadsheet.

Text cells that a spreadsheet would evaluate as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) get a leading single quote, as OWASP recommends for CSV
injection; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from ml_tracelens.reports.model import Report

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render(report: Report) -> str:
    buffer = io.StringIO()
    table = report.primary
    if table is None:
        return ""
    columns = [c for c in table.columns if c.machine]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in table.rows:
        writer.writerow([cell(row.get(c.key)) for c in columns])
    return buffer.getvalue()


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | dict):
        value = orjson.dumps(value).decode()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
