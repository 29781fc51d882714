"""A cache of analysed dumps, so the second command on the same files starts in a blink.

Key: tracelens version, entry format, everything that decides what a read gives (input format,
read options, the safety limits of ``limits.py``), and every input's real path, device, inode,
size, modification and change times (nanoseconds). A changed, touched, replaced (even by a file
of the same size and mtime: ``cp -p B tmp; mv tmp A``), added or removed file gives another key,
so an entry is never stale. Entries are Parquet files of the analysed spans and the logs, plus a
JSON file of what was read (inputs, warnings, structure); all three are written under temporary
names and renamed, so a reader never sees half an entry.

Where: ``$TRACELENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracelens``, else ``~/.cache/tracelens``,
created user-only (0700); a directory other users can write to is not used at all. Size: the
oldest entries go once the cache passes ``$TRACELENS_CACHE_MAX_MB`` (default 2048). Inputs smaller than ``$TRACELENS_CACHE_MIN_MB``
(default 8) are not cached: they read faster than the cache would. A cache that cannot be read or
written is ignored: it never fails a command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ml_tracelens import __version__, limits
from ml_tracelens.core import Analysis, Structure
from ml_tracelens.readers.base import ReadOptions, ReadStats
from ml_tracelens.telemetry import InputSummary, Telemetry

#: 3: resource attributes in their own column
#: 4: log rows carry parent_span_id, error and unread_reason
FORMAT_VERSION = 4
_SUFFIXES = (".spans.parquet", ".logs.parquet", ".json")


def cache_dir() -> Path:
    configured = os.environ.get("TRACELENS_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracelens"


def _env_mb(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def cache_key(
    paths: Sequence[str], *, input_format: str | None, options: ReadOptions
) -> str | None:
    """The key for these inputs, or None when they must not be cached (stdin, small inputs)."""
    if not paths or any(p == "-" for p in paths):
        return None
    from ml_tracelens.inputs import resolve  # expands dirs/globs exactly as a read would

    fingerprint: list[Any] = [__version__, FORMAT_VERSION]
    total = 0
    try:
        fingerprint.append(_reading_settings(input_format=input_format, options=options))
        sources = resolve(paths).sources
        for source in sources:
            if source.file_path is None:
                return None
            info = source.file_path.stat()
            total += info.st_size
            fingerprint.append(
                [
                    str(source.file_path.resolve()),
                    info.st_dev,
                    # A file replaced by another (``mv``) has another inode, and ``cp -p`` or
                    # ``touch`` can set the mtime but not the ctime, which the kernel stamps.
                    info.st_ino,
                    info.st_size,
                    info.st_mtime_ns,
                    info.st_ctime_ns,
                ]
            )
        key = hashlib.sha256(orjson.dumps(fingerprint)).hexdigest()[:32]
    except Exception:  # an input or setting error is reported by the real read, not here
        return None
    if total < _env_mb("TRACELENS_CACHE_MIN_MB", 8) * 1024 * 1024:
        return None
    return key


def _reading_settings(*, input_format: str | None, options: ReadOptions) -> dict[str, Any]:
    """Every setting besides the files themselves that changes what a read gives.

    All fields of ``ReadOptions`` and of ``limits.Limits`` are taken, so an option or a limit
    added later is in the key without anyone remembering to add it. The parallel-read settings
    (``TRACELENS_WORKERS``, ``TRACELENS_PARALLEL_MIN_MB``) are not: a parallel read gives
    exactly the serial read's tables (tests/test_parallel_read.py).
    """
    settings: dict[str, Any] = {
        "input_format": input_format,
        "limits": asdict(limits.current()),
    }
    for option in fields(options):
        value = getattr(options, option.name)
        settings[option.name] = sorted(value.items()) if isinstance(value, Mapping) else value
    return settings


def load(key: str, *, without: Collection[str] = ()) -> tuple[Telemetry, Analysis] | None:
    """The entry for ``key``, or None. Span columns named in ``without`` are not read: a report
    that never looks at attributes reads a tenth of the bytes (Parquet reads column by column)."""
    entry = _entry(key)
    if entry is None:
        return None
    base, meta, telemetry, structure = entry
    try:
        columns = [c for c in meta["analysis_columns"] if c not in without]
        spans = pl.read_parquet(f"{base}.spans.parquet", columns=columns, glob=False)
        logs = pl.read_parquet(f"{base}.logs.parquet", glob=False)
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None
    # One chunk per row group comes back; as in ingest, one copy now spares one per later step.
    spans, logs = spans.rechunk(), logs.rechunk()
    telemetry.spans = spans.select([c for c in meta["span_columns"] if c in columns])
    telemetry.logs = logs
    return telemetry, Analysis(spans=spans, structure=structure)


def scan(key: str) -> tuple[Telemetry, pl.LazyFrame, pl.LazyFrame] | None:
    """The entry for ``key`` left on disk: how the dump was read (a Telemetry whose frames are
    empty), and lazy scans of the analysed spans and of the logs. A query that filters on
    trace_id reads that trace's rows only, so looking at one trace of a big dump costs little."""
    entry = _entry(key)
    if entry is None:
        return None
    base, meta, telemetry, _ = entry
    try:
        spans = pl.scan_parquet(f"{base}.spans.parquet", glob=False)
        logs = pl.scan_parquet(f"{base}.logs.parquet", glob=False)
        telemetry.spans = pl.DataFrame(schema=spans.collect_schema()).select(meta["span_columns"])
        telemetry.logs = pl.DataFrame(schema=logs.collect_schema())
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None
    return telemetry, spans, logs


