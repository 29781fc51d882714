"""Turn the paths a user typed (files, directories, globs, ``-``) into input sources.

What is read, and what is not:

* A file named explicitly is read, whatever it is (a symlink is followed; a FIFO, a device or
  ``/dev/stdin`` is read once, like stdin).
* A directory is walked recursively, iteratively (any depth) and in name order. Hidden names,
  and names that are never telemetry (``.md``, ``.py``...), are passed over. Symlinked
  directories are not followed (so a link loop cannot recurse); a symlinked file is read only if
  it points inside the directory, so a dump cannot make tracelens read, say, ``~/.aws``. FIFOs,
  devices and sockets are skipped with a warning: opening one could block or never end.
* A glob (for shells that did not expand it) follows the same rules for what it matches:
  ``**`` never descends into symlinked directories, and matched symlinks must point inside
  the pattern's fixed leading directory.

``.gz`` inputs are recognised by their magic bytes, whatever their name, and decompressed while
streaming, never into memory, under the ratio limit of ``limits.py``: a "gzip bomb" stops with
``LimitExceeded`` (exit 2) after at most ~64 MiB of output. Streams (stdin, FIFOs, devices) can
be read only once but readers open an input more than once (sniff, then read), so their bytes
are kept in memory, up to ``TRACELENS_MAX_STREAM_BYTES``; they are read on first use, not when
resolved, so resolving twice (the cache key, then the read) does not drain a pipe.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ml_tracelens import limits
from ml_tracelens.exceptions import InputError
from ml_tracelens.readers.base import InputSource

GZIP_MAGIC = b"\x1f\x8b"
#: Names a directory walk passes over without a word: documentation, code and configuration,
#: never telemetry. (Not ``.txt``: ``kubectl logs POD > pod.txt`` is a log.)
SKIPPED_SUFFIXES = (".md", ".py", ".toml", ".yaml", ".yml", ".csv", ".lock", ".pyc")
_CHUNK = 1024 * 1024


@dataclass
class ResolvedInputs:
    sources: list[InputSource]
    warnings: list[str] = field(default_factory=list)


def resolve(paths: Iterable[str], *, stdin: IO[bytes] | None = None) -> ResolvedInputs:
    """Expand the user's paths, in the order given, without duplicates."""
    paths = list(paths)
    resolved = ResolvedInputs(sources=[])
    seen: set[str] = set()
    for raw in paths:
        if raw == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer

            def opened(stream: IO[bytes] = stream) -> IO[bytes]:
                return stream

            resolved.sources.append(_stream_source("<stdin>", opened, owned=False))
            continue
        for path, explicit in _expand(raw, resolved.warnings):
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            source = _file_source(path, explicit=explicit, warnings=resolved.warnings)
            if source is not None:
                resolved.sources.append(source)
    if not resolved.sources:
        raise InputError("no input files found in " + ", ".join(map(str, paths)))
    return resolved


def _expand(raw: str, warnings: list[str]) -> list[tuple[Path, bool]]:
    path = Path(raw)
    if path.is_dir() and _is_dataset(path):
        return [(path, True)]
    if path.is_dir():
        found = list(_walk(path, warnings))
        if not found:
            raise InputError(f"{raw}: directory holds no files to read")
        return [(p, False) for p in found]
    if path.exists() or path.is_symlink():
        return [(path, True)]
    if glob.has_magic(raw):
        matches = _glob(raw, warnings)
        if not matches:
            raise InputError(f"{raw}: pattern matches no files")
        out: list[tuple[Path, bool]] = []
        for match in matches:
            if _is_dataset(match):
                out.append((match, False))
            elif match.is_dir():
                out.extend((p, False) for p in _walk(match, warnings))
            else:
                out.append((match, False))
        return out
    raise InputError(f"{raw}: no such file or directory")


def _walk(top: Path, warnings: list[str]) -> Iterator[Path]:
    """Files under ``top`` in name order, depth first, with an explicit stack (no recursion)."""
    root = os.path.realpath(top)
    stack = [top]
    while stack:
        directory = stack.pop()
        files, subdirectories = _list(directory, root, warnings)
        yield from files
        stack.extend(reversed(subdirectories))


