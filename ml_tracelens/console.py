"""Consoles for stdout (data) and stderr (diagnostics), and the one-line message helpers.

NO_COLOR is honoured by rich itself; when stdout is not a terminal nothing is coloured, wrapped
or decorated, so pipes get stable text.

Every message may quote input (a file name, a malformed line's reason, an id the user typed),
so each goes through ``printable`` and into rich as ``Text``, never as markup. The traceback
``--debug`` lets through is printed the same way (``sys.excepthook``, installed on import
unless a program has its own), so an exception that quotes hostile data cannot reach the
terminal raw either.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
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


# Diagnostics are printed with soft_wrap: one message stays one line however long (the terminal
# folds it for the eye; a CI log or `2> file` gets the line whole).


def print_error(message: str) -> None:
    line = Text("error: ", style="bold red") + Text(printable(message))
    _stderr_console().print(line, soft_wrap=True)


def print_warning(message: str) -> None:
    line = Text("warning: ", style="yellow") + Text(printable(message))
    _stderr_console().print(line, soft_wrap=True)


def print_note(message: str) -> None:
    _stderr_console().print(Text(printable(message), style="dim"), soft_wrap=True)


def print_traceback(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """Python's traceback, each line passed through ``printable`` (for ``--debug``)."""
    text = "".join(traceback.format_exception(kind, error, trace))
    sys.stderr.write("".join(printable(line) + "\n" for line in text.splitlines()))
    sys.stderr.flush()


if sys.excepthook is sys.__excepthook__:
    sys.excepthook = print_traceback