def _entry(key: str) -> tuple[Path, dict[str, Any], Telemetry, Structure] | None:
    """The base path, metadata, Telemetry (frames empty) and structure of an entry, or None."""
    directory = cache_dir()
    if not _private(directory):
        return None
    base = directory / key
    try:
        meta = orjson.loads((base.with_suffix(".json")).read_bytes())
        inputs = [
            InputSummary(
                path=i["path"],
                format=i["format"],
                spans=i["spans"],
                logs=i["logs"],
                stats=ReadStats(**i["stats"]),
            )
            for i in meta["inputs"]
        ]
        structure = meta["structure"]
        structure["skew_by_service_pair"] = {
            tuple(pair): count for pair, count in structure["skew_by_service_pair"]
        }
        telemetry = Telemetry(
            spans=pl.DataFrame(),
            logs=pl.DataFrame(),
            inputs=inputs,
            warnings=meta["warnings"],
            merged_duplicates=meta["merged_duplicates"],
            derived_spans=meta["derived_spans"],
            log_span_lines=meta["log_span_lines"],
            derived_roots=meta["derived_roots"],
            log_lines_not_spans=meta["log_lines_not_spans"],
        )
        result = base, meta, telemetry, Structure(**structure)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with contextlib.suppress(OSError):
        os.utime(base.with_suffix(".json"))  # least recently used goes first
    return result


def store(key: str, telemetry: Telemetry, analysis: Analysis) -> None:
    """Write an entry; any failure leaves no partial entry and raises nothing."""
    directory = cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory):
            return
        structure = asdict(analysis.structure)
        structure["skew_by_service_pair"] = [
            [list(pair), count] for pair, count in analysis.structure.skew_by_service_pair.items()
        ]
        meta = {
            "inputs": [
                {
                    "path": i.path,
                    "format": i.format,
                    "spans": i.spans,
                    "logs": i.logs,
                    "stats": asdict(i.stats),
                }
                for i in telemetry.inputs
            ],
            "warnings": telemetry.warnings,
            "merged_duplicates": telemetry.merged_duplicates,
            "derived_spans": telemetry.derived_spans,
            "log_span_lines": telemetry.log_span_lines,
            "derived_roots": telemetry.derived_roots,
            "log_lines_not_spans": telemetry.log_lines_not_spans,
            "span_columns": telemetry.spans.columns,
            "analysis_columns": analysis.spans.columns,
            "structure": structure,
        }
        # lz4 without statistics: on 1M analysed spans 0.9 s to write and 0.3 s to read, against
        # 1.5 s and 0.4 s with the default zstd; the entry is a third larger (63 vs 40 MB).
        options = {"compression": "lz4", "statistics": False}
        _atomic_write(
            directory, f"{key}.spans.parquet", lambda f: analysis.spans.write_parquet(f, **options)
        )
        _atomic_write(
            directory, f"{key}.logs.parquet", lambda f: telemetry.logs.write_parquet(f, **options)
        )
        _atomic_write(directory, f"{key}.json", lambda f: f.write(orjson.dumps(meta)))
        prune(directory, max_bytes=int(_env_mb("TRACELENS_CACHE_MAX_MB", 2048) * 1024 * 1024))
    except (OSError, pl.exceptions.PolarsError, TypeError, ValueError):
        return


def _private(directory: Path) -> bool:
    """Whether only this user can write ``directory``: in a directory others can write to,
    anyone could plant an entry that a later command would report as the user's data."""
    getuid = getattr(os, "getuid", None)
    try:
        info = directory.stat()
    except OSError:
        return False
    owned = getuid is None or info.st_uid == getuid()
    return stat.S_ISDIR(info.st_mode) and owned and not info.st_mode & 0o022


def _atomic_write(directory: Path, name: str, write: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=name)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def prune(directory: Path, *, max_bytes: int) -> None:
    """Remove the least recently used entries until the cache fits in ``max_bytes``."""
    entries: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        for suffix in _SUFFIXES:
            if path.name.endswith(suffix) and not path.name.startswith("."):
                entries.setdefault(path.name.removesuffix(suffix), []).append(path)
    sized = []
    for key, files in entries.items():
        try:
            stamp = max(f.stat().st_mtime for f in files)
            size = sum(f.stat().st_size for f in files)
        except OSError:
            continue
        sized.append((stamp, size, key, files))
    total = sum(size for _, size, _, _ in sized)
    for _, size, _, files in sorted(sized):
        if total <= max_bytes:
            break
        for file in files:
            with contextlib.suppress(OSError):
                file.unlink()
        total -= size
