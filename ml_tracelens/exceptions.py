"""The domain errors of the library; the CLI maps each to an exit code (``cli.exits``)."""

from __future__ import annotations


class TracelensError(Exception):
    """A problem the user can fix; its message is printed as one line."""


class InputError(TracelensError):
    """An input could not be read, detected or analysed."""


class MalformedInput(InputError):
    """A malformed record under --strict, or an input over a safety limit."""


class UsageError(TracelensError):
    """An option or argument is invalid. ``option``: the library's name of the option (a keyword
    argument of ``ml_tracelens.api``), which the message starts with; the CLI names the flag."""

    def __init__(self, detail: str, *, option: str | None = None) -> None:
        super().__init__(f"{option} {detail}" if option else detail)
        self.option = option
        self.detail = detail


class NotFound(TracelensError):
    """An id or stage the user asked for is not in the data."""


class StdoutGone(Exception):
    """The reader of stdout went away (a closed pipe: `tracelens ... | head -1`); not an error
    to report, the CLI ends as a filter does."""


class OutputError(TracelensError):
    """The report could not be written to stdout (closed, a full disk, an I/O error)."""


def quoted(value: object) -> str:
    """``value`` in quotes for a message, its text as it is: whoever prints the message makes
    control characters visible once (``repr`` would escape them, and the printer again: a real
    ESC would read as ``\\\\x1b``, as if typed). Double quotes when the text holds a single
    quote and no double one, as ``repr`` chooses."""
    text = str(value)
    quote = '"' if "'" in text and '"' not in text else "'"
    return f"{quote}{text}{quote}"
