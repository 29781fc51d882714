"""Paths -> format detection -> readers -> one canonical Telemetry.

Everything a report needs comes out of ``load``: the span and log tables for all inputs together,
and per-input accounting (format, counts, skipped lines with the first locations) so that no
record is lost without a word.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import IO

import polars as pl

from ml_tracelens import limits
from ml_tracelens.durations import NS_PER_MS, NS_PER_US
from ml_tracelens.exceptions import InputError, MalformedInput
from ml_tracelens.ingest.inputs import ResolvedInputs, resolve
from ml_tracelens.ingest.log_spans import (
    DerivedSpans,
    spans_from_logs,
    timestamp_resolution_ns,
)
from ml_tracelens.ingest.telemetry import InputSummary, Progress, Telemetry
from ml_tracelens.readers import detect, registry
from ml_tracelens.readers.base import (
    BatchResult,
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support import foreign
from ml_tracelens.schema import LOG_SCHEMA, SPAN_SCHEMA, empty_logs, empty_spans, validate

__all__ = ["SNIFF_BYTES", "InputSummary", "Progress", "Telemetry", "load", "rechunked"]

#: How much of an input the sniffers see.
SNIFF_BYTES = 64 * 1024
#: What reading a damaged input raises: I/O errors, a gzip stream that ends early (EOFError) or
#: whose deflate data is corrupt (zlib.error, which is not an OSError).
_UNREADABLE = (OSError, EOFError, zlib.error)


def load(
    paths: Sequence[str],
    *,
    input_format: str | None = None,
    options: ReadOptions | None = None,
    stdin: IO[bytes] | None = None,
    progress: Progress | None = None,
) -> Telemetry:
    """Read every input into one Telemetry; raise InputError when nothing can be analysed."""
    options = options or ReadOptions()
    resolved = resolve(paths, stdin=stdin)
    try:
        return _load(resolved, input_format=input_format, options=options, progress=progress)
    except MemoryError:
        # Past reading (concatenating, deriving spans from logs): all the inputs together.
        names = ", ".join(source.name for source in resolved.sources[:3])
        more = len(resolved.sources) - 3
        raise limits.out_of_memory(names + (f" and {more:,} more" if more > 0 else "")) from None


def _load(
    resolved: ResolvedInputs,
    *,
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None,
) -> Telemetry:
    if progress is not None:
        progress.inputs([(source.name, source.size or 0) for source in resolved.sources])
    span_frames: list[pl.DataFrame] = []
    log_frames: list[pl.DataFrame] = []
    summaries: list[InputSummary] = []
    #: (log rows, timestamp resolution) per input, in row order: the slack of log-derived trees
    resolutions: list[tuple[int, int]] = []
    warnings = list(resolved.warnings)

    def account(
        source: InputSource,
        stats: ReadStats,
        spans: int,
        logs: pl.DataFrame,
        resolution: int | None = None,
    ) -> None:
        summaries.append(
            InputSummary(
                path=source.name, format=stats.format, spans=spans, logs=logs.height, stats=stats
            )
        )
        warnings.extend(_skip_warnings(source.name, stats))
        warnings.extend(_reader_warnings(source.name, stats))
        if stats.format == "unknown" and not stats.warnings:
            warnings.append(
                f"{source.name}: skipped, not a telemetry format tracelens reads "
                "(name it with --input-format to force a reader)"
            )
        if logs.height:
            if resolution is None:
                resolution = timestamp_resolution_ns(logs.get_column("time_ns"))
            if resolutions and resolutions[-1][1] == resolution:
                # One run per resolution rather than per input: 10,000 small files are one run.
                resolutions[-1] = (resolutions[-1][0] + logs.height, resolution)
            else:
                resolutions.append((logs.height, resolution))

    def keep(spans: pl.DataFrame, logs: pl.DataFrame) -> None:
        if spans.height:
            span_frames.append(spans)
        if logs.height:
            log_frames.append(logs)

    #: small inputs of one reader waiting to be read together (``ReaderSpec.read_many``)
    pending: list[InputSource] = []
    pending_reader: ReaderSpec | None = None

    def read_pending() -> None:
        nonlocal pending, pending_reader
        if pending_reader is None:
            return
        if progress is not None:
            progress.reading(pending[0].name)
        batch = _read_batch(pending_reader, pending, input_format=input_format, options=options)
        offset = 0
        for source, stats, span_count, log_count, resolution in zip(
            pending,
            batch.stats,
            batch.span_counts,
            batch.log_counts,
            _resolutions(batch.logs, batch.log_counts),
            strict=True,
        ):
            account(source, stats, span_count, batch.logs.slice(offset, log_count), resolution)
            offset += log_count
            if progress is not None:
                progress.read(source.name)
        keep(batch.spans, batch.logs)
        pending, pending_reader = [], None

    for source in resolved.sources:
        chosen = _choose_reader(source, input_format)
        if isinstance(chosen, ReaderSpec) and _batchable(chosen, source):
            if chosen is not pending_reader:
                read_pending()
            pending.append(source)
            pending_reader = chosen
            continue
        read_pending()
        if progress is not None:
            progress.reading(source.name)
        result = (
            chosen
            if isinstance(chosen, ReadResult)
            else _read(chosen, source, input_format, options)
        )
        if progress is not None:
            progress.read(source.name)
        account(source, result.stats, result.spans.height, result.logs)
        keep(result.spans, result.logs)
        del result
    read_pending()
    spans = pl.concat(span_frames, how="vertical") if span_frames else empty_spans()
    logs = pl.concat(log_frames, how="vertical") if log_frames else empty_logs()
    # The pieces share their memory with the concatenation: hold no other reference to them, so
    # rechunking below can free each column's pieces as it goes.
    span_frames.clear()
    log_frames.clear()
    spans, merged = merge_identical_duplicates(spans)
    derived = spans_from_logs(
        logs,
        known_trace_ids=spans.get_column("trace_id"),
        log_time=options.log_time,
        resolutions=resolutions,
    )
    if options.strict and derived.problems:
        location, reason = derived.problems[0]
        raise MalformedInput(
            f"{location}: stage line not turned into a span: {reason} (rejected by --strict)"
        )
    warnings.extend(_stage_line_warnings(derived))
    if derived.spans.height:
        spans = with_slack(spans, derived)
    # One chunk per column, once: on a frame of many chunks (readers concatenate one per 50,000
    # spans) every eager select or with_columns of polars copies all columns into one chunk again.
    spans, logs = rechunked(spans), rechunked(logs)
    if spans.is_empty() and logs.is_empty():
        formats = ", ".join(f"{s.path} ({s.format})" for s in summaries)
        # The warnings are never printed when this is raised: say why records were skipped.
        skipped = [
            w
            for s in summaries
            for w in (*_skip_warnings(s.path, s.stats), *_reader_warnings(s.path, s.stats))
        ]
        raise InputError(
            f"no spans or log records in {formats}; pass --input-format to override detection"
            + "".join(f"; {w}" for w in skipped)
        )
    return Telemetry(
        spans=spans,
        logs=logs,
        inputs=summaries,
        warnings=warnings,
        merged_duplicates=merged,
        derived_spans=derived.spans.height,
        log_span_lines=derived.span_lines,
        derived_roots=derived.derived_roots,
        log_lines_not_spans=derived.not_spans,
    )


def with_slack(spans: pl.DataFrame, derived: DerivedSpans) -> pl.DataFrame:
    """``spans`` and the log-derived spans in one frame, with the ``slack_ns`` column the
    analysis allows log-derived trees (null for spans read as spans)."""
    read = spans.with_columns(slack_ns=pl.lit(None, dtype=pl.Int64))
    made = derived.spans.with_columns(slack_ns=derived.slack_ns)
    return pl.concat([read, made], how="vertical")


def _resolutions(logs: pl.DataFrame, counts: Sequence[int]) -> list[int]:
    """``timestamp_resolution_ns`` of each run of ``counts`` rows of ``logs``, in one query."""
    if not logs.height:
        return [0] * len(counts)
    owner = pl.Series(
        [index for index, count in enumerate(counts) for _ in range(count)], dtype=pl.Int64
    )
    time = pl.col("time_ns")
    found = (
        logs.select(time, input=owner)
        .group_by("input")
        .agg(
            held=time.count(),
            off_ms=(time % NS_PER_MS != 0).any(),
            off_us=(time % NS_PER_US != 0).any(),
        )
    )
    out = [0] * len(counts)
    for index, held, off_ms, off_us in found.iter_rows():
        if held:
            out[index] = NS_PER_MS if not off_ms else NS_PER_US if not off_us else 0
    return out


def _stage_line_warnings(derived: DerivedSpans) -> Iterable[str]:
    lost = derived.unreadable_stage_lines
    if lost:
        total = sum(lost.values())
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in lost.items())
        first = "; ".join(f"{loc}: {reason}" for loc, reason in derived.problems)
        yield (
            f"{total:,} stage log line{'s' if total != 1 else ''} not turned into spans "
            f"({reasons}; first: {first})"
        )


#: Inputs up to this size are read together when their reader can (``ReaderSpec.read_many``):
#: per input, building frames costs more than reading a few hundred kilobytes.
BATCH_INPUT_BYTES = 256 * 1024


def read_source(
    source: InputSource, *, input_format: str | None, options: ReadOptions
) -> ReadResult:
    chosen = _choose_reader(source, input_format)
    if isinstance(chosen, ReadResult):
        return chosen
    return _read(chosen, source, input_format, options)


def _choose_reader(source: InputSource, input_format: str | None) -> ReaderSpec | ReadResult:
    """The reader for ``source``, or the result of an input no reader is for (empty, or not
    telemetry found in a directory)."""
    if input_format:
        reader = registry().get(input_format)
        if reader is None:
            known = ", ".join(registry())
            raise InputError(f"unknown input format {input_format!r}; known formats: {known}")
        return reader
    head = _head(source)
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        # An empty file is not an error in a directory of dumps; it is reported as such.
        return ReadResult(stats=ReadStats(format="empty"))
    profile = foreign.trace_events(head)
    reader = None if profile else detect(head)
    if reader is None:
        return _not_telemetry(source, profile or foreign.describe(head))
    return reader


def _batchable(reader: ReaderSpec, source: InputSource) -> bool:
    from ml_tracelens.readers.support.parallel import worker_count

    return (
        reader.read_many is not None
        and source.file_path is not None
        and source.size is not None
        and source.size <= BATCH_INPUT_BYTES
        # TRACELENS_PARALLEL_MIN_MB may ask for small files to be read on several processes.
        and worker_count(source.size) == 1
    )


def _read(
    reader: ReaderSpec, source: InputSource, input_format: str | None, options: ReadOptions
) -> ReadResult:
    if source.size:
        limits.check_address_space(source.name, source.size)
    try:
        result = reader.read(source, options)
    except MemoryError:
        raise limits.out_of_memory(source.name) from None
    except _UNREADABLE as exc:
        # Truncated or corrupt gzip streams and files that vanish mid-read surface here.
        raise _unreadable(source, exc) from exc
    validate(result.spans, SPAN_SCHEMA)
    validate(result.logs, LOG_SCHEMA)
    if not input_format and _nothing_recognised(result):
        return _not_recognised(source, result.stats)
    _refuse_under_strict(result.stats, options)
    return result


def _not_recognised(source: InputSource, stats: ReadStats) -> ReadResult:
    """An input read, none of whose records tracelens recognised: ``_not_telemetry``."""
    # One JSON document is named by its own keys; lines by the flattened keys of the first.
    keys = ", ".join(stats.sample_keys[: foreign.KEYS_SHOWN]) or "none"
    what = foreign.describe(_head(source)) or f"{foreign.NO_TELEMETRY} (keys seen: {keys})"
    return _not_telemetry(source, what)


def _read_batch(
    reader: ReaderSpec,
    sources: list[InputSource],
    *,
    input_format: str | None,
    options: ReadOptions,
) -> BatchResult:
    """``sources`` read together, with the checks ``_read`` makes of each."""
    assert reader.read_many is not None
    limits.check_address_space(sources[0].name, sum(source.size or 0 for source in sources))
    try:
        batch = reader.read_many(sources, options)
    except MemoryError:
        raise limits.out_of_memory(sources[0].name) from None
    except (*_UNREADABLE, InputError):
        # Read them one by one instead, so that the first input to fail (by its reading, or by
        # --strict) fails as a lone read does, by its name.
        for source in sources:
            _read(reader, source, input_format, options)
        raise
    validate(batch.spans, SPAN_SCHEMA)
    validate(batch.logs, LOG_SCHEMA)
    unrecognised = set() if input_format else _unrecognised_inputs(batch)
    for index, (source, stats) in enumerate(zip(sources, batch.stats, strict=True)):
        if index in unrecognised:
            batch.stats[index] = _not_recognised(source, stats).stats
        else:
            _refuse_under_strict(stats, options)
    if unrecognised:
        batch = _without_inputs(batch, unrecognised)
    return batch


def _unrecognised_inputs(batch: BatchResult) -> set[int]:
    """The inputs of ``batch`` that ``_nothing_recognised`` would turn away read alone."""
    candidates = {
        index
        for index, (stats, spans, logs) in enumerate(
            zip(batch.stats, batch.span_counts, batch.log_counts, strict=True)
        )
        if stats.format == "json-logs" and not spans and logs
    }
    if not candidates:
        return set()
    owner = pl.Series(
        [index for index, count in enumerate(batch.log_counts) for _ in range(count)],
        dtype=pl.Int64,
    )
    held = batch.logs.select(
        input=owner, held=pl.any_horizontal(pl.col(c).is_not_null() for c in _RECOGNISED)
    )
    recognised = held.group_by("input").agg(pl.col("held").any())
    return {
        index for index, any_held in recognised.iter_rows() if index in candidates and not any_held
    }


def _without_inputs(batch: BatchResult, dropped: set[int]) -> BatchResult:
    """``batch`` without the rows of the inputs ``dropped`` (their accounting stays)."""
    keep_logs, keep_spans = [], []
    log_start = span_start = 0
    for index, (spans, logs) in enumerate(zip(batch.span_counts, batch.log_counts, strict=True)):
        if index not in dropped:
            keep_logs.append(batch.logs.slice(log_start, logs))
            keep_spans.append(batch.spans.slice(span_start, spans))
        log_start += logs
        span_start += spans
    return BatchResult(
        stats=batch.stats,
        span_counts=[0 if i in dropped else n for i, n in enumerate(batch.span_counts)],
        log_counts=[0 if i in dropped else n for i, n in enumerate(batch.log_counts)],
        spans=pl.concat(keep_spans, how="vertical") if keep_spans else empty_spans(),
        logs=pl.concat(keep_logs, how="vertical") if keep_logs else empty_logs(),
    )


def _refuse_under_strict(stats: ReadStats, options: ReadOptions) -> None:
    if options.strict and stats.problems:
        location, reason = stats.problems[0]
        raise MalformedInput(f"{location}: {reason} (rejected by --strict)")


def _not_telemetry(source: InputSource, what: str | None) -> ReadResult:
    """An input no reader takes: named on the command line, an error saying what it is; found in
    a directory of dumps (a README, a config), listed as "unknown" and warned about, so a stray
    file does not sink the run."""
    if not source.found:
        if what and what.startswith("compressed with"):
            raise InputError(f"{source.name}: {what}")
        if what:
            said = (
                f"{foreign.NO_TELEMETRY} in {source.name}{what.removeprefix(foreign.NO_TELEMETRY)}"
                if what.startswith(foreign.NO_TELEMETRY)
                else f"{source.name}: {what}"
            )
            raise InputError(
                f"{said}; tracelens reads {foreign.SUPPORTED} (see `tracelens formats`)"
            )
        raise InputError(
            f"{source.name}: unknown format (not OTLP, Jaeger, Zipkin or JSON logs); "
            "pass --input-format to force one (see `tracelens formats`)"
        )
    stats = ReadStats(format="unknown")
    stats.ignore("unrecognised file (not telemetry)")
    if what:
        stats.warn(f"skipped: {what}")
    return ReadResult(stats=stats)


#: Log columns of which a telemetry line fills at least one.
_RECOGNISED = ("time_ns", "level", "message", "trace_id", "span_id", "correlation_id", "stage")


def _nothing_recognised(result: ReadResult) -> bool:
    """A JSON-lines reading none of whose lines has a key tracelens knows (``{"a": 1}``)."""
    logs = result.logs
    if result.spans.height or logs.is_empty() or result.stats.format != "json-logs":
        return False
    return not logs.select(
        pl.any_horizontal(pl.col(c).is_not_null().any() for c in _RECOGNISED)
    ).item()


def _head(source: InputSource) -> bytes:
    try:
        with source.open() as stream:
            return stream.read(SNIFF_BYTES)
    except _UNREADABLE as exc:
        raise _unreadable(source, exc) from exc


def _unreadable(source: InputSource, exc: BaseException) -> InputError:
    """The error for a failed read: the process's limit when one was hit (the input is not to
    blame), else the input and what went wrong."""
    return limits.os_limit_error(exc) or InputError(f"{source.name}: cannot read ({exc})")


def _skip_warnings(name: str, stats: ReadStats) -> Iterable[str]:
    if stats.skipped or stats.skipped_items:
        first = "; ".join(f"{loc}: {reason}" for loc, reason in stats.problems)
        parts = []
        if stats.skipped:
            unit = "lines" if stats.lines != 1 else "line"
            parts.append(f"{stats.skipped:,} malformed of {stats.lines:,} {unit}")
        if stats.skipped_items:
            parts.append(f"{stats.skipped_items:,} malformed spans or records inside them")
        yield f"{name}: skipped {' and '.join(parts)} (first: {first}); pass --strict to fail instead"


def _reader_warnings(name: str, stats: ReadStats) -> Iterable[str]:
    return (f"{name}: {message}" for message in (*stats.alteration_notes(), *stats.warnings))


def rechunked(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with one chunk per column, emptying ``frame`` (hold no other reference to it):
    column by column, so the peak is the frame plus one column, not twice the frame."""
    columns = []
    for name in frame.columns:
        columns.append(frame.drop_in_place(name).rechunk())
    return pl.DataFrame(columns)


