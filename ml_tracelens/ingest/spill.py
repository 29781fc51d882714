"""The spill of inputs analysed a group of traces at a time (``ingest.bounded``): each part of
the inputs as read, cut by group into Arrow files in a scratch directory, read back a group at
a time in the order the parts were written.

A part read by a reading worker is written by that worker (``GroupFiles`` is the sink it is
given), its ``file:line`` locations and log row numbers counted from the part's first line: they
are moved on when the group is read back, once every part's place in its input is known.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from ml_tracelens.ingest import PartsRead
from ml_tracelens.ingest.log_spans import timestamp_resolution_ns
from ml_tracelens.ingest.sources import read_in_ranges
from ml_tracelens.readers import dataset
from ml_tracelens.readers.base import (
    InputSource,
    Pushdown,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support.parallel import shift_sources
from ml_tracelens.schema import empty_logs, empty_spans

Compression = Literal["uncompressed", "lz4"]

#: Free space for an uncompressed spill, in times the inputs' bytes (Arrow holds a dump's
#: canonical tables in about twice its JSON; lz4 halves that, at 0.6 s of CPU a million spans).
SPILL_ROOM = 4


def compression_for(directory: Path, json_bytes: int) -> Compression:
    """Uncompressed when ``directory`` has room to spare for ``json_bytes`` of input, else
    lz4."""
    return "uncompressed" if shutil.disk_usage(directory).free > SPILL_ROOM * json_bytes else "lz4"


@dataclass(frozen=True)
class GroupFiles:
    """Writes a part's rows to one Arrow file per group (picklable: a reading worker writes
    the parts it reads itself, and says how many rows it wrote)."""

    directory: Path
    groups: int
    first_part: int = 0
    compression: Compression = "lz4"

    def __call__(self, result: ReadResult, index: int) -> Written:
        """Part ``first_part + index``: its rows, spans and logs numbered from 0 within it."""
        return self.write(self.first_part + index, result.spans, result.logs, 0, 0)

    def write(
        self, part: int, spans: pl.DataFrame, logs: pl.DataFrame, log_row: int, span_row: int
    ) -> Written:
        # Logs carry their row number among all logs read: the timestamp resolution of the
        # input each came from is known by row only once every input is read. Spans carry
        # theirs too, the order a dataset keeps them in.
        logs = logs.with_columns(
            _log_row=pl.int_range(log_row, log_row + logs.height, dtype=pl.Int64)
        )
        spans = spans.with_columns(
            _span_row=pl.int_range(span_row, span_row + spans.height, dtype=pl.Int64)
        )
        keys = {
            "spans": (spans, spans.get_column("trace_id")),
            "logs": (logs, logs.select(pl.coalesce("trace_id", "correlation_id")).to_series()),
        }
        for table, (frame, key) in keys.items():
            if frame.is_empty():
                continue
            grouped = frame.with_columns(_group=dataset.bucket_of(key, self.groups))
            for (group,), rows in grouped.partition_by(
                "_group", as_dict=True, include_key=False, maintain_order=True
            ).items():
                rows.write_ipc(
                    part_file(self.directory, table, int(str(group)), part),
                    compression=self.compression,
                )
        resolution = timestamp_resolution_ns(logs.get_column("time_ns")) if logs.height else None
        return Written(spans=spans.height, logs=logs.height, resolution_ns=resolution)


@dataclass(frozen=True)
class Written:
    """What one part put in the spill."""

    spans: int
    logs: int
    #: the timestamp resolution of the part's logs (None without logs)
    resolution_ns: int | None


def part_file(directory: Path, table: str, group: int, part: int) -> Path:
    return directory / f"{table}-{group:04d}-{part:06d}.arrow"


@dataclass
class Spill:
    """Rows written a part at a time to one Arrow file per group, read back a group at a time
    in the order they were written."""

    directory: Path
    groups: int
    compression: Compression = "lz4"
    parts: int = 0
    log_rows: int = 0
    span_rows: int = 0
    #: part -> (``file:`` prefix, lines, log rows, span rows) of the input before it, for the
    #: parts whose rows were written where they were read (counting them from 0)
    offsets: dict[int, tuple[str, int, int, int]] = field(default_factory=dict)

    def keep(self, spans: pl.DataFrame, logs: pl.DataFrame) -> None:
        files = GroupFiles(self.directory, self.groups, compression=self.compression)
        files.write(self.parts, spans, logs, self.log_rows, self.span_rows)
        self.log_rows += logs.height
        self.span_rows += spans.height
        self.parts += 1

    def read_parts(
        self,
        reader: ReaderSpec,
        source: InputSource,
        input_format: str | None,
        options: ReadOptions,
        range_bytes: int,
    ) -> PartsRead | None:
        """``source`` read ``range_bytes`` at a time by the reading workers, which write each
        part's rows themselves; None when it cannot be read so."""
        sink = GroupFiles(self.directory, self.groups, self.parts, self.compression)
        parts = read_in_ranges(reader, source, input_format, options, range_bytes, sink)
        if parts is None:
            return None
        stats, spans, logs, resolution = ReadStats(format=reader.name), 0, 0, None
        for part in parts:
            written = part.receipt
            assert isinstance(written, Written)
            stats.add(part.stats)
            self.offsets[self.parts] = (
                f"{source.name}:",
                part.line_offset,
                self.log_rows,
                self.span_rows,
            )
            self.parts += 1
            self.log_rows += written.logs
            self.span_rows += written.spans
            spans += written.spans
            logs += written.logs
            if written.resolution_ns is not None:
                # The input's resolution is the finest any of its parts shows.
                resolution = min(written.resolution_ns, resolution or written.resolution_ns)
        return PartsRead(stats=stats, spans=spans, logs=logs, resolution_ns=resolution or 0)

    def group(
        self,
        group: int,
        datasets: list[Path],
        resolutions: list[tuple[int, int]],
        *,
        span_sources: bool = True,
        pushdown: Pushdown | None = None,
        row_numbers: bool = False,
    ) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]], list[int]]:
        """The spans and logs of one group (datasets first, then the spilled inputs, each in
        reading order), the (rows, resolution) runs of its logs, and the spans read of each
        dataset. Without ``span_sources`` the spans' ``file:line`` may stay counted from their
        part's first line (the caller drops them). ``pushdown``: the filters the datasets'
        reads push down. ``row_numbers``: the spilled spans and logs keep their ``_span_row``
        and ``_log_row``, their numbers among all spans and logs spilled, in reading order."""
        span_frames: list[pl.DataFrame] = []
        log_frames: list[tuple[pl.DataFrame, list[tuple[int, int]]]] = []
        for path in datasets:
            spans, logs, runs = dataset.read_buckets(path, self.groups, group, pushdown)
            span_frames.append(spans)
            log_frames.append((logs, runs))
        dataset_spans = [frame.height for frame in span_frames]
        spilled = self._read("spans", group, shift=span_sources)
        span_frames.extend(f if row_numbers else f.drop("_span_row") for f in spilled)
        spilled_logs = list(self._read("logs", group))
        if spilled_logs:
            frame = pl.concat(spilled_logs, how="vertical")
            rows = frame.get_column("_log_row") if row_numbers else frame.drop_in_place("_log_row")
            ns = _per_row(resolutions, self.log_rows).gather(rows)
            run = ns.to_frame("ns").select(pl.col("ns").rle()).unnest("ns")
            log_frames.append((frame, [(int(n), int(v)) for n, v in run.iter_rows()]))
        runs = [r for _, frame_runs in log_frames for r in frame_runs]
        frames = [frame for frame, _ in log_frames if frame.height]
        spans = pl.concat(span_frames, how="vertical") if span_frames else empty_spans()
        logs = pl.concat(frames, how="vertical") if frames else empty_logs()
        if row_numbers:
            # A group nothing was spilled to has empty frames, without the numbers.
            spans, logs = _numbered(spans, "_span_row"), _numbered(logs, "_log_row")
        return spans, logs, runs, dataset_spans

    def _read(self, table: str, group: int, *, shift: bool = True) -> Iterator[pl.DataFrame]:
        for part in range(self.parts):
            path = part_file(self.directory, table, group, part)
            if not path.exists():
                continue
            frame = pl.read_ipc(path)
            path.unlink()
            if part in self.offsets:
                prefix, lines, log_rows, span_rows = self.offsets[part]
                if shift:
                    frame = shift_sources(frame, prefix, lines)
                if table == "logs":
                    frame = frame.with_columns(pl.col("_log_row") + log_rows)
                else:
                    frame = frame.with_columns(pl.col("_span_row") + span_rows)
            yield frame


def _per_row(resolutions: list[tuple[int, int]], rows: int) -> pl.Series:
    """Each of ``rows`` log rows' timestamp resolution, from the runs of (rows, resolution)."""
    runs = pl.DataFrame(
        {"n": [n for n, _ in resolutions], "ns": [ns for _, ns in resolutions]},
        schema={"n": pl.Int64, "ns": pl.Int64},
    )
    per_row = runs.select(pl.col("ns").repeat_by("n").explode()).to_series().drop_nulls()
    return per_row.extend_constant(0, max(0, rows - per_row.len()))


def _numbered(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    if column in frame.columns:
        return frame
    return frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(column))
