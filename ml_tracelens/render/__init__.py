"""Renderers: one per output format, keyed by OutputFormat; only ``emit`` writes.

``emit`` draws the whole report into a string first and writes it in one go, so the one place
that touches stdout can tell its failures apart: a closed stdout, a full disk or an I/O error
becomes ``OutputError`` ("cannot write to stdout: ..."), a reader that went away
``StdoutGone``, for the CLI to end on quietly (a broken pipe elsewhere, to a worker process, is
not that). Text the stream's encoding cannot carry
(``PYTHONIOENCODING=ascii``, a Latin-1 terminal) is written as escapes, never a crash: JSON as
``\\uXXXX`` (the document decodes to the same strings), other formats as ``\\xNN``/``\\uNNNN``.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
from collections.abc import Callable
from enum import StrEnum
from typing import NoReturn, TextIO, overload

from ml_tracelens.exceptions import OutputError, StdoutGone
from ml_tracelens.render.cells import fit_encoding
from ml_tracelens.reports.result import Report


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"
    HTML = "html"


#: The format a file name's suffix asks for, when ``--output`` names one and no ``--format``.
SUFFIX_FORMATS = {
    ".json": OutputFormat.JSON,
    ".csv": OutputFormat.CSV,
    ".md": OutputFormat.MARKDOWN,
    ".markdown": OutputFormat.MARKDOWN,
    ".html": OutputFormat.HTML,
    ".htm": OutputFormat.HTML,
}


def _renderers() -> dict[OutputFormat, Callable[[Report], str]]:
    # Imported lazily: a JSON run never pays for rich, a table run never for csv.
    from ml_tracelens.render import csv, html, json, markdown

    return {
        OutputFormat.JSON: json.render,
        OutputFormat.CSV: csv.render,
        OutputFormat.MARKDOWN: markdown.render,
        OutputFormat.HTML: html.render,
    }


def emit(
    report: Report,
    fmt: OutputFormat,
    *,
    stdout: TextIO | None,
    wide: bool = False,
    target: str = "stdout",
) -> None:
    """Write ``report`` to ``stdout`` in ``fmt`` (the table format draws with rich; ``wide``
    shows every column of its tables, however narrow the terminal).

    ``stdout`` is None when the process was started with it closed (``>&-``); ``target``
    names the stream in messages ("stdout", or the file it writes).
    """
    if stdout is None:
        write("", stdout, target=target)  # the error, before any work on the report
    if fmt is OutputFormat.TABLE:
        from ml_tracelens.render.table import render_report

        text = render_report(report, stdout, wide=wide)
    else:
        text = _renderers()[fmt](report)
    text = text if text.endswith("\n") else text + "\n"
    write(_encodable(text, stdout, json=fmt is OutputFormat.JSON), stdout, target=target)


@overload
def write(text: str, stdout: None, *, target: str = ...) -> NoReturn: ...
@overload
def write(text: str, stdout: TextIO | None, *, target: str = ...) -> None: ...
def write(text: str, stdout: TextIO | None, *, target: str = "stdout") -> None:
    """Write and flush ``text``: a gone reader becomes ``StdoutGone``, any other failure
    ``OutputError``; ``stdout`` is None when the process was started with it closed."""
    if stdout is None:
        raise OutputError(f"cannot write to {target}: {os.strerror(errno.EBADF)}")
    try:
        _write_all(text, stdout)
    except BrokenPipeError:
        raise StdoutGone from None
    except OSError as exc:
        raise OutputError(f"cannot write to {target}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a closed file object
        raise OutputError(f"cannot write to {target}: {exc}") from None


def _write_all(text: str, stdout: TextIO) -> None:
    """Write ``text`` whole to the file descriptor behind ``stdout``, or fail.

    Python's buffered writer takes a partial write for a whole one: when the reader of a pipe
    leaves while a write larger than the pipe's buffer is blocked (``| head -c 10``), the kernel
    returns the count it had passed on and the rest is dropped without an error. Writing the
    bytes to the descriptor until none are left makes the next write fail with EPIPE instead.
    A stream with no descriptor (a test's, the library caller's) is written as it is."""
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        stdout.write(text)
        stdout.flush()
        return
    stdout.flush()
    encoding = getattr(stdout, "encoding", None) or "utf-8"
    data = memoryview(text.encode(encoding, getattr(stdout, "errors", None) or "strict"))
    while data:
        data = data[os.write(fd, data) :]


def write_file(path: str, render_to: Callable[[TextIO], None]) -> None:
    """Open ``path`` (UTF-8) and let ``render_to`` write into it; a failure to open or write
    is ``OutputError`` naming the file."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            render_to(handle)
    except OSError as exc:
        raise OutputError(f"cannot write to {path}: {exc.strerror or exc}") from None


def _encodable(text: str, stdout: TextIO, *, json: bool) -> str:
    encoding = getattr(stdout, "encoding", None)
    if not json:
        return fit_encoding(text, encoding)
    try:
        text.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        # Outside strings JSON is ASCII, so every character escaped here is inside a string.
        return _NON_ASCII.sub(_json_escape, text)
    return text


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _json_escape(match: re.Match[str]) -> str:
    # Characters beyond U+FFFF are a UTF-16 surrogate pair in JSON (RFC 8259, section 7).
    units = codecs.encode(match.group(), "utf-16-be", "surrogatepass")
    return "".join(
        f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
    )
