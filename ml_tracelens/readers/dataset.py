"""Trace-bucketed datasets, as written by `tracelens convert PATHS... --dataset DIR`.

A directory holding ``_tracelens.json`` (the manifest) is one input, read here without any
parser. Its layout (documented in the README, "Large archives"; ``SCHEMA_VERSION`` changes when
it does)::

    DIR/_tracelens.json
    DIR/date=YYYY-MM-DD/bucket=NNN/part-CCCCC.parquet        spans, one row per span
    DIR/logs/date=YYYY-MM-DD/bucket=NNN/part-CCCCC.parquet   log records

``bucket`` is ``crc32(utf8(trace_id)) mod buckets`` (zlib's, Spark's and Java's CRC-32), fixed
forever so that other engines can compute it; ``date`` is the UTC day of the trace's root start
(its earliest root, else its earliest span): a trace is never split over partitions, and a log
record keyed by a trace (its trace id, else its correlation id) lies beside it. ``CCCCC`` numbers
the conversion that wrote the file: appending writes new files only, and the manifest, replaced
last, says how many conversions are complete, so the files of a conversion that died half way
are never read. ``_seq`` numbers the rows in the order they were read, so reading a dataset back
gives the tables in the order of the dumps and every report the same answer.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

from ml_tracelens.core.query import time_bound
from ml_tracelens.durations import length_ns
from ml_tracelens.exceptions import InputError
from ml_tracelens.readers.base import (
    RESOLUTION_COLUMN,
    InputSource,
    Pushdown,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
    resolution_runs,
)
from ml_tracelens.schema import LOG_SCHEMA, SPAN_SCHEMA

NAME = "dataset"
MANIFEST = "_tracelens.json"
#: The layout this module writes and the only one it reads. A reader refuses other versions:
#: bump it with any change a reader of the old layout would misread.
SCHEMA_VERSION = 1
DEFAULT_BUCKETS = 64
#: bucket=NNN stays three digits.
MAX_BUCKETS = 1000
LOGS_DIR = "logs"
LOCK = ".tracelens.lock"
#: The day of a trace (or a log key) without any start time.
NO_DATE = "unknown"
HASH = "crc32(utf8(trace_id)) mod buckets"
_HIVE = {"date": pl.String, "bucket": pl.Int32}
_MANIFEST_KEYS = ("schema_version", "buckets", "conversions", "spans", "logs", "sources")
#: What a damaged part file raises inside polars (a corrupt footer can panic in Rust).
_UNREADABLE = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a dataset directory (one holding a manifest)."""
    try:
        return path.is_dir() and (path / MANIFEST).is_file()
    except OSError:
        return False


