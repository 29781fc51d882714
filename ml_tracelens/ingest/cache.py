"""A cache of analysed dumps, so the second command on the same files starts in a blink.

Key: tracelens version, entry format, everything that decides what a read gives (input format,
read options, the safety limits of ``limits.py``), and every input's real path, device, inode,
size, modification and change times (nanoseconds). A changed, touched, replaced (even by a file
of the same size and mtime: ``cp -p B tmp; mv tmp A``), added or removed file gives another key,
so an entry is never stale.

Entry: Parquet files of the analysed spans and of the logs, and a JSON record of what was read
(inputs, warnings, structure) holding a CRC-32 of each Parquet file and of itself. A command
that reads attribute pairs (``why``) also finds there the spans' attribute codes and what each
code holds (``core.attribute_pairs``), two more Parquet files in the record: written with the
entry by such a command, or added to an entry that lacks them by the first one to use it (the
record is then written again, with their checksums and the parser's version). Tables a report
derives from the spans (``core.Derived``: `why`'s index of the requests) are added the same way,
a Parquet file each, named by the report and the table, with their version in the record; a
command finding them reads no spans. Each file is
written under a temporary name and renamed; the record goes last, so a reader never sees half
an entry. A reader checks the bytes it parses against the record: a flipped bit, a truncated or
missing file, or an entry pruned meanwhile is a miss, and the entry is removed (the command then
reads the dump and, if it stores entries, writes a new one).

Where: ``$TRACELENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracelens``, else ``~/.cache/tracelens``,
created user-only (0700); a directory other users can write to is not used at all. Size: the
oldest entries go once the cache passes ``$TRACELENS_CACHE_MAX_MB`` (default 2048), and so do
temporary files a killed write left behind. Inputs smaller than ``$TRACELENS_CACHE_MIN_MB``
(default 8) are not cached: they read faster than the cache would. A cache that cannot be read
or written is ignored: it never fails a command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ml_tracelens import __version__, limits
from ml_tracelens.core import Analysis, Derived, Structure
from ml_tracelens.core.attribute_pairs import COLUMNS as ATTRIBUTE_COLUMNS
from ml_tracelens.core.attribute_pairs import PARSER_VERSION, AttributePairs
from ml_tracelens.ingest.entry_files import (
    RECORD,
    TEMPORARY_PREFIX,
    parquet_writer,
    private,
    read_verified,
    seal,
    unseal,
    verified_bytes,
    write_file,
)
from ml_tracelens.ingest.held_signals import HeldSignals, signals_held
from ml_tracelens.ingest.telemetry import InputSummary, Telemetry
from ml_tracelens.readers.base import ReadOptions, ReadStats
from ml_tracelens.schema import empty_logs

#: 3: resource attributes in their own column
#: 4: log rows carry parent_span_id, error and unread_reason
#: 5: the record holds checksums of the entry's files (a header line before the metadata)
#: 6: an entry may hold the attribute pairs of its spans
FORMAT_VERSION = 7
_SPANS = ".spans.parquet"
_LOGS = ".logs.parquet"
_CODES = ".codes.parquet"
_PAIRS = ".pairs.parquet"
_SUFFIXES = (_SPANS, _LOGS, RECORD, _CODES, _PAIRS)
#: Derived tables are files ``KEY.derived-NAME-TABLE.parquet``.
_DERIVED = ".derived-"
_SAFE_NAME = re.compile(r"^[a-z][a-z_]*$")
#: A temporary file unchanged for this long was left by a write that was killed (SIGKILL, power
#: loss): prune removes it. A live write is done long before (a 10M-span entry takes about ten
#: seconds), so a concurrent writer's file survives.
STALE_TEMPORARY_SECONDS = 10 * 60


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
    from ml_tracelens.ingest.inputs import resolve  # expands dirs/globs exactly as a read would

    fingerprint: list[Any] = [__version__, FORMAT_VERSION]
    total = 0
    try:
        fingerprint.append(_reading_settings(input_format=input_format, options=options))
        sources = resolve(paths).sources
        for source in sources:
            # A dataset directory (readers/dataset.py) is Parquet already: not cached.
            if source.file_path is None or source.file_path.is_dir():
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
    exactly the serial read's tables (tests/ingest/test_parallel_read.py). Nor is the
    pushdown of filters: only dataset reads look at it, and datasets are not cached.
    """
    settings: dict[str, Any] = {
        "input_format": input_format,
        "limits": asdict(limits.current()),
    }
    for option in fields(options):
        if option.name == "pushdown":
            continue
        value = getattr(options, option.name)
        settings[option.name] = sorted(value.items()) if isinstance(value, Mapping) else value
    return settings