def merge_identical_duplicates(spans: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop spans identical to an earlier one in every column but ``source``.

    Exporters retry and files overlap, so the same span is often read twice; conflicting
    duplicates (same ids, different content) are kept and reported by the tree analysis.
    """
    if spans.is_empty():
        return spans, 0
    # Only rows whose ids repeat can be duplicates; comparing every column of every row is not
    # needed for the (usual) dump without any. A 64-bit hash of the id pair finds the candidates:
    # hashing the pair as a struct would build a row per span (287 MB against 115 MB on 1M).
    pair_hash = pl.col("trace_id").hash(1) ^ pl.col("span_id").hash(2)
    maybe = spans.select(pair_hash.is_duplicated()).to_series()
    if not maybe.any():
        return spans, 0
    indexed = spans.with_row_index("_row")
    repeated = indexed.filter(maybe).filter(pl.struct("trace_id", "span_id").is_duplicated())
    if repeated.is_empty():  # only hash collisions
        return spans, 0
    content = [c for c in spans.columns if c != "source"]
    rows = repeated.get_column("_row")
    keep = repeated.unique(subset=content, keep="first", maintain_order=True).get_column("_row")
    dropped = rows.filter(~rows.is_in(keep.implode()))
    merged = indexed.filter(~pl.col("_row").is_in(dropped.implode())).drop("_row")
    return merged, spans.height - merged.height
