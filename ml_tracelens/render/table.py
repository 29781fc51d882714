"""Terminal rendering with rich: tables on a TTY, the same report as plain text when piped.

All user data goes in as ``rich.text.Text`` (never markup) after ``printable``, so span names like
``redis GET [shard-1]`` print literally and escape sequences are shown, not obeyed.

Tables fit the width (the terminal's, or ``PIPE_WIDTH`` when piped) without ever cutting or
wrapping a number, an id or a unit; what gives way, in this order (README, "Tables that fit"):

1. names (stages, services) are shortened in the middle with "…", to no less than
   ``ROOMY_NAME_CELLS``, and prose (messages) wraps;
2. headers wrap at their spaces;
3. columns with a ``hide_rank`` are hidden, lowest rank first;
4. names are shortened further, to ``TIGHT_NAME_CELLS``;
5. the remaining columns but the first are hidden from the right.

A footer names the hidden columns and how to see them; ``wide`` shows every column whatever the
width (the terminal then folds the lines).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from ml_tracelens.render.cells import (
    NUMERIC_KINDS,
    defuse_ci_commands,
    empty_note,
    format_value,
    printable,
    share_items,
    shorten_items,
    shorten_middle,
    text_of,
)
from ml_tracelens.render.compare_view import render_compare
from ml_tracelens.render.console import make_console
from ml_tracelens.render.waterfall import render_show
from ml_tracelens.reports.result import Column, ColumnKind, Report, Table

#: Custom terminal views keyed by report name, drawn instead of the report's tables.
VIEWS: dict[str, Callable[[Report, Console], RenderableType]] = {
    "show": render_show,
    "compare": render_compare,
}

#: Names keep at least this many cells while optional columns can still be hidden instead.
ROOMY_NAME_CELLS = 20
#: ...and at least this many when nothing else is left to give way.
TIGHT_NAME_CELLS = 8
#: Prose wraps to no narrower than this, or its longest word (a time, an id), up to
#: ``LONGEST_WORD_CELLS``: rich folds a word wider than its column.
PROSE_CELLS = 16
LONGEST_WORD_CELLS = 40
#: Cells between two columns: on a terminal one of padding and the blank divider; plain text
#: keeps a space on both sides of its "|".
_TERMINAL_GAP, _PLAIN_GAP = 2, 3


def render_report(report: Report, stdout: TextIO, *, wide: bool = False) -> str:
    """The report as it is drawn for ``stdout``: styled for a terminal, plain text for a pipe.

    Drawn into a string, not onto the stream: the caller writes it in one go and so can tell a
    full disk or a closed pipe from a bug (rich would end the process on a broken pipe).
    """
    console = make_console(stdout)  # sized and styled for stdout...
    drawn = io.StringIO()
    console.file = drawn  # ...but drawing into a string

    _draw(report, console, wide=wide)
    # Rich may wrap a long value on a terminal; no wrapped line may start a CI command either.
    return defuse_ci_commands(drawn.getvalue())


def _draw(report: Report, console: Console, *, wide: bool) -> None:
    view = VIEWS.get(report.name)
    if view is not None and report.view is not None:
        console.print(view(report, console))
        return
    plain = not console.is_terminal
    width = console.width
    console.print(Text(printable(report.title), style="bold"))
    for line in report.headline:
        console.print(Text(printable(line)))
    for table in report.text_tables:
        console.print()
        fitted = fit_table(table, width=width, plain=plain, wide=wide)
        if wide:
            # Every column at full width: wider than the terminal if need be, which folds it.
            console.width = max(width, fitted.width)
        console.print(
            fitted.renderable(titled=len(report.text_tables) > 1 or not table.rows, plain=plain)
        )
        console.width = width


@dataclass(frozen=True)
class _ColumnCells:
    """One column's cells: as shown at full width, and what a narrower width shortens."""

    column: Column
    shown: list[str]
    values: list[Any]

    # Measured once: the layout asks again for every column it considers hiding, and a table
    # can have a row per trace of a big dump.
    @cached_property
    def header_cells(self) -> int:
        return cell_len(printable(self.column.header))

    @cached_property
    def longest_header_word(self) -> int:
        return max((cell_len(w) for w in printable(self.column.header).split()), default=0)

    @cached_property
    def body_cells(self) -> int:
        return max((cell_len(s) for s in self.shown), default=0)

    @cached_property
    def natural(self) -> int:
        return max(self.header_cells, self.body_cells, 1)

    @cached_property
    def _longest_word(self) -> int:
        return max((cell_len(word) for shown in self.shown for word in shown.split()), default=0)

    @cached_property
    def _widest_first_share(self) -> int:
        return max(
            (
                cell_len(share_items(v)[0]) + len(", …")
                for v in self.values
                if isinstance(v, dict) and v
            ),
            default=0,
        )

    def narrowest(self, name_cells: int) -> int:
        """The fewest cells this column may get, names shortened to ``name_cells``."""
        kind = self.column.kind
        body = self.body_cells
        if kind is ColumnKind.TEXT:
            body = min(body, name_cells)
        elif kind is ColumnKind.PROSE:
            body = min(body, max(PROSE_CELLS, min(self._longest_word, LONGEST_WORD_CELLS)))
        elif kind is ColumnKind.SHARES:
            body = min(body, max(self._widest_first_share, name_cells))
        return max(self.longest_header_word, body, 1)

    def cell(self, index: int, width: int) -> str:
        shown = self.shown[index]
        if cell_len(shown) <= width:
            return shown
        value = self.values[index]
        if self.column.kind is ColumnKind.TEXT:
            return shorten_middle(text_of(value), width)
        if self.column.kind is ColumnKind.SHARES and isinstance(value, dict):
            return shorten_items(share_items(value), width)
        return shown  # prose wraps; numbers and ids are never shortened