# --- reading an entry -------------------------------------------------------------------------


#: What reading a damaged entry can raise: a miss, whatever it is. A Rust panic in polars comes
#: as PanicException, which is not an Exception.
_UNREADABLE: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)


@dataclass
class _Entry:
    """An entry whose record was read and checked; its Parquet files are not read yet."""

    directory: Path
    key: str
    checksums: dict[str, int]
    meta: dict[str, Any]
    telemetry: Telemetry  # frames empty
    structure: Structure

    def path(self, suffix: str) -> Path:
        return self.directory / f"{self.key}{suffix}"

    def derived(self, wanted: Derived) -> list[str] | None:
        """The names of the entry's tables of ``wanted`` (of its version), or None."""
        kept = self.meta.get("derived", {}).get(wanted.name)
        if not kept or kept.get("version") != wanted.version:
            return None
        tables: list[str] = kept["tables"]
        if all(_derived_suffix(wanted.name, t) in self.checksums for t in tables):
            return tables
        return None

    def has_pairs(self) -> bool:
        """Whether the entry holds attribute pairs the current parser would give."""
        return (
            self.meta.get("pairs_version") == PARSER_VERSION
            and _CODES in self.checksums
            and _PAIRS in self.checksums
        )


def load(
    key: str,
    *,
    without: Collection[str] = (),
    logs: bool = True,
    pairs: bool = False,
    derived: Derived | None = None,
) -> tuple[Telemetry, Analysis] | None:
    """The entry for ``key``, or None. Span columns named in ``without`` are not read: a report
    that never looks at attributes decodes a tenth of the bytes (Parquet reads column by
    column). Without ``logs`` the log table is not read either (an empty one stands in): a
    report about spans alone spares the memory of a million log lines.

    With ``pairs`` the analysis comes with the entry's attribute pairs; an entry without them
    gives its attribute columns even if ``without`` names them, for the caller to parse (and
    ``add_pairs``). With ``derived``, an entry that holds its tables gives them
    (``Analysis.derived``) and no spans (no columns) and no pairs."""
    entry = _entry(key)
    if entry is None:
        return None
    try:
        kept = entry.derived(derived) if derived is not None else None
        tables = {}
        if derived is not None and kept is not None:
            tables[derived.name] = {
                table: read_verified(
                    entry.path(_derived_suffix(derived.name, table)),
                    entry.checksums[_derived_suffix(derived.name, table)],
                    lambda path: pl.read_parquet(path, glob=False),
                )
                for table in kept
            }
            pairs = False
        stored_pairs = _read_pairs(entry) if pairs and entry.has_pairs() else None
        needed = ATTRIBUTE_COLUMNS if pairs and stored_pairs is None else ()
        columns = [c for c in entry.meta["analysis_columns"] if c not in without or c in needed]
        spans = (
            pl.DataFrame()
            if tables
            else read_verified(
                entry.path(_SPANS),
                entry.checksums[_SPANS],
                lambda path: pl.read_parquet(path, columns=columns, glob=False),
            )
        )
        # Unread logs are still checked (a CRC costs a few ms): a damaged entry is a miss and
        # is rewritten by whichever command finds it.
        log_table = read_verified(
            entry.path(_LOGS),
            entry.checksums[_LOGS],
            (lambda path: pl.read_parquet(path, glob=False)) if logs else (lambda _: empty_logs()),
        )
        # One chunk per row group comes back; as in ingest, one copy now spares one per later
        # step.
        spans, log_table = spans.rechunk(), log_table.rechunk()
        telemetry = entry.telemetry
        telemetry.spans = spans.select(
            [c for c in entry.meta["span_columns"] if c in columns and c in spans.columns]
        )
        telemetry.logs = log_table
    except _UNREADABLE:
        _remove_entry(entry.directory, key)
        return None
    return telemetry, Analysis(
        spans=spans, structure=entry.structure, pairs=stored_pairs, derived=tables
    )


def _read_pairs(entry: _Entry) -> AttributePairs:
    """The entry's attribute pairs (its files checked as the others are)."""
    codes = read_verified(
        entry.path(_CODES), entry.checksums[_CODES], lambda path: pl.read_parquet(path, glob=False)
    )
    table = read_verified(
        entry.path(_PAIRS), entry.checksums[_PAIRS], lambda path: pl.read_parquet(path, glob=False)
    )
    return AttributePairs.unpacked(codes.rechunk(), table)


