"""Writing trace-bucketed datasets (``tracelens convert PATHS... --dataset DIR``): the layout
of ``readers.dataset``, one conversion at a time, under the dataset's write lock. The manifest
is replaced last, so a conversion that dies half way leaves files no reader reads.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ml_tracelens.core.llm import ALIASES as LLM_ALIASES
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.readers.base import RESOLUTION_COLUMN
from ml_tracelens.readers.dataset import (
    DEFAULT_BUCKETS,
    LOCK,
    LOGS_DIR,
    MANIFEST,
    MAX_BUCKETS,
    NO_DATE,
    SCHEMA_VERSION,
    Manifest,
    SourceFile,
    bucket_of,
    is_dataset,
    read_manifest,
)
from ml_tracelens.schema import with_attribute_columns

#: Attributes promoted to columns of their own (null where absent), for engines that filter on
#: them without parsing JSON: the first key present wins, as in reports/model_records.py (whose
#: keys these repeat: readers may not import reports) and core/llm.py.
PROMOTED: dict[str, tuple[str, ...]] = {
    "model_version": ("model.version", "model_version", "model"),
    "llm_model": tuple(key for key, _ in LLM_ALIASES["model"]),
}


@contextmanager
def writing(directory: Path) -> Iterator[None]:
    """Hold the dataset's write lock (an advisory lock on a hidden file, released however the
    process ends): two conversions appending at once would write the same part files."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK).open("a")
    except OSError as exc:
        raise InputError(f"{directory}: cannot write ({exc.strerror or exc})") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise UsageError(
                f"{directory}: another tracelens convert is writing this dataset; "
                "run it again when that one is done"
            ) from exc
        yield


def prepare(
    directory: Path, *, sources: Sequence[SourceFile], buckets: int | None, replace: bool
) -> Manifest | None:
    """Check that ``sources`` may be written to ``directory`` before reading them: the manifest
    to append to (None for a new or replaced dataset). Raises UsageError when not."""
    if buckets is not None and not 1 <= buckets <= MAX_BUCKETS:
        raise UsageError(f"{buckets}: must be between 1 and {MAX_BUCKETS}", option="buckets")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory}: not a directory", option="dataset")
    if any(s.path == str(directory.resolve()) for s in sources):
        raise UsageError(f"{directory}: a dataset cannot be converted into itself")
    if not is_dataset(directory):
        if directory.is_dir() and any(p.name != LOCK for p in directory.iterdir()):
            raise UsageError(
                f"{directory}: not empty and not a tracelens dataset; name a new directory",
                option="dataset",
            )
        return None
    if replace:
        read_manifest(directory)  # replacing only ever removes what tracelens wrote
        return None
    manifest = read_manifest(directory)
    if buckets is not None and buckets != manifest.buckets:
        raise UsageError(
            f"--buckets {buckets}: {directory} was written with {manifest.buckets} buckets; "
            "leave --buckets out to append, or convert with --replace"
        )
    known = {s.get("path") for s in manifest.sources}
    again = [s.path for s in sources if s.path in known]
    if again:
        raise UsageError(
            f"{again[0]}: already converted into {directory} (see its {MANIFEST}); "
            "pass --replace to write the dataset again from these inputs"
        )
    return manifest


def write(
    directory: Path,
    spans: pl.DataFrame,
    logs: pl.DataFrame,
    *,
    sources: Sequence[SourceFile],
    buckets: int | None,
    previous: Manifest | None,
    replace: bool,
    log_resolution_ns: pl.Series | None = None,
) -> Manifest:
    """Write one conversion of ``spans`` and ``logs`` into ``directory`` (``prepare`` first).
    ``log_resolution_ns``: per log row, the timestamp resolution of the file it came from
    (ingest.timestamp_resolutions), kept so log-derived spans get the same slack on reading."""
    conversion = begin(directory, buckets=buckets, previous=previous, replace=replace)
    offset = conversion.offset
    add(
        conversion,
        spans.with_columns(_seq=pl.int_range(offset, offset + spans.height, dtype=pl.Int64)),
        logs.with_columns(
            _seq=pl.int_range(
                offset + spans.height, offset + spans.height + logs.height, dtype=pl.Int64
            )
        ),
        log_resolution_ns,
    )
    return finish(conversion, sources=sources, previous=previous)