def _list(directory: Path, root: str, warnings: list[str]) -> tuple[list[Path], list[Path]]:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        warnings.append(
            f"{display_name(directory)}: skipped, cannot list it ({exc.strerror or exc})"
        )
        return [], []
    files: list[Path] = []
    subdirectories: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                # A dataset is one input, read as a whole, not a directory of Parquet files.
                (files if _is_dataset(path) else subdirectories).append(path)
                continue
            if entry.is_symlink() and not _safe_link(path, root, warnings):
                continue
        except OSError:
            continue
        if not entry.name.endswith(SKIPPED_SUFFIXES):
            files.append(path)
    return files, subdirectories


def _safe_link(path: Path, root: str, warnings: list[str]) -> bool:
    """Whether a symlink met while walking or globbing may be followed."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        warnings.append(f"{display_name(path)}: skipped, a symlinked directory is not followed")
        return False
    if os.path.commonpath([target, root]) != root:
        warnings.append(
            f"{display_name(path)}: skipped, a symlink to a file outside "
            f"{display_name(Path(root))} (name it explicitly to read it)"
        )
        return False
    return True


def _glob(pattern: str, warnings: list[str]) -> list[Path]:
    """``glob.glob`` semantics (hidden names need a pattern starting with a dot), except that
    ``**`` never follows symlinked directories and runs without recursion."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    base = Path(*parts[:fixed]) if fixed else Path()
    root = os.path.realpath(base)
    candidates = [base]
    for index, part in enumerate(parts[fixed:], start=fixed):
        last = index == len(parts) - 1
        following: list[Path] = []
        for directory in candidates:
            if part == "**":
                following.extend(_all_directories(directory))
            elif glob.has_magic(part):
                following.extend(_matching(directory, part))
            else:
                following.append(directory / part)
        # Every component but the last must be a directory to go on from.
        candidates = following if last else [p for p in following if p.is_dir()]
    matches: list[Path] = []
    for path in sorted(set(candidates)):
        if not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() and not _safe_link(path, root, warnings):
            continue
        matches.append(path)
    return matches


def _matching(directory: Path, part: str) -> Iterator[Path]:
    try:
        with os.scandir(directory) as scan:
            names = [e.name for e in scan]
    except OSError:
        return
    for name in sorted(fnmatch.filter(names, part)):
        if not name.startswith(".") or part.startswith("."):
            yield directory / name


def _all_directories(top: Path) -> Iterator[Path]:
    stack = [top]
    while stack:
        directory = stack.pop()
        yield directory
        try:
            with os.scandir(directory) as scan:
                below = sorted(
                    Path(e.path)
                    for e in scan
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                )
        except OSError:
            continue
        stack.extend(reversed(below))


def _file_source(path: Path, *, explicit: bool, warnings: list[str]) -> InputSource | None:
    try:
        info = path.stat()
    except OSError as exc:
        if not explicit:  # e.g. a dangling symlink in a directory of dumps
            warnings.append(
                f"{display_name(path)}: skipped, cannot read it ({exc.strerror or exc})"
            )
            return None
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    name = display_name(path)
    if stat.S_ISDIR(info.st_mode) and _is_dataset(path):
        return InputSource(name, lambda: _open(path), path=path, file_path=None, found=not explicit)
    if not stat.S_ISREG(info.st_mode):
        if not explicit:
            warnings.append(
                f"{display_name(path)}: skipped, not a regular file (name it explicitly to read it)"
            )
            return None
        # Named explicitly (a FIFO, /dev/stdin, a process substitution): read once, like stdin.
        return _stream_source(name, lambda: _open(path), owned=True)
    try:
        with _open(path) as probe:
            magic = probe.read(2)
    except OSError as exc:  # opened, but the kernel refuses to read it (EIO...)
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if magic == GZIP_MAGIC:
        return InputSource(
            name,
            lambda: BoundedGzip.wrap(_open(path), name),
            size=info.st_size,
            file_path=path,
            found=not explicit,
        )
    return InputSource(name, lambda: _open(path), size=info.st_size, path=path, found=not explicit)


def _is_dataset(path: Path) -> bool:
    """A trace-bucketed dataset (readers/dataset.py): one input, recognised before a directory
    is walked. Not a cached input: its file_path stays None (it is Parquet already)."""
    from ml_tracelens.readers.dataset import is_dataset

    return is_dataset(path)