def scan(key: str) -> tuple[Telemetry, pl.LazyFrame, pl.LazyFrame] | None:
    """The entry for ``key`` as lazy frames: how the dump was read (a Telemetry whose frames are
    empty), and lazy scans of the analysed spans and of the logs. A query that filters on
    trace_id decodes that trace's rows only, so looking at one trace of a big dump costs little.

    The scans read the checked bytes held in memory, not the files: a lazy scan of a file opens
    it when the query runs, and by then another command may have pruned the entry."""
    entry = _entry(key)
    if entry is None:
        return None
    try:
        spans = pl.scan_parquet(verified_bytes(entry.path(_SPANS), entry.checksums[_SPANS]))
        logs = pl.scan_parquet(verified_bytes(entry.path(_LOGS), entry.checksums[_LOGS]))
        telemetry = entry.telemetry
        telemetry.spans = pl.DataFrame(schema=spans.collect_schema()).select(
            entry.meta["span_columns"]
        )
        telemetry.logs = pl.DataFrame(schema=logs.collect_schema())
    except _UNREADABLE:
        _remove_entry(entry.directory, key)
        return None
    return telemetry, spans, logs


def _entry(key: str) -> _Entry | None:
    """The entry's checked record, or None (then a damaged entry has been removed)."""
    directory = cache_dir()
    if not private(directory):
        return None
    try:
        record = (directory / f"{key}{RECORD}").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        _remove_entry(directory, key)
        return None
    try:
        checksums, meta = unseal(record)
        telemetry, structure = _described(meta)
    except _UNREADABLE:
        _remove_entry(directory, key)
        return None
    with contextlib.suppress(OSError):
        os.utime(directory / f"{key}{RECORD}")  # least recently used goes first
    return _Entry(directory, key, checksums, meta, telemetry, structure)


def _described(meta: dict[str, Any]) -> tuple[Telemetry, Structure]:
    """How the dump was read (a Telemetry with empty frames) and its structure, from the record."""
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
    structure = dict(meta["structure"])
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
        llm_spans=meta.get("llm_spans", 0),
        llm_fields=meta.get("llm_fields", {}),
        llm_stage_spans=meta.get("llm_stage_spans", 0),
        llm_overrides={
            name: (key, unit) for name, (key, unit) in meta.get("llm_overrides", {}).items()
        },
    )
    return telemetry, Structure(**structure)


# --- writing an entry -------------------------------------------------------------------------


#: lz4 without statistics: on 1M analysed spans 0.9 s to write and 0.3 s to read, against 1.5 s
#: and 0.4 s with the default zstd; the entry is a third larger (63 vs 40 MB).
_PARQUET: dict[str, Any] = {"compression": "lz4", "statistics": False}


def store(
    key: str,
    telemetry: Telemetry,
    analysis: Analysis,
    pairs: Callable[[], AttributePairs] | None = None,
) -> None:
    """Write an entry; any failure leaves no partial entry and raises nothing. ``pairs``: the
    attribute pairs of ``analysis.spans`` to keep with it, asked for once the spans and logs
    are written (they may be parsed meanwhile).

    SIGINT and SIGTERM are held meanwhile (see ``held_signals.signals_held``): they stop the write at the
    next file boundary and are delivered once its temporary file is removed.
    """
    directory = cache_dir()
    with signals_held() as held:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not private(directory):
                return
            meta = _metadata(telemetry, analysis)
            checksums = _write_frames(
                directory, key, {_SPANS: analysis.spans, _LOGS: telemetry.logs}, held
            )
            if pairs is not None:
                checksums |= _write_frames(directory, key, _pairs_frames(pairs()), held)
                meta["pairs_version"] = PARSER_VERSION
            record = seal(meta, checksums)
            write_file(directory, f"{key}{RECORD}", lambda f: f.write(record), held)
            held.stop_if_signalled()
            prune(directory, max_bytes=int(_env_mb("TRACELENS_CACHE_MAX_MB", 2048) * 1024 * 1024))
        except (OSError, pl.exceptions.PolarsError, TypeError, ValueError):
            return


def add_pairs(key: str, pairs: AttributePairs) -> None:
    """Keep ``pairs`` (of the spans of the entry for ``key``, in its row order) with the entry,
    when it has none yet; as ``store``, any failure raises nothing."""
    _add_to_entry(
        key,
        _pairs_frames(pairs),
        held_already=_Entry.has_pairs,
        meta=lambda meta: {**meta, "pairs_version": PARSER_VERSION},
    )


