"""Reading one input, or a batch of small ones, through its reader: the reader chosen (forced,
or detected from the head), the result validated against the canonical schemas, damaged input
and inputs that are not telemetry named, ``--strict`` enforced, and what each reader skipped put
into words for the user."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

import polars as pl

from ml_tracelens import limits
from ml_tracelens.exceptions import InputError, MalformedInput, quoted
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

#: How much of an input the sniffers see.
SNIFF_BYTES = 64 * 1024
#: What reading a damaged input raises: I/O errors, a gzip stream that ends early (EOFError) or
#: whose deflate data is corrupt (zlib.error, which is not an OSError).
_UNREADABLE = (OSError, EOFError, zlib.error)

#: Inputs up to this size are read together when their reader can (``ReaderSpec.read_many``):
#: per input, building frames costs more than reading a few hundred kilobytes.
BATCH_INPUT_BYTES = 256 * 1024


def read_source(
    source: InputSource, *, input_format: str | None, options: ReadOptions
) -> ReadResult:
    chosen = choose_reader(source, input_format)
    if isinstance(chosen, ReadResult):
        return chosen
    return read(chosen, source, input_format, options)


def choose_reader(source: InputSource, input_format: str | None) -> ReaderSpec | ReadResult:
    """The reader for ``source``, or the result of an input no reader is for (empty, or not
    telemetry found in a directory)."""
    if source.path is not None and source.path.is_dir():
        # A dataset directory (the only directory a source can be) is one, whatever the format
        # asked for: its part files are read by no other reader.
        from ml_tracelens.readers import dataset

        return dataset.READER
    if input_format:
        reader = registry().get(input_format)
        if reader is None:
            known = ", ".join(registry())
            raise InputError(f"unknown input format {quoted(input_format)}; known formats: {known}")
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


def batchable(reader: ReaderSpec, source: InputSource) -> bool:
    from ml_tracelens.readers.support.parallel import worker_count

    return (
        reader.read_many is not None
        and source.file_path is not None
        and source.size is not None
        and source.size <= BATCH_INPUT_BYTES
        # TRACELENS_PARALLEL_MIN_MB may ask for small files to be read on several processes.
        and worker_count(source.size) == 1
    )


def read(
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


def read_in_ranges(
    reader: ReaderSpec,
    source: InputSource,
    input_format: str | None,
    options: ReadOptions,
    range_bytes: int,
    sink: Callable[[ReadResult, int], object] | None = None,
) -> Iterator[ReadResult] | None:
    """``source`` read ``range_bytes`` at a time (each part's frames handed to ``sink`` where
    it is read, when given), when it is larger and its reader can cut it (checked as ``read``
    checks a whole input); None otherwise."""
    if reader.read_ranges is None or not source.size or source.size <= range_bytes:
        return None
    parts = reader.read_ranges(source, options, range_bytes, sink)
    if parts is None:
        return None
    return _checked_parts(source, parts, options)


def _checked_parts(
    source: InputSource, parts: Iterator[ReadResult], options: ReadOptions
) -> Iterator[ReadResult]:
    try:
        for part in parts:
            validate(part.spans, SPAN_SCHEMA)
            validate(part.logs, LOG_SCHEMA)
            _refuse_under_strict(part.stats, options)
            yield part
    except MemoryError:
        raise limits.out_of_memory(source.name) from None
    except _UNREADABLE as exc:
        raise _unreadable(source, exc) from exc


def _not_recognised(source: InputSource, stats: ReadStats) -> ReadResult:
    """An input read, none of whose records tracelens recognised: ``_not_telemetry``."""
    # One JSON document is named by its own keys; lines by the flattened keys of the first.
    keys = ", ".join(stats.sample_keys[: foreign.KEYS_SHOWN]) or "none"
    what = foreign.describe(_head(source)) or f"{foreign.NO_TELEMETRY} (keys seen: {keys})"
    return _not_telemetry(source, what)


def read_batch(
    reader: ReaderSpec,
    sources: list[InputSource],
    *,
    input_format: str | None,
    options: ReadOptions,
) -> BatchResult:
    """``sources`` read together, with the checks ``read`` makes of each."""
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
            read(reader, source, input_format, options)
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


def skip_warnings(name: str, stats: ReadStats) -> Iterable[str]:
    if stats.skipped or stats.skipped_items:
        first = "; ".join(f"{loc}: {reason}" for loc, reason in stats.problems)
        parts = []
        if stats.skipped:
            unit = "lines" if stats.lines != 1 else "line"
            parts.append(f"{stats.skipped:,} malformed of {stats.lines:,} {unit}")
        if stats.skipped_items:
            parts.append(f"{stats.skipped_items:,} malformed spans or records inside them")
        yield f"{name}: skipped {' and '.join(parts)} (first: {first}); pass --strict to fail instead"


def reader_warnings(name: str, stats: ReadStats) -> Iterable[str]:
    return (f"{name}: {message}" for message in (*stats.alteration_notes(), *stats.warnings))
