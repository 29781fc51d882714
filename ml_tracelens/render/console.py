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

from ml_tracelens.render.cells import fit_encoding, printable

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


# Diagnostics are printed with soft_wrap: one message stays one line however long (the terminal
# folds it for the eye; a CI log or `2> file` gets the line whole).


def print_error(message: str) -> None:
    _print_diagnostic(Text("error: ", style="bold red") + Text(_shown(message)))


def print_warning(message: str) -> None:
    _print_diagnostic(Text("warning: ", style="yellow") + Text(_shown(message)))


def print_note(message: str) -> None:
    _print_diagnostic(Text(_shown(message), style="dim"))


def print_traceback(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """Python's traceback, each line passed through ``printable`` (for ``--debug``)."""
    text = "".join(traceback.format_exception(kind, error, trace))
    _write_stderr("".join(_shown(line) + "\n" for line in text.splitlines()))


def _shown(message: str) -> str:
    """``printable(message)``, with what stderr's encoding cannot carry as escapes."""
    return fit_encoding(printable(message), getattr(sys.stderr, "encoding", None))


def _print_diagnostic(line: Text) -> None:
    if sys.stderr is None:  # started with stderr closed: nowhere to say it; the status tells
        return
    try:
        make_console(sys.stderr).print(line, soft_wrap=True)
    except (OSError, ValueError):
        _give_up_on_stderr()


def _write_stderr(text: str) -> None:
    if sys.stderr is None:
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        _give_up_on_stderr()


def _give_up_on_stderr() -> None:
    """stderr failed (a full disk, an I/O error): there is no one left to tell, so the exit
    status must say it."""
    discard(sys.stderr)


def discard(stream: TextIO | None) -> None:
    """Point a standard stream's descriptor at /dev/null after a write to it failed: Python
    flushes it again on exit, and the text left in its buffer would fail again ("Exception
    ignored", exit status 120)."""
    try:
        fd = stream.fileno() if stream is not None else -1
    except (AttributeError, OSError, ValueError):
        return
    if fd < 0:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


if sys.excepthook is sys.__excepthook__:
    sys.excepthook = print_traceback
