"""Consoles for stdout (data) and stderr (diagnostics), and the one-line message helpers.

NO_COLOR is honoured by rich itself; when stdout is not a terminal nothing is coloured, wrapped
or decorated, so pipes get stable text.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from ml_tracelens.render.cells import printable

#: Width for piped output: wide enough that tables never wrap mid-row.
PIPE_WIDTH = 250


def make_console(stream: TextIO) -> Console:
    is_tty = stream.isatty()
    width = None if is_tty else _pipe_width()
    return Console(
        file=stream,
        width=width,
        force_terminal=is_tty,
        no_color=not is_tty or "NO_COLOR" in os.environ,
        highlight=False,
        soft_wrap=False,
        emoji=False,
        markup=False,
    )


def _pipe_width() -> int:
    try:
        return max(PIPE_WIDTH, int(os.environ.get("COLUMNS", "0")))
    except ValueError:
        return PIPE_WIDTH


def _stderr_console() -> Console:
    return make_console(sys.stderr)


def print_error(message: str) -> None:
    _stderr_console().print(Text("error: ", style="bold red") + Text(printable(message)))


def print_warning(message: str) -> None:
    _stderr_console().print(Text("warning: ", style="yellow") + Text(printable(message)))


def print_note(message: str) -> None:
    _stderr_console().print(Text(printable(message), style="dim"))
