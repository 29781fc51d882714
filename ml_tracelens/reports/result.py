"""Report objects: what every command builds and every renderer draws.

A report is data, not text: its own keys in a typed ``payload`` (``documents.Payload``) and row
tables in ``tables``. Builders
convert units (durations to milliseconds as floats with a ``_ms`` key suffix, shares as fractions);
renderers decide presentation (precision, percent signs, colours).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from ml_tracelens.reports.documents import Payload, table_clashes

#: Bumped whenever a key of any report's JSON changes meaning or disappears.
SCHEMA_VERSION = 2

#: A value of a report's JSON document (``inputs``, a table's rows). Read-only
#: containers, so that a ``dict[str, int]`` or a ``list[str]`` is one.
JsonValue: TypeAlias = (
    str | int | float | bool | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)


class ColumnKind(StrEnum):
    """What a column holds, which decides how a narrow terminal may show it: numbers, times and
    ids are shown whole or not at all (the column is hidden); names are shortened in the middle
    with "…"; prose wraps onto more lines."""

    TEXT = "text"  # a name (stage, service, budget): shortened in the middle with "…"
    ID = "id"  # trace or span id, or text holding numbers: shown whole, never shortened
    PROSE = "prose"  # free text (messages, notes): wraps at spaces
    SHARES = "shares"  # name -> fraction 0..1, shown "billing 31%, other 9%, …"
    INT = "int"
    FLOAT = "float"
    MS = "ms"  # milliseconds
    SHARE = "share"  # fraction 0..1 shown as a percentage
    TIME = "time"  # ISO-8601 UTC string
    SPARK = "spark"  # list of bin counts, drawn on terminals only
    BOOL = "bool"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: ColumnKind = ColumnKind.TEXT
    #: Hidden on a terminal too narrow for the table, lowest rank first (README, "Tables that
    #: fit"); None: shown while any ranked column can go. JSON, CSV and markdown show every column.
    hide_rank: int | None = None
    #: How one row's value is shown, when that depends on the row (check's ``actual`` is a
    #: duration for a p95 budget, a share for an error rate); None: as ``kind`` says.
    row_kind: Callable[[Mapping[str, JsonValue]], ColumnKind] | None = field(
        default=None, compare=False
    )

    def kind_in(self, row: Mapping[str, JsonValue]) -> ColumnKind:
        return self.row_kind(row) if self.row_kind is not None else self.kind

    @property
    def machine(self) -> bool:
        """Whether the column belongs in JSON/CSV (sparklines are a terminal aid only)."""
        return self.kind is not ColumnKind.SPARK


@dataclass(frozen=True)
class Table:
    key: str  # the JSON key holding the rows
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, JsonValue]]
    #: False for tables that only restate the report's JSON keys for people (summary facts)
    in_json: bool = True
    #: False for tables only the JSON carries (diff's metric rows under its per-stage view)
    in_text: bool = True
    #: The sentence shown instead of an empty table ("no error messages in 2,019 requests")
    empty_note: str = ""


@dataclass(frozen=True)
class Report:
    name: str  # the command that built it; also the JSON "report" key
    title: str
    tables: list[Table] = field(default_factory=list)
    #: The report's own top-level JSON keys (None: only its tables)
    payload: Payload | None = None
    headline: list[str] = field(default_factory=list)  # sentences shown above the tables
    inputs: list[dict[str, JsonValue]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: For a gate (check, diff): whether it passed; None for other reports
    passed: bool | None = None
    #: report-specific structure for a custom terminal view (e.g. the waterfall of `show`)
    view: object = None

    def __post_init__(self) -> None:
        clashes = table_clashes(self.payload, [t.key for t in self.tables if t.in_json])
        if clashes:
            raise ValueError(f"{self.name}: JSON keys printed twice: {', '.join(sorted(clashes))}")

    @property
    def text_tables(self) -> list[Table]:
        """The tables people read (terminal, markdown), in order."""
        return [t for t in self.tables if t.in_text]

    @property
    def primary(self) -> Table | None:
        """The main table people read."""
        return next(iter(self.text_tables), None)

    @property
    def machine_table(self) -> Table | None:
        """The table CSV writes: the JSON document's ``rows``, numbers and all, where the report
        shows people another (diff's rows per stage, why's findings); else ``primary``."""
        return next((t for t in self.tables if t.key == "rows" and t.in_json), self.primary)