@dataclass
class Conversion:
    """One conversion being written, a group of traces at a time (``add``): its number, the
    first ``_seq`` it may give, and what it has written so far."""

    directory: Path
    buckets: int
    number: int
    offset: int
    spans: int = 0
    logs: int = 0
    start_ns: int | None = None
    end_ns: int | None = None


def begin(
    directory: Path, *, buckets: int | None, previous: Manifest | None, replace: bool
) -> Conversion:
    """Start a conversion into ``directory`` (``prepare`` first): a replaced dataset's files
    are removed now."""
    if replace and is_dataset(directory):
        _remove_dataset(directory)
    return Conversion(
        directory=directory,
        buckets=previous.buckets if previous is not None else buckets or DEFAULT_BUCKETS,
        number=(previous.conversions if previous else 0) + 1,
        offset=_next_seq(directory) if previous is not None else 0,
    )


def add(
    conversion: Conversion,
    spans: pl.DataFrame,
    logs: pl.DataFrame,
    log_resolution_ns: pl.Series | None = None,
) -> None:
    """Write whole traces: ``spans`` and the ``logs`` keyed to them (by trace id, else
    correlation id), each with its ``_seq`` (the reading order, from ``conversion.offset``).
    Each bucket's rows must come in one call: a conversion writes one file per partition."""
    if log_resolution_ns is None:
        log_resolution_ns = pl.repeat(0, logs.height, dtype=pl.Int64, eager=True)
    logs = logs.with_columns(log_resolution_ns.cast(pl.Int64).alias(RESOLUTION_COLUMN))
    keyed = _keyed_spans(spans, conversion.buckets)
    keyed_logs = _keyed_logs(logs, keyed, conversion.buckets)
    try:
        conversion.directory.mkdir(parents=True, exist_ok=True)
        _write_parts(conversion.directory, keyed, conversion.number, "start_ns")
        _write_parts(conversion.directory / LOGS_DIR, keyed_logs, conversion.number, "time_ns")
    except OSError as exc:
        raise InputError(f"{conversion.directory}: cannot write ({exc.strerror or exc})") from exc
    conversion.spans += spans.height
    conversion.logs += logs.height
    start, end = _time_range(spans, logs)
    conversion.start_ns = _earliest(conversion.start_ns, start)
    conversion.end_ns = _latest(conversion.end_ns, end)


def finish(
    conversion: Conversion, *, sources: Sequence[SourceFile], previous: Manifest | None
) -> Manifest:
    """Replace the manifest, last and atomically: until then, readers see the previous
    conversions only."""
    number = conversion.number
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        buckets=conversion.buckets,
        conversions=number,
        spans=conversion.spans + (previous.spans if previous else 0),
        logs=conversion.logs + (previous.logs if previous else 0),
        start_ns=_earliest(conversion.start_ns, previous.start_ns if previous else None),
        end_ns=_latest(conversion.end_ns, previous.end_ns if previous else None),
        sources=(
            *(previous.sources if previous else ()),
            *(
                {"path": s.path, "size": s.size, "mtime_ns": s.mtime_ns, "conversion": number}
                for s in sources
            ),
        ),
    )
    try:
        temporary = conversion.directory / f".{MANIFEST}.tmp"
        temporary.write_bytes(manifest.to_json())
        os.replace(temporary, conversion.directory / MANIFEST)
    except OSError as exc:
        raise InputError(f"{conversion.directory}: cannot write ({exc.strerror or exc})") from exc
    return manifest


def _next_seq(directory: Path) -> int:
    """The ``_seq`` after every row of the dataset's files: a conversion written a group at a
    time numbers rows as read, leaving out the duplicates it merged, so the manifest's counts
    may fall short of it."""
    found = 0
    for table in (directory, directory / LOGS_DIR):
        files = [str(p) for p in table.glob("date=*/bucket=*/part-*.parquet")]
        if files:
            last = pl.scan_parquet(files, glob=False).select(pl.col("_seq").max()).collect()
            found = max(found, int(last.item() or 0) + 1)
    return found


