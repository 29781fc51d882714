"""The library's results: analysed telemetry (``load``), one report (``Result``), several
reports on one page (``Page``), and a report table as a polars frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

import msgspec
import polars as pl

from ml_tracelens.core import Analysis
from ml_tracelens.ingest.telemetry import Telemetry
from ml_tracelens.render import json as json_render
from ml_tracelens.reports import context as report_context
from ml_tracelens.reports.result import ColumnKind, JsonValue, Report, Table

if TYPE_CHECKING:
    from ml_tracelens.reports.documents import Envelope, Payload

PathsLike = str | Path | Sequence[str | Path]
LogTime = Literal["end", "start"]


class SpanFilters(TypedDict, total=False):
    """The span filters every aggregate report takes, as keywords: ``where`` (an SQL condition
    on span columns and ``attr.KEY``), ``since``/``until`` (an ISO time, or a duration back
    from the dump's end such as ``"10m"``), ``services`` and ``stages`` (the ones to keep)."""

    where: str | None
    since: str | None
    until: str | None
    services: Sequence[str]
    stages: Sequence[str]


@dataclass(frozen=True)
class AnalysedTelemetry:
    """Inputs read into the canonical tables, every trace analysed."""

    telemetry: Telemetry
    analysis: Analysis

    @property
    def spans(self) -> pl.DataFrame:
        """Canonical spans plus ``self_ns``, ``cp_ns``, ``depth``, ``is_root``, ``top_id``,
        ``has_error``, ``error_originated`` and the structure flags (see ``core.analyze``)."""
        return self.analysis.spans

    @property
    def logs(self) -> pl.DataFrame:
        """The canonical log table (``schema.LOG_SCHEMA``)."""
        return self.telemetry.logs

    @property
    def inputs(self) -> list[dict[str, JsonValue]]:
        """Per input: path, format, spans, logs and the accounting of its lines."""
        return report_context.inputs_of(self.telemetry)

    @property
    def warnings(self) -> list[str]:
        return report_context.warnings_of(self.telemetry, self.analysis)


@dataclass(frozen=True)
class Result:
    """A report: its rows as polars frames, its JSON, and (for gates) whether it passed."""

    report: Report

    @property
    def name(self) -> str:
        return self.report.name

    @property
    def rows(self) -> pl.DataFrame:
        """The report's main table: its JSON ``rows`` (the first table of its JSON)."""
        tables = [t for t in self.report.tables if t.in_json]
        return table_frame(tables[0]) if tables else pl.DataFrame()

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        """Every table of the report's JSON, by its key."""
        return {t.key: table_frame(t) for t in self.report.tables if t.in_json}

    @property
    def payload(self) -> Payload | None:
        """The report's own JSON keys besides its tables, typed: e.g. a ``LatencyPayload`` whose
        ``requests.p95_ms`` is a float."""
        return self.report.payload

    @property
    def data(self) -> dict[str, object]:
        """The report's own JSON keys besides its tables (``requests``, ``passed``, ...), as
        plain Python values."""
        if self.report.payload is None:
            return {}
        built: dict[str, object] = msgspec.to_builtins(self.report.payload)
        return built

    @property
    def warnings(self) -> list[str]:
        return list(self.report.warnings)

    @property
    def passed(self) -> bool:
        """False when a gate (check, diff with ``fail_on`` rules) failed; True otherwise."""
        return self.report.passed is not False

    def to_json(self) -> str:
        """The document ``tracelens NAME --format json`` prints."""
        return json_render.render(self.report)

    @property
    def document(self) -> Envelope:
        """The JSON document as its type (``reports.documents``): e.g. a ``LatencyDocument``
        whose ``requests.p95_ms`` is a float."""
        from ml_tracelens.reports import documents

        return documents.decode(self.to_json())


_DTYPES: Mapping[ColumnKind, pl.DataType] = {
    ColumnKind.INT: pl.Int64(),
    ColumnKind.FLOAT: pl.Float64(),
    ColumnKind.MS: pl.Float64(),
    ColumnKind.SHARE: pl.Float64(),
    ColumnKind.BOOL: pl.Boolean(),
    ColumnKind.TEXT: pl.String(),
    ColumnKind.ID: pl.String(),
    ColumnKind.PROSE: pl.String(),
    ColumnKind.TIME: pl.String(),
}


def table_frame(table: Table) -> pl.DataFrame:
    """A table's JSON rows as a frame: one column per machine column, typed by its kind (a
    column whose kind varies by row, or that holds lists or objects, is typed by polars)."""
    series = []
    for column in (c for c in table.columns if c.machine):
        values = [row.get(column.key) for row in table.rows]
        dtype = _DTYPES.get(column.kind) if column.row_kind is None else None
        if any(isinstance(v, list | dict) for v in values):
            dtype = None
        series.append(pl.Series(column.key, values, dtype=dtype, strict=False))
    return pl.DataFrame(series)


@dataclass(frozen=True)
class Page:
    """Several reports meant to be read together (``tracelens report``): the summary, latency
    with its distributions, errors, bottlenecks, and the waterfalls of a few exemplar requests."""

    title: str
    results: list[Result]

    def to_html(self) -> str:
        """The self-contained HTML page (``render.html``)."""
        from ml_tracelens.render import html

        return html.page([r.report for r in self.results], title=self.title)
