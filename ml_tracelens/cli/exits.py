"""How the tracelens process ends: exit codes from domain errors, results and signals, in one
place; the process set up as a Unix filter.

Library code raises the named errors of ``ml_tracelens.exceptions`` and returns results whose
``passed`` says whether a gate failed; this module turns them into one line on stderr and the
process's status.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, NoReturn

import typer

from ml_tracelens import __version__
from ml_tracelens.exceptions import OutputError, StdoutGone, TracelensError, UsageError
from ml_tracelens.render.console import discard, print_error

if TYPE_CHECKING:
    from ml_tracelens.api import Result


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a budget was violated or `diff` found a regression
    USAGE = 2  # bad option, unknown id, unreadable/unknown input, nothing to analyse
    INTERRUPTED = 130
    #: 128 + SIGPIPE: stdout was a pipe whose reader had gone (`tracelens ... | head -1`)
    BROKEN_PIPE = 141


def exit_code_of(result: Result) -> ExitCode:
    """A result's exit status: a failed gate (check, diff --fail-on) is 1."""
    return ExitCode.OK if result.passed else ExitCode.CHECK_FAILED


#: Options whose flag is not ``--`` + the library's keyword with dashes.
FLAGS = {
    "fields": "--field",
    "features": "--feature",
    "services": "--service",
    "stages": "--stage",
    "budgets": "--budget",
    "id_attrs": "--id-attr",
    "min_change_pct": "--min-change",
    "replicates": "--bootstrap",
}


def message_for(error: TracelensError) -> str:
    """The one line a domain error prints, naming an option by its command-line flag."""
    if isinstance(error, UsageError) and error.option:
        flag = FLAGS.get(error.option, "--" + error.option.replace("_", "-"))
        return f"{flag} {error.detail}"
    return str(error)


def exit_code_for(error: TracelensError) -> ExitCode:
    """Every domain error is something the user can fix: a usage or input error."""
    return ExitCode.USAGE


def show_version(value: bool) -> None:
    if value:
        write_stdout(f"tracelens {__version__}\n")
        raise typer.Exit()


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout, failing as a report would (one line naming stdout, or quietly
    on a closed pipe)."""
    from ml_tracelens.render import write

    try:
        write(text, sys.stdout)
    except (StdoutGone, OutputError) as exc:
        stdout_failed(exc)


#: Set by ``prepare_process``: this is the tracelens command, which may end itself by a signal.
_FILTER_PROCESS = False


def prepare_process() -> None:
    """Set up the tracelens process as a Unix filter (``main`` calls it; the library does not).

    * A closed stdin, stdout or stderr (``>&-``) is pointed at /dev/null: otherwise the next file
      opened (a cache entry, the --junit file) would get its number, and whatever writes to
      "stdout" would write into that file. The report still fails: ``sys.stdout`` stays None.
    * Text the encoding of stdout or stderr cannot carry is written as backslash escapes, also
      by writers tracelens does not own (typer's usage errors, tracebacks).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    global _FILTER_PROCESS
    _FILTER_PROCESS = True


def stdout_failed(exc: StdoutGone | OutputError) -> NoReturn:
    """A write to stdout failed: quietly when its reader went away, else one line naming it."""
    if isinstance(exc, StdoutGone):
        _end_as_a_filter_whose_reader_went_away()
    _discard_stdout()
    print_error(str(exc))
    raise typer.Exit(int(exit_code_for(exc))) from None


def _end_as_a_filter_whose_reader_went_away() -> NoReturn:
    """End as ``cat`` or ``grep`` do when the reader of stdout goes away (``| head -1``):
    silently, killed by SIGPIPE (141 in a shell), never with 1 (a failed gate) or 2.

    Only stdout's own broken pipe comes here: SIGPIPE cannot simply get its default action for
    the whole run, since a pipe to a worker process that died would then kill tracelens
    silently too, instead of an error saying so.
    """
    _discard_stdout()
    if _FILTER_PROCESS and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.raise_signal(signal.SIGPIPE)
    # Not the tracelens process (a test, the library), or SIGPIPE is blocked: the same status.
    raise typer.Exit(int(ExitCode.BROKEN_PIPE))


def _let_ctrl_c_interrupt_reads() -> None:
    """Importing polars installs a SIGINT handler flagged SA_RESTART (it passes the signal on to
    Python's): a read from stdin or a FIFO that Ctrl-C interrupts is restarted by the kernel, and
    Python, still waiting in it, never raises KeyboardInterrupt. Clear the flag, keep the handler:
    the read fails with EINTR, Python runs its handler, and the command ends with 130."""
    import polars  # noqa: F401  (installs its handler on import)

    if hasattr(signal, "siginterrupt") and threading.current_thread() is threading.main_thread():
        signal.siginterrupt(signal.SIGINT, True)


def _discard_stdout() -> None:
    discard(sys.stdout)


@contextmanager
def errors_to_exit_codes(debug: bool) -> Iterator[None]:
    try:
        _let_ctrl_c_interrupt_reads()  # inside: a Ctrl-C during polars' import is handled too
        yield
    except (StdoutGone, OutputError) as exc:
        stdout_failed(exc)
    except TracelensError as exc:
        if debug:
            raise
        print_error(message_for(exc))
        raise typer.Exit(int(exit_code_for(exc))) from None
    except KeyboardInterrupt:
        print_error("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
    except BaseException as exc:
        # A Rust panic inside polars arrives as pyo3's PanicException, not an Exception.
        if debug or type(exc).__name__ != "PanicException":
            raise
        print_error(
            f"internal error: polars panicked: {exc} (rerun with --debug for the traceback)"
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
