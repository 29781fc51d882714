"""`tracelens formats`: the registered readers."""

from __future__ import annotations

from ml_tracelens.readers import registry
from ml_tracelens.reports.documents import FormatsPayload
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table


def build() -> Report:
    rows: list[dict[str, JsonValue]] = [
        {"name": spec.name, "description": spec.description, "accepts": spec.accepts}
        for spec in registry().values()
    ]
    table = Table(
        key="rows",
        title="Input formats",
        columns=(
            Column("name", "format"),
            Column("description", "what", ColumnKind.PROSE),
            Column("accepts", "accepts", ColumnKind.PROSE),
        ),
        rows=rows,
    )
    return Report(
        name="formats",
        title="Input formats (auto-detected per file; force one with --input-format NAME)",
        tables=[table],
        payload=FormatsPayload(),
    )