def display_name(path: Path) -> str:
    """``path`` as text that can always be printed and stored: bytes that are not UTF-8 (which
    Python keeps as lone surrogates) are shown as ``\\xNN``."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise limits.os_limit_error(exc) or InputError(
            f"{path}: cannot read ({exc.strerror or exc})"
        ) from exc


def _stream_source(name: str, open_stream: Callable[[], IO[bytes]], *, owned: bool) -> InputSource:
    buffer = _StreamBuffer(name, open_stream, owned=owned)
    return InputSource(name, buffer.open)


class _StreamBuffer:
    """The bytes of a stream, read on first use (at most the stream limit) and replayed."""

    def __init__(self, name: str, open_stream: Callable[[], IO[bytes]], *, owned: bool) -> None:
        self.name = name
        self._open_stream = open_stream
        self._owned = owned  # close it when done (a FIFO we opened; not stdin)
        self._data: bytes | None = None

    def open(self) -> IO[bytes]:
        data = self._read()
        if data[:2] == GZIP_MAGIC:
            return BoundedGzip.wrap(io.BytesIO(data), self.name)
        return io.BytesIO(data)

    def _read(self) -> bytes:
        if self._data is not None:
            return self._data
        cap = limits.current().max_stream_bytes
        chunks: list[bytes] = []
        total = 0
        stream = self._open_stream()
        try:
            while chunk := stream.read(_CHUNK):
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:
                    raise limits.LimitExceeded(
                        f"{self.name}: more than {limits.format_size(cap)} from a stream "
                        "(TRACELENS_MAX_STREAM_BYTES); save it to a file and name the file"
                    )
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read ({exc.strerror or exc})") from exc
        finally:
            if self._owned:
                stream.close()
        self._data = b"".join(chunks)
        return self._data


class BoundedGzip(io.RawIOBase):
    """Decompressed bytes of a gzip stream, refused once they outgrow the ratio limit.

    Output is produced in bounded reads, never all at once; the compressed bytes consumed so far
    are counted, and past ``GZIP_RATIO_FLOOR`` of output the output may not exceed
    ``max_gzip_ratio`` times them. Corrupt or truncated data becomes an ``InputError``.
    """

    def __init__(self, compressed: IO[bytes], name: str) -> None:
        super().__init__()
        self.name = name
        self._counted = _CountingReader(compressed)
        self._gzip = gzip.GzipFile(fileobj=self._counted, mode="rb")
        self._ratio = limits.current().max_gzip_ratio
        self._produced = 0

    @classmethod
    def wrap(cls, compressed: IO[bytes], name: str) -> IO[bytes]:
        return io.BufferedReader(cls(compressed, name), buffer_size=256 * 1024)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            # A bounded step, however much the caller asks for (a reader asks for 128 MiB at
            # once): the ratio is checked every step, so a bomb stops just past the floor.
            data = self._gzip.read(min(len(buffer), _CHUNK))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"{self.name}: truncated or corrupt gzip data ({exc})") from exc
        size = len(data)
        buffer[:size] = data
        self._produced += size
        if self._ratio and self._produced > limits.GZIP_RATIO_FLOOR:
            allowed = self._ratio * max(self._counted.count, 1)
            if self._produced > allowed:
                raise limits.LimitExceeded(
                    f"{self.name}: decompresses to more than {self._ratio:g}× its compressed "
                    f"size (over {limits.format_size(self._produced)} from "
                    f"{limits.format_size(self._counted.count)}): refusing a likely "
                    "decompression bomb; set TRACELENS_MAX_GZIP_RATIO=0 to read it anyway"
                )
        return size

    def close(self) -> None:
        if not self.closed:
            try:
                self._gzip.close()
            finally:
                self._counted.close()
        super().close()


class _CountingReader:
    """A read-only file that counts the bytes read through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.count = 0
        self.mode = "rb"

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data

    def seek(self, offset: int, whence: int = 0, /) -> int:
        # Part of the file type gzip takes, which it calls only to rewind: never done here.
        raise io.UnsupportedOperation("seek")

    def close(self) -> None:
        self._inner.close()