@dataclass(frozen=True)
class FittedTable:
    """A table laid out for one width: the columns shown, their widths, the columns hidden."""

    table: Table
    columns: list[_ColumnCells]
    widths: list[int]
    hidden: list[Column]
    limit: int
    plain: bool

    @property
    def width(self) -> int:
        gap, edges = _spacing(self.plain)
        return sum(self.widths) + gap * (len(self.widths) - 1) + edges

    def renderable(self, *, titled: bool, plain: bool) -> RenderableType:
        title = Text(printable(self.table.title), style="bold")
        if not self.table.rows:
            return Group(title, Text(printable(empty_note(self.table))))
        out = RichTable(
            title=title if titled else None,
            title_justify="left",
            box=box.SIMPLE_HEAD if not plain else box.ASCII2,
            show_edge=not plain,
            header_style="bold" if not plain else "",
            pad_edge=False,
            collapse_padding=not plain,
        )
        for cells, width in zip(self.columns, self.widths, strict=True):
            kind = cells.column.kind
            out.add_column(
                Text(printable(cells.column.header)),
                justify="right" if kind in NUMERIC_KINDS else "left",
                width=width,
                overflow="fold",  # headers wrap; cells say for themselves (``_styled``)
            )
        for index, row in enumerate(self.table.rows):
            out.add_row(
                *(
                    _styled(cells.cell(index, width), row, cells.column, plain=plain)
                    for cells, width in zip(self.columns, self.widths, strict=True)
                )
            )
        if not self.hidden:
            return out
        return Group(out, Text(hidden_note(self.hidden, self.limit), style="dim"))


def hidden_note(hidden: Sequence[Column], limit: int) -> str:
    names = ", ".join(printable(c.header) for c in hidden)
    return (
        f"Hidden to fit {limit} characters: {names}. "
        "--wide shows every column; --format csv or json has every value."
    )


