"""The versioned JSON envelope shared by every report (documented in the README)."""

from __future__ import annotations

import re

import msgspec
import orjson

from ml_tracelens import __version__
from ml_tracelens.render.cells import TERMINAL_CONTROL as _TERMINAL_CONTROLS
from ml_tracelens.reports.result import SCHEMA_VERSION, JsonValue, Report


def envelope(report: Report) -> dict[str, JsonValue]:
    document: dict[str, JsonValue] = {
        "tracelens": {"version": __version__, "schema": SCHEMA_VERSION},
        "report": report.name,
        "inputs": report.inputs,
        "warnings": report.warnings,
    }
    if report.payload is not None:
        document.update(msgspec.to_builtins(report.payload))
    for table in report.tables:
        if not table.in_json:
            continue
        keys = [c.key for c in table.columns if c.machine]
        document[table.key] = [{k: row.get(k) for k in keys} for row in table.rows]
    return document


def render(report: Report) -> str:
    text = orjson.dumps(
        envelope(report), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    ).decode()
    # JSON may carry these raw, but a terminal would obey them if the output is printed; as
    # \uXXXX escapes the document decodes to exactly the same strings. (Structural JSON is
    # ASCII, so they can only occur inside strings.)
    text = _TERMINAL_CONTROLS.sub(_json_escape, text)
    # A CI runner obeys "##[" anywhere in a line of a step's log (the legacy workflow command
    # syntax); written "##\u005b" the string decodes the same and the line holds no command. A
    # line cannot start with "::" from the data: every string is quoted.
    return text.replace("##[", "##\\u005b")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def render_schema(report: str) -> str:
    """The JSON Schema of a report's document (``reports.documents``), keys sorted."""
    from ml_tracelens.reports import documents

    text = orjson.dumps(documents.schema(report), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return text.decode() + "\n"
