"""Turn the paths a user typed (files, directories, globs, ``-``) into input sources.

Directories are walked recursively without following symlinked directories (no loops); FIFOs,
devices and sockets found inside a directory are skipped with a warning, but read when named
explicitly. ``.gz`` inputs are decompressed while streaming, whatever their name, by magic bytes.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ml_tracelens.errors import InputError
from ml_tracelens.readers.base import InputSource

GZIP_MAGIC = b"\x1f\x8b"
#: Names a directory walk passes over: they are never telemetry.
_SKIPPED_SUFFIXES = (".md", ".txt", ".py", ".toml", ".yaml", ".yml", ".csv", ".lock", ".pyc")


@dataclass
class ResolvedInputs:
    sources: list[InputSource]
    warnings: list[str] = field(default_factory=list)


def resolve(paths: Iterable[str], *, stdin: IO[bytes] | None = None) -> ResolvedInputs:
    """Expand the user's paths, in the order given, without duplicates."""
    resolved = ResolvedInputs(sources=[])
    seen: set[str] = set()
    for raw in paths:
        if raw == "-":
            resolved.sources.append(_stdin_source(stdin))
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
    if path.is_dir():
        found = list(_walk(path, warnings))
        if not found:
            raise InputError(f"{raw}: directory holds no files to read")
        return [(p, False) for p in found]
    if path.exists() or path.is_symlink():
        return [(path, True)]
    if glob.has_magic(raw):
        matches = sorted(glob.glob(raw, recursive=True))
        if not matches:
            raise InputError(f"{raw}: pattern matches no files")
        out: list[tuple[Path, bool]] = []
        for match in matches:
            out.extend(_expand(match, warnings))
        return out
    raise InputError(f"{raw}: no such file or directory")


def _walk(top: Path, warnings: list[str]) -> Iterable[Path]:
    # os.walk does not follow symlinked directories by default, so a link loop cannot recurse.
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: warnings.append(str(e))):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            yield Path(dirpath) / name


def _file_source(path: Path, *, explicit: bool, warnings: list[str]) -> InputSource | None:
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        if not explicit:
            warnings.append(f"{path}: skipped, not a regular file (name it explicitly to read it)")
            return None
        # Named explicitly (a FIFO, /dev/stdin): read once, like stdin.
        try:
            with path.open("rb") as stream:
                data = stream.read()
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        return _bytes_source(str(path), data)
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if magic == GZIP_MAGIC:
        return InputSource(
            str(path), lambda: gzip.open(path, "rb"), size=info.st_size, file_path=path
        )
    return InputSource(str(path), lambda: path.open("rb"), size=info.st_size, path=path)


def _stdin_source(stdin: IO[bytes] | None) -> InputSource:
    stream = stdin if stdin is not None else sys.stdin.buffer
    return _bytes_source("<stdin>", stream.read())


def _bytes_source(name: str, data: bytes) -> InputSource:
    # A stream can be read once; keep its bytes so sniffing and reading both see them.
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{name}: corrupt gzip data ({exc})") from exc
    return InputSource(name, lambda: io.BytesIO(data), size=len(data))