def fit_table(table: Table, *, width: int, plain: bool, wide: bool = False) -> FittedTable:
    """Lay ``table`` out in ``width`` cells (see the module docstring for what gives way)."""
    columns = table.columns if not plain else tuple(c for c in table.columns if c.machine)
    cells = [
        _ColumnCells(
            column=c,
            shown=[format_value(row.get(c.key), c.kind_in(row)) for row in table.rows],
            values=[row.get(c.key) for row in table.rows],
        )
        for c in columns
    ]
    gap, edges = _spacing(plain)
    shown = list(cells)
    hidden: list[Column] = []

    def needed(name_cells: int) -> int:
        return sum(c.narrowest(name_cells) for c in shown) + gap * (len(shown) - 1) + edges

    if not wide and table.rows:
        ranked = sorted(
            (c for c in shown if c.column.hide_rank is not None),
            key=lambda c: c.column.hide_rank or 0,
        )
        rest = [c for c in reversed(shown[1:]) if c.column.hide_rank is None]
        for name_cells, candidates in ((ROOMY_NAME_CELLS, ranked), (TIGHT_NAME_CELLS, rest)):
            while candidates and needed(name_cells) > width:
                gone = candidates.pop(0)
                shown.remove(gone)
                hidden.append(gone.column)
    widths = [c.natural for c in shown]
    if not wide:
        _narrow(shown, widths, room=width - gap * (len(shown) - 1) - edges)
    # The table's columns in their order, not in the order they were hidden.
    order = {c.key: i for i, c in enumerate(columns)}
    hidden.sort(key=lambda c: order[c.key])
    return FittedTable(table, shown, widths, hidden, width, plain)


def _spacing(plain: bool) -> tuple[int, int]:
    """Cells between two columns, and at the two edges together."""
    return (_PLAIN_GAP, 0) if plain else (_TERMINAL_GAP, 2)


def _narrow(columns: list[_ColumnCells], widths: list[int], *, room: int) -> None:
    """Take cells from ``widths`` until they fit ``room``: long names and prose first, down to
    ``ROOMY_NAME_CELLS``, then headers wrap, then names and prose give the rest, down to their
    narrowest; the widest of them gives one cell at a time."""
    excess = sum(widths) - room
    excess = _take_from_widest(columns, widths, excess, name_cells=ROOMY_NAME_CELLS)
    if excess <= 0:
        return
    for i, cells in sorted(enumerate(columns), key=lambda item: -item[1].header_cells):
        floor = max(cells.body_cells, cells.longest_header_word, 1)
        give = min(excess, max(0, widths[i] - floor))
        widths[i] -= give
        excess -= give
    _take_from_widest(columns, widths, excess, name_cells=TIGHT_NAME_CELLS)


def _take_from_widest(
    columns: list[_ColumnCells], widths: list[int], excess: int, *, name_cells: int
) -> int:
    """Narrow names and prose, widest first, down to ``name_cells``; the excess left."""
    floors = [
        c.narrowest(name_cells) if c.column.kind in _FLEXIBLE else widths[i]
        for i, c in enumerate(columns)
    ]
    while excess > 0:
        candidates = [i for i in range(len(columns)) if widths[i] > floors[i]]
        if not candidates:
            return excess  # only numbers and ids left: shown whole, the terminal folds the line
        widest = max(candidates, key=lambda i: widths[i] - floors[i])
        widths[widest] -= 1
        excess -= 1
    return excess


_FLEXIBLE = frozenset({ColumnKind.TEXT, ColumnKind.PROSE, ColumnKind.SHARES})


def _styled(text: str, row: dict[str, Any], column: Column, *, plain: bool) -> Text:
    value = row.get(column.key)
    style = ""
    # A count or rate above zero is red; a text cell under the same key ("0.0% -> 0.0%") is not.
    if not plain and column.key in ("errors", "error_rate") and _positive(value):
        style = "red"
    if not plain and column.kind is ColumnKind.SPARK:
        style = "cyan"
    if not plain and column.kind is ColumnKind.BOOL and column.key in ("passed", "regression"):
        style = "green" if (value if column.key == "passed" else not value) else "bold red"
    # Only prose may wrap; the layout gave every other cell the width it needs.
    return Text(text, style=style, no_wrap=column.kind is not ColumnKind.PROSE)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
