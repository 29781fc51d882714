"""The canonical tables themselves, as written by `tracelens convert -o OUT.parquet`.

One Parquet file holds both tables: a ``table`` column says ``span`` or ``log`` and the columns
are the union of the two canonical schemas (the shared names have the same types). The spans
are those read (spans derived from log lines, and LLM stage spans, are derived again on
reading, as from the dumps), and each log row keeps its file's timestamp resolution
(``RESOLUTION_COLUMN``), which the trees from log lines use as slack. Reading it back skips
every parser, so reports on it are identical and fast.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ml_tracelens.exceptions import InputError
from ml_tracelens.readers.base import (
    RESOLUTION_COLUMN,
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
    resolution_runs,
)
from ml_tracelens.schema import LOG_SCHEMA, SPAN_SCHEMA, level_is_error

NAME = "parquet"
MAGIC = b"PAR1"
#: Log columns added after files were first written (cache format 4).
_LATER_LOG_COLUMNS = ("parent_span_id", "error", "unread_reason")


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)


#: What a damaged or foreign Parquet file raises inside polars. A corrupt footer can make the
#: Rust decoder panic, which reaches Python as pyo3's PanicException: a BaseException, so it
#: passes every ``except Exception``.
_UNREADABLE = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


def read(source: InputSource, options: ReadOptions) -> ReadResult:
    stats = ReadStats(format=NAME)
    try:
        # glob=False: polars would expand "[1]" or "*" in a file name and read other files.
        data = source.path if source.path is not None else source.read_bytes()
        frame = pl.read_parquet(data, glob=False)
    except _UNREADABLE as exc:
        raise InputError(f"{source.name}: not a readable Parquet file ({exc})") from exc
    if "resource" not in frame.columns:  # written before spans kept resources apart
        frame = frame.with_columns(resource=pl.lit(None, dtype=SPAN_SCHEMA["resource"]))
    # Written before log rows had these: no parent ids or reasons were read, and the error flag
    # is what the level says (as for any reader that does not decide it).
    old_logs = [c for c in _LATER_LOG_COLUMNS if c not in frame.columns]
    if old_logs:
        frame = frame.with_columns(pl.lit(None, dtype=LOG_SCHEMA[c]).alias(c) for c in old_logs)
    missing = {"table", *SPAN_SCHEMA, *LOG_SCHEMA} - set(frame.columns)
    if missing:
        raise InputError(
            f"{source.name}: Parquet file is not a tracelens table (missing {sorted(missing)}); "
            "write one with `tracelens convert`"
        )
    try:
        spans = frame.filter(pl.col("table") == "span").select(list(SPAN_SCHEMA)).cast(SPAN_SCHEMA)
        log_rows = frame.filter(pl.col("table") == "log")
        logs = log_rows.select(list(LOG_SCHEMA)).cast(LOG_SCHEMA)
        runs = None
        if RESOLUTION_COLUMN in frame.columns:
            runs = resolution_runs(log_rows.get_column(RESOLUTION_COLUMN).fill_null(0))
        if "error" in old_logs:
            logs = logs.with_columns(error=level_is_error())
    except _UNREADABLE as exc:
        # The canonical column names with other types (or an Enum value tracelens never wrote).
        raise InputError(
            f"{source.name}: Parquet file is not a tracelens table ({exc}); "
            "write one with `tracelens convert`"
        ) from exc
    stats.lines = stats.records = frame.height
    return ReadResult(stats=stats, spans=spans, logs=logs, log_resolutions=runs)


def write_parquet(
    spans: pl.DataFrame,
    logs: pl.DataFrame,
    output: Path,
    *,
    log_resolution_ns: pl.Series | None = None,
) -> None:
    """Write both tables to ``output``; ``log_resolution_ns``: per log row, the timestamp
    resolution of its file, which the trees built from the lines again on reading need."""
    if log_resolution_ns is not None:
        logs = logs.with_columns(log_resolution_ns.cast(pl.Int64).alias(RESOLUTION_COLUMN))
    combined = pl.concat(
        [
            # one `source` column for both tables: text, as the logs have it
            spans.with_columns(pl.col("source").cast(pl.String), table=pl.lit("span")),
            logs.with_columns(table=pl.lit("log")),
        ],
        how="diagonal",
    )
    try:
        combined.write_parquet(output, compression="zstd")
    except OSError as exc:
        raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from exc


READER = ReaderSpec(
    name=NAME,
    description="tracelens canonical tables (written by `tracelens convert`)",
    accepts="Parquet files with the canonical span and log columns",
    sniff=sniff,
    read=read,
    priority=5,
)
