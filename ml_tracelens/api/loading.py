"""Reading inputs for the library: ``load`` (read and analyse, or take both from the cache),
``read`` (the canonical tables only), ``convert_dataset`` (a trace-bucketed Parquet dataset) and
``write_parquet_copy`` (one Parquet file)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ml_tracelens.core import Derived
from ml_tracelens.ingest import pipeline
from ml_tracelens.ingest.telemetry import Progress, Telemetry
from ml_tracelens.readers.base import Pushdown, ReadOptions
from ml_tracelens.readers.parquet import write_parquet

if TYPE_CHECKING:
    from ml_tracelens.readers.dataset import SourceFile

from ml_tracelens.api.results import AnalysedTelemetry, LogTime, PathsLike, SpanFilters


def read_options(
    *,
    fields: Mapping[str, str] | None = None,
    strict: bool = False,
    log_time: LogTime = "end",
    derived_stages: bool = True,
    pushdown: SpanFilters | None = None,
) -> ReadOptions:
    pushed = pushdown or {}
    return ReadOptions(
        field_map=dict(fields or {}),
        strict=strict,
        log_time=log_time,
        derived_stages=derived_stages,
        pushdown=Pushdown(
            since=pushed.get("since"),
            until=pushed.get("until"),
            services=tuple(pushed.get("services", ())),
        ),
    )


def load(
    paths: PathsLike,
    *,
    input_format: str | None = None,
    fields: Mapping[str, str] | None = None,
    strict: bool = False,
    log_time: LogTime = "end",
    derived_stages: bool = True,
    cache: bool = True,
    attributes: bool = True,
    logs: bool = True,
    progress: Progress | None = None,
    unread: Collection[str] = (),
    opaque: Collection[str] = (),
    summarise: Callable[[pl.DataFrame], object] | None = None,
    pushdown: SpanFilters | None = None,
    pairs: bool = False,
    derived: Derived | None = None,
) -> AnalysedTelemetry:
    """Read ``paths`` (files, directories, globs, ``.gz``, ``-`` for stdin) and analyse every
    trace, or take both from the cache.

    ``fields``: canonical log field -> key in the lines (``{"time": "ts"}``); ``log_time``:
    what a stage line's timestamp marks; ``derived_stages``: add ``queue``/``prefill``/``decode``
    child spans to LLM spans that carry those times (see ``llm``). ``attributes=False`` leaves the per-span JSON columns
    (attributes, resource, events, links, source) out, and ``logs=False`` the log table: faster
    on a warm cache, for reports that group by columns only; ``unread`` names further span
    columns the caller will not read (e.g. ``reports.latency.UNREAD``), left out alike: beyond the memory
    budget, what is kept of a dump is what decides the memory it takes. ``opaque`` names id
    columns the caller only groups and joins by (``reports.latency.OPAQUE``): beyond the
    budget they are kept as integers that tell the same ids apart. ``summarise``: beyond the
    budget, keep only what it returns of each group of analysed traces (``analysis.summaries``)
    and no spans, e.g. ``LatencySummarise(by)``, which ``latency`` reads. ``pushdown``: the
    filters the reports will be given; a dataset then reads only the traces holding a span
    their ``since``, ``until`` and ``services`` keep (each trace whole, so the filtered reports
    are those of the whole dataset; reports given other filters may miss traces). ``pairs``:
    the spans' attribute pairs come along, parsed once per dump and cached with it (``why``
    reads them instead of the attribute columns, which ``unread`` may then name).
    ``derived``: tables a report derives from the spans come along (``analysis.derived``),
    made once per dump and cached with it; a cache entry holding them gives them without any
    span column (``WHY_INDEX``: what ``why`` reads of the requests).
    """
    telemetry, analysis = pipeline.load_analysed(
        path_list(paths),
        input_format=input_format,
        options=read_options(
            fields=fields,
            strict=strict,
            log_time=log_time,
            derived_stages=derived_stages,
            pushdown=pushdown,
        ),
        use_cache=cache,
        progress=progress,
        without=(*(() if attributes else pipeline.HEAVY_COLUMNS), *unread),
        opaque=opaque,
        logs=logs,
        summarise=summarise,
        pairs=pairs,
        derived=derived,
    )
    return AnalysedTelemetry(telemetry, analysis)


def read(
    paths: PathsLike,
    *,
    input_format: str | None = None,
    fields: Mapping[str, str] | None = None,
    strict: bool = False,
    log_time: LogTime = "end",
    derived_stages: bool = True,
) -> Telemetry:
    """Read ``paths`` into the canonical tables without analysing them or using the cache."""
    from ml_tracelens import ingest

    return ingest.load(
        path_list(paths),
        input_format=input_format,
        options=read_options(
            fields=fields, strict=strict, log_time=log_time, derived_stages=derived_stages
        ),
    )


def write_parquet_copy(telemetry: Telemetry, output: Path) -> int:
    """Write ``telemetry``'s canonical tables to one Parquet file (``convert -o``), from which
    ``read`` gives the same tables and every report the same answers; the spans written (those
    read, as ``convert_dataset`` counts them)."""
    spans, resolution = _as_read(telemetry)
    write_parquet(spans, telemetry.logs, output, log_resolution_ns=resolution)
    return spans.height


def _as_read(telemetry: Telemetry) -> tuple[pl.DataFrame, pl.Series | None]:
    """The spans as read, and per log row the timestamp resolution of its file (None when the
    runs do not cover the logs): what a written copy holds.

    Spans derived from log lines and LLM stage spans (appended last, in that order, by
    ingest.load) are derived again when the copy is read, as from the dumps, so their counts,
    slack and --no-derived-stages behave the same on both."""
    derived = telemetry.derived_spans + telemetry.llm_stage_spans
    spans = telemetry.spans.head(telemetry.spans.height - derived).select(
        [c for c in telemetry.spans.columns if c != "slack_ns"]
    )
    runs = telemetry.log_resolutions
    if sum(rows for rows, _ in runs) != telemetry.logs.height:
        return spans, None
    per_run = (pl.repeat(ns, rows, dtype=pl.Int64, eager=True) for rows, ns in runs)
    return spans, pl.concat([pl.Series(dtype=pl.Int64), *per_run])


def path_list(paths: PathsLike) -> list[str]:
    if isinstance(paths, str | Path):
        return [str(paths)]
    return [str(p) for p in paths]


@dataclass(frozen=True)
class DatasetWritten:
    """What ``convert_dataset`` wrote: this conversion's rows and the dataset's totals."""

    spans: int
    logs: int
    total_spans: int
    total_logs: int
    buckets: int
    warnings: list[str]


def convert_dataset(
    paths: PathsLike,
    directory: str | Path,
    *,
    buckets: int | None = None,
    replace: bool = False,
    input_format: str | None = None,
    fields: Mapping[str, str] | None = None,
    strict: bool = False,
    log_time: LogTime = "end",
    derived_stages: bool = True,
) -> DatasetWritten:
    """Read ``paths`` and write (or append) them to the trace-bucketed dataset ``directory``
    (README: Large archives). Inputs already in it are refused unless ``replace``, which writes
    the dataset again from ``paths`` alone."""
    from ml_tracelens.ingest.inputs import resolve
    from ml_tracelens.readers import dataset, dataset_writer

    target = Path(directory)
    listed = path_list(paths)
    # Checked before the (long) read: a refused append costs nothing.
    sources = [
        dataset.SourceFile.of(s.file_path)
        for s in resolve(listed).sources
        if s.file_path is not None
    ]
    # Checked before taking the lock (which creates the directory), then again under it.
    dataset_writer.prepare(target, sources=sources, buckets=buckets, replace=replace)
    with dataset_writer.writing(target):
        return _convert_dataset(
            listed,
            target,
            sources,
            buckets=buckets,
            replace=replace,
            input_format=input_format,
            fields=fields,
            strict=strict,
            log_time=log_time,
            derived_stages=derived_stages,
        )


def _convert_dataset(
    listed: list[str],
    target: Path,
    sources: list[SourceFile],
    *,
    buckets: int | None,
    replace: bool,
    input_format: str | None,
    fields: Mapping[str, str] | None,
    strict: bool,
    log_time: LogTime,
    derived_stages: bool,
) -> DatasetWritten:
    from ml_tracelens.ingest import bounded_convert
    from ml_tracelens.ingest.inputs import resolve
    from ml_tracelens.readers import dataset, dataset_writer

    previous = dataset_writer.prepare(target, sources=sources, buckets=buckets, replace=replace)
    resolved = resolve(listed)
    groups = bounded_convert.groups_for(
        resolved, previous.buckets if previous else buckets or dataset.DEFAULT_BUCKETS
    )
    if groups is not None:
        # Beyond the memory budget: read, made whole and written a group of traces at a time.
        manifest, spans_written, logs_written, warnings = bounded_convert.convert(
            resolved,
            groups,
            target,
            sources=sources,
            buckets=buckets,
            previous=previous,
            replace=replace,
            input_format=input_format,
            options=read_options(
                fields=fields, strict=strict, log_time=log_time, derived_stages=derived_stages
            ),
        )
        return DatasetWritten(
            spans=spans_written,
            logs=logs_written,
            total_spans=manifest.spans,
            total_logs=manifest.logs,
            buckets=manifest.buckets,
            warnings=warnings,
        )
    telemetry = read(
        listed,
        input_format=input_format,
        fields=fields,
        strict=strict,
        log_time=log_time,
        derived_stages=derived_stages,
    )
    spans, resolution = _as_read(telemetry)
    manifest = dataset_writer.write(
        target,
        spans,
        telemetry.logs,
        log_resolution_ns=resolution,
        sources=sources,
        buckets=buckets,
        previous=previous,
        replace=replace,
    )
    return DatasetWritten(
        spans=spans.height,
        logs=telemetry.logs.height,
        total_spans=manifest.spans,
        total_logs=manifest.logs,
        buckets=manifest.buckets,
        warnings=telemetry.warnings,
    )