@dataclass(frozen=True)
class SourceFile:
    """An input a conversion read, as the manifest records it."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> SourceFile:
        try:
            info = path.stat()
            return cls(str(path.resolve()), info.st_size, info.st_mtime_ns)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    buckets: int
    conversions: int
    spans: int
    logs: int
    start_ns: int | None
    end_ns: int | None
    sources: tuple[dict[str, object], ...]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": "tracelens-dataset",
                "schema_version": self.schema_version,
                "buckets": self.buckets,
                "bucket_hash": HASH,
                "partitioning": ["date", "bucket"],
                "conversions": self.conversions,
                "spans": self.spans,
                "logs": self.logs,
                "time_range": {
                    "start_ns": self.start_ns,
                    "end_ns": self.end_ns,
                    "start": _iso(self.start_ns),
                    "end": _iso(self.end_ns),
                },
                "sources": list(self.sources),
            },
            option=orjson.OPT_INDENT_2,
        )


def read_manifest(directory: Path) -> Manifest:
    """The manifest of ``directory``; InputError (one line) when it is unreadable, incomplete or
    of a schema version this reader does not know."""
    where = directory / MANIFEST
    try:
        data = orjson.loads(where.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(f"{where}: not a readable dataset manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a dataset manifest (not a JSON object)")
    missing = [key for key in _MANIFEST_KEYS if key not in data]
    if missing:
        raise InputError(f"{where}: dataset manifest lacks {', '.join(missing)}")
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise InputError(
            f"{where}: dataset schema version {version!r} is not one this tracelens reads "
            f"({SCHEMA_VERSION}); convert the dumps again or upgrade tracelens"
        )
    time_range = data.get("time_range")
    time_range = time_range if isinstance(time_range, dict) else {}
    buckets, conversions = data["buckets"], data["conversions"]
    spans, logs, sources = data["spans"], data["logs"], data["sources"]
    start, end = time_range.get("start_ns"), time_range.get("end_ns")
    counts = (buckets, conversions, spans, logs)
    if (
        not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)
        or not 1 <= buckets <= MAX_BUCKETS
        or not isinstance(sources, list)
        or not all(isinstance(s, dict) for s in sources)
        or not all(
            t is None or (isinstance(t, int) and not isinstance(t, bool)) for t in (start, end)
        )
    ):
        raise InputError(f"{where}: dataset manifest has values of the wrong type")
    return Manifest(
        schema_version=version,
        buckets=buckets,
        conversions=conversions,
        spans=spans,
        logs=logs,
        start_ns=start,
        end_ns=end,
        sources=tuple(sources),
    )


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


# --- reading ---------------------------------------------------------------------------------


def _part_files(top: Path, conversions: int, buckets: Container[int] | None = None) -> list[str]:
    """Part files of complete conversions under ``top`` (``date=*/bucket=*``), in name order;
    only those of ``buckets`` when given."""
    if not top.is_dir():
        return []
    found: list[str] = []
    # Symlinks are passed over, as in a directory walk (ingest/inputs.py): a dataset cannot
    # make tracelens read files outside it.
    for day in _entries(top, "date="):
        for bucket in _entries(day, "bucket="):
            number = bucket.name.removeprefix("bucket=")
            if buckets is not None and not (number.isdigit() and int(number) in buckets):
                continue
            for part in _entries(bucket, "part-"):
                number = part.name.removeprefix("part-").removesuffix(".parquet")
                if part.suffix == ".parquet" and number.isdigit() and int(number) <= conversions:
                    found.append(str(part))
    return found


def _entries(directory: Path, prefix: str) -> list[Path]:
    try:
        with os.scandir(directory) as scan:
            return sorted(
                Path(e.path) for e in scan if e.name.startswith(prefix) and not e.is_symlink()
            )
    except OSError as exc:
        raise InputError(f"{directory}: cannot list it ({exc.strerror or exc})") from exc


def scan(
    directory: Path, table: str, manifest: Manifest, buckets: Container[int] | None = None
) -> pl.LazyFrame | None:
    """A lazy scan of the spans (``table="spans"``) or logs of a dataset (of ``buckets`` only,
    when given), partitions as the ``date`` and ``bucket`` columns; None when it holds none."""
    top = directory if table == "spans" else directory / LOGS_DIR
    files = _part_files(top, manifest.conversions, buckets)
    if not files:
        return None
    return pl.scan_parquet(files, hive_partitioning=True, hive_schema=_HIVE, glob=False)


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    directory = source.path
    if directory is None:
        raise InputError(f"{source.name}: a dataset is a directory")
    manifest = read_manifest(directory)
    spans, logs, runs = _tables(source.name, directory, manifest, None, options.pushdown)
    stats = read_stats(manifest, spans.height)
    return ReadResult(stats=stats, spans=spans, logs=logs, log_resolutions=runs or None)


#: Why a dataset's span was not read: its trace has no span the pushed-down filters keep.
LEFT_OUT = "spans of traces without a span the filters keep (not read)"


def read_stats(manifest: Manifest, spans_read: int) -> ReadStats:
    """The accounting of a dataset's read: every row a record, the spans the pushed-down
    filters left out counted in ``ignored``."""
    stats = ReadStats(format=NAME)
    stats.lines = stats.records = manifest.spans + manifest.logs
    if spans_read < manifest.spans:
        stats.ignore(LEFT_OUT, manifest.spans - spans_read)
    return stats


def read_buckets(
    directory: Path, groups: int, group: int, pushdown: Pushdown | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    """The spans and logs of the buckets ``b`` with ``b mod groups == group`` (``groups``
    divides the dataset's bucket count: these are the traces whose ``crc32 mod groups`` is
    ``group``), each in reading order, and the (rows, timestamp resolution) runs of the logs."""
    manifest = read_manifest(directory)
    buckets = set(range(group, manifest.buckets, groups))
    return _tables(str(directory), directory, manifest, buckets, pushdown)


def _tables(
    name: str,
    directory: Path,
    manifest: Manifest,
    buckets: Container[int] | None,
    pushdown: Pushdown | None,
) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    try:
        span_scan = scan(directory, "spans", manifest, buckets)
        log_scan = scan(directory, "logs", manifest, buckets)
        if (
            span_scan is not None
            and pushdown is not None
            and pushdown.active
            and not _logs_make_spans(log_scan)
        ):
            span_scan = pushed_down(span_scan, pushdown)
        spans = _table(span_scan, SPAN_SCHEMA)
        logs = _table(log_scan, LOG_SCHEMA, RESOLUTION_COLUMN)
    except _UNREADABLE as exc:
        raise InputError(
            f"{name}: dataset has a part file that is not readable ({_first_line(exc)})"
        ) from exc
    runs = resolution_runs(logs.get_column(RESOLUTION_COLUMN))
    return spans, logs.drop(RESOLUTION_COLUMN), runs


def pushed_down(spans: pl.LazyFrame, pushdown: Pushdown) -> pl.LazyFrame:
    """The rows of ``spans`` of the traces holding a span ``pushdown`` keeps (or a span that
    ends after ``--since``), and of a trace holding the span that ends last (relative times
    count back from it). The rows are sorted by time in each part file, so the time bounds
    skip whole row groups of the narrow scan.

    A time back from the end counts from this dataset's end: for ``--since``, no later than
    the end of all the inputs read together, so no fewer traces are read; a relative
    ``--until`` could read fewer, and is not pushed down."""
    if not pushdown.active:
        return spans
    keep = pl.lit(True)
    if pushdown.services:
        keep = keep & pl.col("service").is_in(list(pushdown.services))
    relative = {t for t in (pushdown.since, pushdown.until) if t and length_ns(t) is not None}
    # The end is that of the spans read: the trace of the last-ending span is read below.
    end = spans.select(pl.col("end_ns").max()).collect().item() if relative else None
    if pushdown.since:
        # By its end too: spans added on reading (an LLM span's queue, prefill and decode)
        # start within their parent, which may start before the bound and end after it.
        since = time_bound(pushdown.since, end, "since")
        keep = keep & ((pl.col("start_ns") >= since) | (pl.col("end_ns") >= since))
    if pushdown.until and pushdown.until not in relative:
        keep = keep & (pl.col("start_ns") <= time_bound(pushdown.until, None, "until"))
    traces = [spans.filter(keep).select("trace_id").unique()]
    if end is not None:
        traces.append(spans.filter(pl.col("end_ns") == end).select("trace_id").head(1))
    wanted = pl.concat(traces).collect().get_column("trace_id")
    return spans.filter(pl.col("trace_id").is_in(wanted.implode()))


def _logs_make_spans(logs: pl.LazyFrame | None) -> bool:
    """Whether any log record can become a span (a stage line: a stage and a duration), which
    the span table cannot tell of: then the spans are read whole."""
    if logs is None:
        return False
    lines = logs.filter(pl.col("stage").is_not_null() & pl.col("duration_ns").is_not_null())
    return bool(lines.select(pl.len()).collect().item())


def _table(frame: pl.LazyFrame | None, schema: pl.Schema, *extra: str) -> pl.DataFrame:
    if frame is None:
        return pl.DataFrame(schema={**schema, **dict.fromkeys(extra, pl.Int64)})
    columns = [*schema, *extra]
    read = frame.select(*columns, "_seq").collect()
    # Back in reading order, a column at a time: sorting the frame at once would hold it twice.
    order = read.drop_in_place("_seq").arg_sort()
    ordered = pl.DataFrame([read.drop_in_place(name).gather(order) for name in columns])
    # Stored as the canonical types but Enums as text: cast back.
    return ordered.cast(schema)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the layout's hash ----------------------------------------------------------------------


def bucket_of(keys: pl.Series, buckets: int) -> pl.Series:
    """``crc32(utf8(key)) mod buckets`` per key (null keys hash as ""): once per distinct key,
    as a join, so a million spans cost a CRC per trace."""
    distinct = keys.unique().to_frame("_key")
    values = [zlib.crc32((k or "").encode()) % buckets for k in distinct.get_column("_key")]
    table = distinct.with_columns(_bucket=pl.Series(values, dtype=pl.Int32))
    joined = keys.to_frame("_key").join(
        table, on="_key", how="left", maintain_order="left", nulls_equal=True
    )
    return joined.get_column("_bucket").alias("bucket")


READER = ReaderSpec(
    name=NAME,
    description="tracelens trace-bucketed dataset (written by `tracelens convert --dataset`)",
    accepts="directories holding _tracelens.json",
    sniff=lambda head: False,
    read=read,
    priority=99,
)
