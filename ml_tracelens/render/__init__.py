"""Renderers: one per output format, keyed by OutputFormat; only ``emit`` writes."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TextIO

from ml_tracelens.reports.model import Report


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"


def _renderers() -> dict[OutputFormat, Callable[[Report], str]]:
    # Imported lazily: a JSON run never pays for rich, a table run never for csv.
    from ml_tracelens.render import csv, json, markdown

    return {
        OutputFormat.JSON: json.render,
        OutputFormat.CSV: csv.render,
        OutputFormat.MARKDOWN: markdown.render,
    }


def emit(report: Report, fmt: OutputFormat, *, stdout: TextIO) -> None:
    """Write ``report`` to ``stdout`` in ``fmt`` (the table format draws with rich)."""
    if fmt is OutputFormat.TABLE:
        from ml_tracelens.render.table import print_report

        print_report(report, stdout)
        return
    text = _renderers()[fmt](report)
    stdout.write(text if text.endswith("\n") else text + "\n")
    stdout.flush()
