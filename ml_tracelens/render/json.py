"""The versioned JSON envelope shared by every report (documented in the README)."""

from __future__ import annotations

from typing import Any

import orjson

from ml_tracelens import __version__
from ml_tracelens.reports.model import SCHEMA_VERSION, Report


def envelope(report: Report) -> dict[str, Any]:
    document: dict[str, Any] = {
        "tracelens": {"version": __version__, "schema": SCHEMA_VERSION},
        "report": report.name,
        "inputs": report.inputs,
        "warnings": report.warnings,
    }
    document.update(report.data)
    for table in report.tables:
        if not table.in_json:
            continue
        keys = [c.key for c in table.columns if c.machine]
        document[table.key] = [{k: row.get(k) for k in keys} for row in table.rows]
    return document


def render(report: Report) -> str:
    return orjson.dumps(
        envelope(report), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    ).decode()