def add_derived(key: str, derived: Derived, tables: Mapping[str, pl.DataFrame]) -> None:
    """Keep the ``tables`` of ``derived`` with the entry for ``key``, when it has none of its
    version yet; as ``store``, any failure raises nothing."""
    names = [derived.name, *tables]
    if not all(_SAFE_NAME.match(name) for name in names):
        raise ValueError(f"derived table names must be lower-case words: {names}")

    def kept(meta: dict[str, Any]) -> dict[str, Any]:
        listed = {**meta.get("derived", {})}
        listed[derived.name] = {"version": derived.version, "tables": list(tables)}
        return {**meta, "derived": listed}

    _add_to_entry(
        key,
        {_derived_suffix(derived.name, table): frame for table, frame in tables.items()},
        held_already=lambda entry: entry.derived(derived) is not None,
        meta=kept,
    )


def _add_to_entry(
    key: str,
    frames: Mapping[str, pl.DataFrame],
    *,
    held_already: Callable[[_Entry], bool],
    meta: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Write ``frames`` (by suffix) beside the entry for ``key`` unless it holds them already,
    then its record again with their checksums and ``meta`` of its metadata.

    The record is written under a temporary name and renamed: a reader sees the entry with or
    without the files, never half of it. An entry removed or replaced meanwhile by another
    command gets a record whose checksums some file no longer matches, which makes it a miss,
    never a wrong answer."""
    directory = cache_dir()
    with signals_held() as held:
        try:
            entry = _entry(key)
            if entry is None or held_already(entry):
                return
            checksums = entry.checksums | _write_frames(directory, key, frames, held)
            record = seal(meta(entry.meta), checksums)
            write_file(directory, f"{key}{RECORD}", lambda f: f.write(record), held)
        except (OSError, pl.exceptions.PolarsError, TypeError, ValueError, KeyError):
            return


def _write_frames(
    directory: Path, key: str, frames: Mapping[str, pl.DataFrame], held: HeldSignals
) -> dict[str, int]:
    """Write each frame as the Parquet file of its suffix; their checksums by suffix."""
    return {
        suffix: write_file(directory, f"{key}{suffix}", parquet_writer(frame, _PARQUET), held)
        for suffix, frame in frames.items()
    }


def _pairs_frames(pairs: AttributePairs) -> dict[str, pl.DataFrame]:
    return {_CODES: pairs.codes, _PAIRS: pairs.packed()}


def _derived_suffix(name: str, table: str) -> str:
    return f"{_DERIVED}{name}-{table}.parquet"


def _metadata(telemetry: Telemetry, analysis: Analysis) -> dict[str, Any]:
    structure = asdict(analysis.structure)
    structure["skew_by_service_pair"] = [
        [list(pair), count] for pair, count in analysis.structure.skew_by_service_pair.items()
    ]
    return {
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
        "llm_spans": telemetry.llm_spans,
        "llm_fields": telemetry.llm_fields,
        "llm_stage_spans": telemetry.llm_stage_spans,
        "llm_overrides": telemetry.llm_overrides,
        "span_columns": telemetry.spans.columns,
        "analysis_columns": analysis.spans.columns,
        "structure": structure,
    }


# --- removing entries -------------------------------------------------------------------------


def _remove_entry(directory: Path, key: str) -> None:
    """Remove an entry, its record first: without it the entry is a miss for every reader."""
    for suffix in (RECORD, _SPANS, _LOGS, _CODES, _PAIRS):
        with contextlib.suppress(OSError):
            (directory / f"{key}{suffix}").unlink()
    with contextlib.suppress(OSError):
        for path in directory.glob(f"{key}{_DERIVED}*"):
            with contextlib.suppress(OSError):
                path.unlink()


def prune(directory: Path, *, max_bytes: int) -> None:
    """Remove temporary files a killed write left behind, then the least recently used entries
    until the cache fits in ``max_bytes``."""
    entries: dict[str, list[Path]] = {}
    stale_before = time.time() - STALE_TEMPORARY_SECONDS
    for path in directory.iterdir():
        if path.name.startswith(TEMPORARY_PREFIX):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < stale_before:
                    path.unlink()
            continue
        if path.name.startswith("."):
            continue
        if _DERIVED in path.name:
            entries.setdefault(path.name.partition(_DERIVED)[0], []).append(path)
            continue
        for suffix in _SUFFIXES:
            if path.name.endswith(suffix):
                entries.setdefault(path.name.removesuffix(suffix), []).append(path)
    sized = []
    for key, files in entries.items():
        try:
            stamp = max(f.stat().st_mtime for f in files)
            size = sum(f.stat().st_size for f in files)
        except OSError:
            continue
        sized.append((stamp, size, key))
    total = sum(size for _, size, _ in sized)
    for _, size, key in sorted(sized):
        if total <= max_bytes:
            break
        _remove_entry(directory, key)
        total -= size
