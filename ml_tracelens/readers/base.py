"""The contract every format reader follows.

A reader is a module exposing ``READER = ReaderSpec(...)``: a ``sniff`` that looks at the first
bytes of an input (already decompressed) and says whether the format is its own, and a ``read``
that turns the whole input into canonical span and log frames (see ``schema.py``) plus the
accounting of what it read and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl

from ml_tracelens.schema import empty_logs, empty_spans

#: How many malformed records each input keeps with their location for messages.
MAX_PROBLEMS_KEPT = 5


@dataclass(frozen=True)
class ReadOptions:
    """What the user told us about the inputs."""

    #: canonical log field -> the key holding it in the user's logs (``--field time=ts``)
    field_map: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False


class InputSource:
    """One input: a file (maybe gzipped) or stdin; opened as decompressed bytes."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], IO[bytes]],
        size: int | None = None,
        path: Path | None = None,
        file_path: Path | None = None,
    ):
        self.name = name
        self._opener = opener
        self.size = size
        #: set for plain (uncompressed) regular files, so native readers can scan them directly
        self.path = path
        #: the file on disk (plain or compressed), for cache keys; None for stdin and pipes
        self.file_path = file_path if file_path is not None else path

    def open(self) -> IO[bytes]:
        return self._opener()

    def read_bytes(self) -> bytes:
        with self.open() as stream:
            return stream.read()

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(1-based line number, line without its newline) for every line, blank ones included."""
        with self.open() as stream:
            for number, line in enumerate(stream, start=1):
                yield number, line.rstrip(b"\r\n")

    def __repr__(self) -> str:
        return f"InputSource({self.name!r})"


@dataclass
class ReadStats:
    """What one reader did with one input. ``records`` + ``skipped`` = ``lines`` for line formats."""

    format: str
    lines: int = 0  # physical lines (line formats) or documents (document formats)
    records: int = 0  # lines/documents read successfully, whatever they contained
    skipped: int = 0  # malformed lines/documents
    ignored: dict[str, int] = field(default_factory=dict)  # well-formed but not telemetry we use
    problems: list[tuple[str, str]] = field(default_factory=list)  # (location, reason), first few

    def skip(self, location: str, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((location, reason))

    def ignore(self, what: str, count: int = 1) -> None:
        self.ignored[what] = self.ignored.get(what, 0) + count


@dataclass
class ReadResult:
    stats: ReadStats
    spans: pl.DataFrame = field(default_factory=empty_spans)
    logs: pl.DataFrame = field(default_factory=empty_logs)


@dataclass(frozen=True)
class ReaderSpec:
    name: str  # the --input-format value
    description: str  # one line for `tracelens formats`
    accepts: str  # what shapes it takes, for `tracelens formats`
    sniff: Callable[[bytes], bool]
    read: Callable[[InputSource, ReadOptions], ReadResult]
    #: lower runs first when several sniffers could claim an input
    priority: int = 50
