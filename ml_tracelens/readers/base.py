"""The contract every format reader follows.

A reader is a module exposing ``READER = ReaderSpec(...)``: a ``sniff`` that looks at the first
bytes of an input (already decompressed) and says whether the format is its own, and a ``read``
that turns the whole input into canonical span and log frames (see ``schema.py``) plus the
accounting of what it read and skipped.

Inputs are untrusted: ``InputSource.lines`` and ``read_bytes(max_bytes=...)`` never hold more
than the document-size limit (``limits.py``) in memory, so a reader that reads through them
gets the limit for free; a reader with its own stream uses ``read_line``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import polars as pl

from ml_tracelens import limits
from ml_tracelens.schema import empty_logs, empty_spans

#: How many malformed records each input keeps with their location for messages.
MAX_PROBLEMS_KEPT = 5

#: ``ReadStats.ignored`` reasons for records that were read but changed on the way (see
#: ``ReadStats.alter``): they are warned about, and --strict rejects an input that has any.
DEEP_VALUES_DROPPED = "attribute values dropped (nested too deep)"
UTF8_REPLACED = "invalid UTF-8 bytes replaced (with U+FFFD)"
ALTERATIONS = (DEEP_VALUES_DROPPED, UTF8_REPLACED)


@dataclass(frozen=True)
class Pushdown:
    """The span filters a dataset read pushes down (``--since``, ``--until``, ``--service``,
    with their meaning in ``core.query``): it reads only the traces holding a span they keep,
    each whole, so every per-trace result and every filtered report is that of the whole
    dataset. Times as the user gave them: ISO, or a duration back from the end."""

    since: str | None = None
    until: str | None = None
    services: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.services)


@dataclass(frozen=True)
class ReadOptions:
    """What the user told us about the inputs."""

    #: canonical log field -> the key holding it in the user's logs (``--field time=ts``)
    field_map: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    #: what a log line's timestamp marks on a stage interval: its "end" (a line reporting a
    #: duration is written when the stage finishes) or its "start"
    log_time: Literal["end", "start"] = "end"
    #: add ``queue``/``prefill``/``decode`` child spans to LLM spans that carry those times
    #: (core/llm.py; ``--no-derived-stages`` turns it off)
    derived_stages: bool = True
    #: what a dataset read may leave out (not part of a cache key: datasets are not cached,
    #: and no other reader looks at it)
    pushdown: Pushdown = field(default_factory=Pushdown)


class InputSource:
    """One input: a file (maybe gzipped) or stdin; opened as decompressed bytes."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], IO[bytes]],
        size: int | None = None,
        path: Path | None = None,
        file_path: Path | None = None,
        found: bool = False,
    ):
        self.name = name
        self._opener = opener
        self.size = size
        #: set for plain (uncompressed) regular files, so native readers can scan them directly
        self.path = path
        #: the file on disk (plain or compressed), for cache keys; None for stdin and pipes
        self.file_path = file_path if file_path is not None else path
        #: found by walking a directory rather than named: an unknown format is skipped, not fatal
        self.found = found

    def open(self) -> IO[bytes]:
        return self._opener()

    def read_bytes(self, max_bytes: int | None = None) -> bytes:
        """The whole (decompressed) input; over ``max_bytes`` raises ``LimitExceeded``."""
        with self.open() as stream:
            if max_bytes is None:
                return stream.read()
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise limits.LimitExceeded(
                f"{self.name}: a single JSON document larger than {limits.format_size(max_bytes)}"
                f" (TRACELENS_MAX_DOCUMENT_BYTES); raise the limit to read it"
            )
        return data

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(1-based line number, line without its newline) for every line, blank ones included.

        A line longer than the document-size limit raises ``LimitExceeded`` after reading at most
        that many bytes of it.
        """
        limit = limits.current().max_document_bytes
        with self.open() as stream:
            readline = stream.readline
            number = 0
            while line := readline(limit + 1):
                number += 1
                if len(line) > limit:
                    _check_line(line, limit, self.name, number)
                yield number, line.rstrip(b"\r\n")

    def __repr__(self) -> str:
        return f"InputSource({self.name!r})"


def read_line(stream: IO[bytes], limit: int, name: str, number: int) -> bytes:
    """The next line of ``stream`` (with its newline; b"" at the end), at most ``limit`` bytes
    before the newline; a longer line raises ``LimitExceeded`` naming ``name:number``."""
    line = stream.readline(limit + 1)
    if len(line) > limit:
        _check_line(line, limit, name, number)
    return line


def _check_line(line: bytes, limit: int, name: str, number: int) -> None:
    # readline(limit + 1) returned limit + 1 bytes: fine only if the last one is the newline.
    if len(line) == limit + 1 and line.endswith(b"\n"):
        return
    raise limits.LimitExceeded(
        f"{name}:{number}: line longer than {limits.format_size(limit)} "
        "(TRACELENS_MAX_DOCUMENT_BYTES); raise the limit to read it"
    )


@dataclass
class ReadStats:
    """What one reader did with one input. ``records`` + ``skipped`` = ``lines`` always; a bad
    span inside a line or document that was read counts in ``skipped_items`` instead, so the
    spans read plus ``skipped_items`` are the spans of the lines read. A span that was read but
    altered (``ALTERATIONS``) counts in ``ignored``."""

    format: str
    lines: int = 0  # physical lines (line formats) or documents (document formats)
    records: int = 0  # lines/documents read successfully, whatever they contained
    skipped: int = 0  # malformed lines/documents
    skipped_items: int = 0  # malformed spans/records dropped from a line/document that was read
    ignored: dict[str, int] = field(default_factory=dict)  # well-formed but not telemetry we use
    problems: list[tuple[str, str]] = field(default_factory=list)  # (location, reason), first few
    #: Sentences for the user about this input that are not malformed records (a ``--field``
    #: key no line has); ingest prefixes the input's name and adds them to Telemetry.warnings.
    warnings: list[str] = field(default_factory=list)
    #: Flattened keys of the first few records of a JSON-lines input, sorted, so that a message
    #: about logs that give nothing to analyse can show what the lines hold.
    sample_keys: list[str] = field(default_factory=list)

    def skip(self, location: str, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((location, reason))

    def skip_item(self, location: str, reason: str) -> None:
        """A span or record inside a readable line/document is malformed: drop and count it."""
        self.skipped_items += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((location, reason))

    def ignore(self, what: str, count: int = 1) -> None:
        self.ignored[what] = self.ignored.get(what, 0) + count

    def alter(self, location: str, what: str, count: int = 1, detail: str = "") -> None:
        """Part of a record that was read had to be dropped or replaced (``what`` is one of
        ``ALTERATIONS``): counted in ``ignored`` rather than as a skip, since the record is
        kept, and listed with the problems, so that --strict still refuses the input."""
        self.ignore(what, count)
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((location, f"{what}{f': {detail}' if detail else ''}"))

    def alteration_notes(self) -> list[str]:
        """One sentence per kind of alteration this input had, for the user's warnings."""
        notes = []
        for what in ALTERATIONS:
            count = self.ignored.get(what)
            if not count:
                continue
            first = next((loc for loc, reason in self.problems if reason.startswith(what)), None)
            where = f"; first at {first}" if first else ""
            notes.append(f"{count:,} {what}{where}; pass --strict to fail instead")
        return notes

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add(self, part: ReadStats) -> None:
        """Add the accounting of a later part of the same input (a block, a byte range)."""
        self.lines += part.lines
        self.records += part.records
        self.skipped += part.skipped
        self.skipped_items += part.skipped_items
        for what, count in part.ignored.items():
            self.ignore(what, count)
        self.problems.extend(part.problems[: max(0, MAX_PROBLEMS_KEPT - len(self.problems))])
        for message in part.warnings:
            self.warn(message)
        if not self.sample_keys:
            self.sample_keys = list(part.sample_keys)


