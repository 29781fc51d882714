"""Errors raised by the core, each mapped to one exit code by the CLI."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a budget was violated or `diff` found a regression
    USAGE = 2  # bad option, unknown id, unreadable/unknown input, nothing to analyse
    INTERRUPTED = 130
    #: 128 + SIGPIPE: stdout was a pipe whose reader had gone (`tracelens ... | head -1`)
    BROKEN_PIPE = 141


class TracelensError(Exception):
    """A problem the user can fix; its message is printed as one line."""

    exit_code: ExitCode = ExitCode.USAGE


class InputError(TracelensError):
    """An input could not be read, detected or analysed."""


class MalformedInput(InputError):
    """A malformed record under --strict, or an input over a safety limit."""


class UsageError(TracelensError):
    """An option or argument is invalid."""


class NotFound(TracelensError):
    """An id or stage the user asked for is not in the data."""


class StdoutGone(Exception):
    """The reader of stdout went away (a closed pipe: `tracelens ... | head -1`); not an error
    to report, the CLI ends as a filter does."""


class OutputError(TracelensError):
    """The report could not be written to stdout (closed, a full disk, an I/O error)."""