def _earliest(a: int | None, b: int | None) -> int | None:
    return min((x for x in (a, b) if x is not None), default=None)


def _latest(a: int | None, b: int | None) -> int | None:
    return max((x for x in (a, b) if x is not None), default=None)


def _remove_dataset(directory: Path) -> None:
    """Remove what tracelens wrote in ``directory``, nothing else."""
    for entry in [*directory.glob("date=*"), directory / LOGS_DIR]:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
    (directory / MANIFEST).unlink(missing_ok=True)


def _day(ns: pl.Expr) -> pl.Expr:
    return pl.from_epoch(ns, time_unit="ns").dt.strftime("%Y-%m-%d").fill_null(NO_DATE)


def _keyed_spans(spans: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """Spans (with their ``_seq``) with their partition (``date``, ``bucket``) and promoted
    attributes."""
    start = pl.col("start_ns")
    root_start = start.filter(pl.col("parent_id").is_null()).min()
    days = spans.group_by("trace_id").agg(_day_ns=pl.coalesce(root_start, start.min()))
    frame = spans.with_columns(
        # Enums as text, for engines without them; ``resource`` and ``source`` stay
        # Categorical: written as dictionary-encoded text, one entry per distinct value.
        pl.col("kind", "status").cast(pl.String),
    )
    frame = frame.join(days, on="trace_id", how="left", maintain_order="left", nulls_equal=True)
    frame = frame.with_columns(
        date=_day(pl.col("_day_ns")), bucket=bucket_of(frame["trace_id"], buckets)
    )
    return _promoted(frame.drop("_day_ns"))


def _promoted(frame: pl.DataFrame) -> pl.DataFrame:
    lookups = {f"_{name}_{i}": key for name, keys in PROMOTED.items() for i, key in enumerate(keys)}
    looked = with_attribute_columns(frame, lookups)
    return looked.with_columns(
        pl.coalesce(f"_{name}_{i}" for i in range(len(keys))).alias(name)
        for name, keys in PROMOTED.items()
    ).drop(lookups)


def _keyed_logs(logs: pl.DataFrame, spans: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """Logs with the partition of their trace (trace id, else correlation id), else of their
    own key's earliest record."""
    key = pl.coalesce("trace_id", "correlation_id")
    frame = logs.with_columns(_key=key)
    traces = spans.select(pl.col("trace_id").alias("_key"), "date").unique("_key")
    own = frame.group_by("_key").agg(_own_date=_day(pl.col("time_ns").min()))
    frame = frame.join(traces, on="_key", how="left", maintain_order="left")
    frame = frame.join(own, on="_key", how="left", maintain_order="left")
    # A record without any key belongs to nothing but its own day.
    lone = pl.when(pl.col("_key").is_null()).then(_day(pl.col("time_ns")))
    return frame.with_columns(
        date=pl.coalesce("date", "_own_date", lone), bucket=bucket_of(frame["_key"], buckets)
    ).drop("_key", "_own_date")


def _write_parts(top: Path, frame: pl.DataFrame, conversion: int, time: str) -> None:
    if frame.is_empty():
        return
    for (day, bucket), part in frame.partition_by(
        "date", "bucket", as_dict=True, include_key=False, maintain_order=True
    ).items():
        where = top / f"date={day}" / f"bucket={bucket:03d}"
        where.mkdir(parents=True, exist_ok=True)
        # Sorted by time, a row group's statistics let a reader skip it on --since/--until;
        # ``_seq`` keeps the order the rows were read in.
        part.sort(time, nulls_last=True, maintain_order=True).write_parquet(
            where / f"part-{conversion:05d}.parquet", compression="zstd", statistics=True
        )


def _time_range(spans: pl.DataFrame, logs: pl.DataFrame) -> tuple[int | None, int | None]:
    starts = [spans.get_column("start_ns").min(), logs.get_column("time_ns").min()]
    ends = [spans.get_column("end_ns").max(), logs.get_column("time_ns").max()]
    known_starts = [int(s) for s in starts if isinstance(s, int)]
    known_ends = [int(e) for e in ends if isinstance(e, int)]
    return (min(known_starts, default=None), max(known_ends, default=None))