@dataclass
class ReadResult:
    stats: ReadStats
    spans: pl.DataFrame = field(default_factory=empty_spans)
    logs: pl.DataFrame = field(default_factory=empty_logs)
    #: (log rows, timestamp resolution in ns) in row order, for an input holding the logs of
    #: several files (a dataset): each file's clock keeps its own resolution. None: one run.
    log_resolutions: list[tuple[int, int]] | None = None
    #: a part read in ranges and handed to a sink where it was read: what the sink returned
    #: (the frames are then empty), and the input's lines before the part
    receipt: object = None
    line_offset: int = 0


#: The column of a written log table (a dataset's, a `convert -o` file's) holding, per row, the
#: timestamp resolution in ns of the file the line came from (0: unknown).
RESOLUTION_COLUMN = "_resolution_ns"


def resolution_runs(resolutions: pl.Series) -> list[tuple[int, int]]:
    """``ReadResult.log_resolutions`` of a ``RESOLUTION_COLUMN``: (rows, ns) runs in row order."""
    if not resolutions.len():
        return []
    runs = resolutions.rle().struct.unnest()
    return [(int(rows), int(ns or 0)) for rows, ns in runs.iter_rows()]


@dataclass
class BatchResult:
    """Several inputs read together: their rows in one span and one log frame (in input order),
    and per input its accounting and how many of those rows it gave."""

    stats: list[ReadStats]
    span_counts: list[int]
    log_counts: list[int]
    spans: pl.DataFrame = field(default_factory=empty_spans)
    logs: pl.DataFrame = field(default_factory=empty_logs)


#: (input, options, range_bytes, sink or None) -> the parts, or None when the input cannot be cut
RangesReader = Callable[
    [InputSource, ReadOptions, int, Callable[[ReadResult, int], object] | None],
    Iterator[ReadResult] | None,
]


@dataclass(frozen=True)
class ReaderSpec:
    name: str  # the --input-format value
    description: str  # one line for `tracelens formats`
    accepts: str  # what shapes it takes, for `tracelens formats`
    sniff: Callable[[bytes], bool]
    read: Callable[[InputSource, ReadOptions], ReadResult]
    #: lower runs first when several sniffers could claim an input
    priority: int = 50
    #: reads many small inputs into one frame (``read`` builds and normalises frames per input,
    #: which costs ~2 ms however small the input: 20 s for 10,000 one-span files); each input
    #: gets the same rows and accounting ``read`` gives it. None: ``read`` them one by one.
    read_many: Callable[[Sequence[InputSource], ReadOptions], BatchResult] | None = None
    #: reads a large input about ``range_bytes`` at a time (results in input order, locations
    #: those of the whole input), when it can be cut (a file of lines); None: it cannot. Given a
    #: sink (``support.parallel.RangeSink``), each part's frames go to it where they are read.
    read_ranges: RangesReader | None = None
