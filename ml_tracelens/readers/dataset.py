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

import fcntl
import os
import shutil
import zlib
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

from ml_tracelens.core.llm import ALIASES as LLM_ALIASES
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.readers.base import InputSource, ReaderSpec, ReadOptions, ReadResult, ReadStats
from ml_tracelens.schema import LOG_SCHEMA, SPAN_SCHEMA, with_attribute_columns

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
#: Attributes promoted to columns of their own (null where absent), for engines that filter on
#: them without parsing JSON: the first key present wins, as in reports/model_records.py (whose
#: keys these repeat: readers may not import reports) and core/llm.py.
PROMOTED: dict[str, tuple[str, ...]] = {
    "model_version": ("model.version", "model_version", "model"),
    "llm_model": tuple(key for key, _ in LLM_ALIASES["model"]),
}
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
    stats = ReadStats(format=NAME)
    spans, logs, runs = _tables(source.name, directory, manifest, None)
    stats.lines = stats.records = spans.height + logs.height
    return ReadResult(stats=stats, spans=spans, logs=logs, log_resolutions=runs or None)


def read_buckets(
    directory: Path, groups: int, group: int
) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    """The spans and logs of the buckets ``b`` with ``b mod groups == group`` (``groups``
    divides the dataset's bucket count: these are the traces whose ``crc32 mod groups`` is
    ``group``), each in reading order, and the (rows, timestamp resolution) runs of the logs."""
    manifest = read_manifest(directory)
    buckets = set(range(group, manifest.buckets, groups))
    return _tables(str(directory), directory, manifest, buckets)


def _tables(
    name: str, directory: Path, manifest: Manifest, buckets: Container[int] | None
) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    try:
        spans = _table(scan(directory, "spans", manifest, buckets), SPAN_SCHEMA)
        logs = _table(scan(directory, "logs", manifest, buckets), LOG_SCHEMA, "_resolution_ns")
    except _UNREADABLE as exc:
        raise InputError(
            f"{name}: dataset has a part file that is not readable ({_first_line(exc)})"
        ) from exc
    runs = []
    if logs.height:
        run = logs.select(pl.col("_resolution_ns").rle()).unnest("_resolution_ns")
        runs = [(int(n), int(ns or 0)) for n, ns in run.iter_rows()]
    return spans, logs.drop("_resolution_ns"), runs


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


# --- writing ---------------------------------------------------------------------------------


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
    if log_resolution_ns is None:
        log_resolution_ns = pl.Series([0] * logs.height, dtype=pl.Int64)
    logs = logs.with_columns(_resolution_ns=log_resolution_ns.cast(pl.Int64))
    buckets = previous.buckets if previous is not None else buckets or DEFAULT_BUCKETS
    if replace and is_dataset(directory):
        _remove_dataset(directory)
    conversion = (previous.conversions if previous else 0) + 1
    offset = previous.spans + previous.logs if previous else 0
    keyed = _keyed_spans(spans, buckets, offset)
    keyed_logs = _keyed_logs(logs, keyed, buckets, offset + spans.height)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_parts(directory, keyed, conversion, "start_ns")
        _write_parts(directory / LOGS_DIR, keyed_logs, conversion, "time_ns")
        start, end = _time_range(spans, logs, previous)
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            buckets=buckets,
            conversions=conversion,
            spans=spans.height + (previous.spans if previous else 0),
            logs=logs.height + (previous.logs if previous else 0),
            start_ns=start,
            end_ns=end,
            sources=(
                *(previous.sources if previous else ()),
                *(
                    {
                        "path": s.path,
                        "size": s.size,
                        "mtime_ns": s.mtime_ns,
                        "conversion": conversion,
                    }
                    for s in sources
                ),
            ),
        )
        # Last, and atomically: until it is replaced, readers see the previous conversions only.
        temporary = directory / f".{MANIFEST}.tmp"
        temporary.write_bytes(manifest.to_json())
        os.replace(temporary, directory / MANIFEST)
    except OSError as exc:
        raise InputError(f"{directory}: cannot write ({exc.strerror or exc})") from exc
    return manifest


def _remove_dataset(directory: Path) -> None:
    """Remove what tracelens wrote in ``directory``, nothing else."""
    for entry in [*directory.glob("date=*"), directory / LOGS_DIR]:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
    (directory / MANIFEST).unlink(missing_ok=True)


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


def _day(ns: pl.Expr) -> pl.Expr:
    return pl.from_epoch(ns, time_unit="ns").dt.strftime("%Y-%m-%d").fill_null(NO_DATE)


def _keyed_spans(spans: pl.DataFrame, buckets: int, offset: int) -> pl.DataFrame:
    """Spans with their partition (``date``, ``bucket``), promoted attributes and ``_seq``."""
    start = pl.col("start_ns")
    root_start = start.filter(pl.col("parent_id").is_null()).min()
    days = spans.group_by("trace_id").agg(_day_ns=pl.coalesce(root_start, start.min()))
    frame = spans.with_columns(
        # Enums as text, for engines without them; ``resource`` and ``source`` stay
        # Categorical: written as dictionary-encoded text, one entry per distinct value.
        pl.col("kind", "status").cast(pl.String),
        _seq=pl.int_range(offset, offset + spans.height, dtype=pl.Int64),
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


def _keyed_logs(logs: pl.DataFrame, spans: pl.DataFrame, buckets: int, offset: int) -> pl.DataFrame:
    """Logs with the partition of their trace (trace id, else correlation id), else of their
    own key's earliest record."""
    key = pl.coalesce("trace_id", "correlation_id")
    frame = logs.with_columns(
        _key=key, _seq=pl.int_range(offset, offset + logs.height, dtype=pl.Int64)
    )
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


def _time_range(
    spans: pl.DataFrame, logs: pl.DataFrame, previous: Manifest | None
) -> tuple[int | None, int | None]:
    starts = [
        spans.get_column("start_ns").min(),
        logs.get_column("time_ns").min(),
        previous.start_ns if previous else None,
    ]
    ends = [
        spans.get_column("end_ns").max(),
        logs.get_column("time_ns").max(),
        previous.end_ns if previous else None,
    ]
    known_starts = [int(s) for s in starts if isinstance(s, int)]
    known_ends = [int(e) for e in ends if isinstance(e, int)]
    return (min(known_starts, default=None), max(known_ends, default=None))


READER = ReaderSpec(
    name=NAME,
    description="tracelens trace-bucketed dataset (written by `tracelens convert --dataset`)",
    accepts="directories holding _tracelens.json",
    sniff=lambda head: False,
    read=read,
    priority=99,
)
