"""Terminal rendering with rich: tables on a TTY, the same report as plain text when piped.

All user data goes in as ``rich.text.Text`` (never markup) after ``printable``, so span names like
``redis GET [shard-1]`` print literally and escape sequences are shown, not obeyed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from ml_tracelens.console import make_console
from ml_tracelens.render.cells import defuse_ci_commands, format_value, printable
from ml_tracelens.reports.model import ColumnKind, Report, Table

#: Custom terminal views keyed by report name (e.g. the `show` waterfall); registered by modules
#: under render/ that draw them.
VIEWS: dict[str, Callable[[Report, Console], RenderableType]] = {}


def render_report(report: Report, stdout: TextIO) -> str:
    """The report as it is drawn for ``stdout``: styled for a terminal, plain text for a pipe.

    Drawn into a string, not onto the stream: the caller writes it in one go and so can tell a
    full disk or a closed pipe from a bug (rich would end the process on a broken pipe).
    """
    console = make_console(stdout)  # sized and styled for stdout...
    drawn = io.StringIO()
    console.file = drawn  # ...but drawing into a string
    from ml_tracelens.render import waterfall  # noqa: F401  (registers the `show` view)

    _draw(report, console)
    # Rich may wrap a long value on a terminal; no wrapped line may start a CI command either.
    return defuse_ci_commands(drawn.getvalue())


def _draw(report: Report, console: Console) -> None:
    view = VIEWS.get(report.name)
    if view is not None and report.view is not None:
        console.print(view(report, console))
        return
    plain = not console.is_terminal
    console.print(Text(printable(report.title), style="bold"))
    for line in report.headline:
        console.print(Text(printable(line)))
    for table in report.tables:
        console.print()
        console.print(rich_table(table, plain=plain, titled=len(report.tables) > 1))


def rich_table(table: Table, *, plain: bool, titled: bool = False) -> RenderableType:
    columns = table.columns if not plain else tuple(c for c in table.columns if c.machine)
    out = RichTable(
        title=Text(printable(table.title), style="bold") if titled else None,
        title_justify="left",
        box=box.SIMPLE_HEAD if not plain else box.ASCII2,
        show_edge=not plain,
        header_style="bold" if not plain else "",
        pad_edge=False,
    )
    for column in columns:
        numeric = column.kind not in (ColumnKind.TEXT, ColumnKind.SPARK, ColumnKind.TIME)
        out.add_column(
            Text(printable(column.header)),
            justify="right" if numeric else "left",
            no_wrap=plain or numeric,
            overflow="fold",
        )
    for row in table.rows:
        out.add_row(*(_cell(row, column, plain=plain) for column in columns))
    if not table.rows:
        return Text("(no rows)")
    return out


def _cell(row: dict[str, Any], column: Any, *, plain: bool) -> Text:
    value = row.get(column.key)
    text = format_value(value, column.kind)
    style = ""
    if not plain and column.key in ("errors", "error_rate") and value:
        style = "red"
    if not plain and column.kind is ColumnKind.SPARK:
        style = "cyan"
    if not plain and column.kind is ColumnKind.BOOL and column.key in ("passed", "regression"):
        style = "green" if (value if column.key == "passed" else not value) else "bold red"
    return Text(text, style=style)
