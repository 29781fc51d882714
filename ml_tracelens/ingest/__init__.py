"""Paths -> format detection -> readers -> one canonical Telemetry.

Everything a report needs comes out of ``load``: the span and log tables for all inputs together,
and per-input accounting (format, counts, skipped lines with the first locations) so that no
record is lost without a word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

import polars as pl

from ml_tracelens import limits
from ml_tracelens.core import llm, llm_stages
from ml_tracelens.core.tree import repeated_pairs
from ml_tracelens.durations import NS_PER_MS, NS_PER_US
from ml_tracelens.exceptions import InputError, MalformedInput
from ml_tracelens.ingest.inputs import ResolvedInputs, resolve
from ml_tracelens.ingest.log_spans import (
    DerivedSpans,
    spans_from_logs,
    timestamp_resolution_ns,
)
from ml_tracelens.ingest.sources import (
    SNIFF_BYTES,
    batchable,
    choose_reader,
    read,
    read_batch,
    reader_warnings,
    skip_warnings,
)
from ml_tracelens.ingest.telemetry import InputSummary, Progress, Telemetry
from ml_tracelens.readers.base import (
    InputSource,
    ReaderSpec,
    ReadOptions,
    ReadResult,
    ReadStats,
)
from ml_tracelens.readers.support.log_aliases import llm_overrides
from ml_tracelens.schema import empty_logs, empty_spans

__all__ = [
    "SNIFF_BYTES",
    "InputSummary",
    "Normalized",
    "Progress",
    "Telemetry",
    "load",
    "normalized",
    "rechunked",
]


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
    span_frames: list[pl.DataFrame] = []
    log_frames: list[pl.DataFrame] = []

    def keep(spans: pl.DataFrame, logs: pl.DataFrame) -> None:
        if spans.height:
            span_frames.append(spans)
        if logs.height:
            log_frames.append(logs)

    found = read_inputs(
        resolved, input_format=input_format, options=options, progress=progress, keep=keep
    )
    spans = pl.concat(span_frames, how="vertical") if span_frames else empty_spans()
    logs = pl.concat(log_frames, how="vertical") if log_frames else empty_logs()
    # The pieces share their memory with the concatenation: hold no other reference to them, so
    # rechunking below can free each column's pieces as it goes.
    span_frames.clear()
    log_frames.clear()
    done = normalized(spans, logs, options=options, resolutions=found.resolutions)
    del spans, logs
    found.warnings.extend(done.warnings())
    if done.spans.is_empty() and done.logs.is_empty():
        raise nothing_to_analyse(found.summaries)
    return done.telemetry(
        inputs=found.summaries, warnings=found.warnings, resolutions=found.resolutions
    )


@dataclass(frozen=True)
class PartsRead:
    """An input read in parts by ``read_inputs``' ``read_parts``: its accounting, the rows it
    gave, and the timestamp resolution of its logs."""

    stats: ReadStats
    spans: int
    logs: int
    resolution_ns: int


@dataclass
class InputsRead:
    """The accounting of every input read: per input, the warnings so far, and (log rows,
    timestamp resolution in ns) per run of the log rows in the order they were kept."""

    summaries: list[InputSummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resolutions: list[tuple[int, int]] = field(default_factory=list)


def read_inputs(
    resolved: ResolvedInputs,
    *,
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None,
    keep: Callable[[pl.DataFrame, pl.DataFrame], None],
    read_parts: Callable[[ReaderSpec, InputSource], PartsRead | None] | None = None,
) -> InputsRead:
    """Read every input, handing its spans and logs to ``keep`` in input order.
    ``read_parts``: reads an input in parts and keeps them itself, when it can (a large file
    of lines), so no more of it is in memory at once; None when it cannot."""
    if progress is not None:
        progress.inputs([(source.name, source.size or 0) for source in resolved.sources])
    found = InputsRead(warnings=list(resolved.warnings))
    summaries, warnings, resolutions = found.summaries, found.warnings, found.resolutions

    def account(
        source: InputSource,
        stats: ReadStats,
        spans: int,
        logs: pl.DataFrame,
        resolution: int | None = None,
        runs: list[tuple[int, int]] | None = None,
        log_rows: int | None = None,
    ) -> None:
        log_count = logs.height if log_rows is None else log_rows
        summaries.append(
            InputSummary(
                path=source.name, format=stats.format, spans=spans, logs=log_count, stats=stats
            )
        )
        warnings.extend(skip_warnings(source.name, stats))
        warnings.extend(reader_warnings(source.name, stats))
        if stats.format == "unknown" and not stats.warnings:
            warnings.append(
                f"{source.name}: skipped, not a telemetry format tracelens reads "
                "(name it with --input-format to force a reader)"
            )
        if log_count:
            if resolution is None and runs is None:
                resolution = timestamp_resolution_ns(logs.get_column("time_ns"))
            for rows, ns in runs if runs is not None else [(log_count, resolution or 0)]:
                if resolutions and resolutions[-1][1] == ns:
                    # One run per resolution rather than per input: 10,000 small files are one.
                    resolutions[-1] = (resolutions[-1][0] + rows, ns)
                else:
                    resolutions.append((rows, ns))

    #: small inputs of one reader waiting to be read together (``ReaderSpec.read_many``)
    pending: list[InputSource] = []
    pending_reader: ReaderSpec | None = None

    def read_pending() -> None:
        nonlocal pending, pending_reader
        if pending_reader is None:
            return
        if progress is not None:
            progress.reading(pending[0].name)
        batch = read_batch(pending_reader, pending, input_format=input_format, options=options)
        offset = 0
        for source, stats, span_count, log_count, resolution in zip(
            pending,
            batch.stats,
            batch.span_counts,
            batch.log_counts,
            timestamp_resolutions(batch.logs, batch.log_counts),
            strict=True,
        ):
            account(source, stats, span_count, batch.logs.slice(offset, log_count), resolution)
            offset += log_count
            if progress is not None:
                progress.read(source.name)
        keep(batch.spans, batch.logs)
        pending, pending_reader = [], None

    for source in resolved.sources:
        chosen = choose_reader(source, input_format)
        if isinstance(chosen, ReaderSpec) and batchable(chosen, source):
            if chosen is not pending_reader:
                read_pending()
            pending.append(source)
            pending_reader = chosen
            continue
        read_pending()
        if progress is not None:
            progress.reading(source.name)
        parts = None
        if read_parts is not None and isinstance(chosen, ReaderSpec):
            parts = read_parts(chosen, source)
        if parts is not None:
            if progress is not None:
                progress.read(source.name)
            runs = [(parts.logs, parts.resolution_ns)] if parts.logs else []
            account(source, parts.stats, parts.spans, empty_logs(), runs=runs, log_rows=parts.logs)
            continue
        result = (
            chosen
            if isinstance(chosen, ReadResult)
            else read(chosen, source, input_format, options)
        )
        if progress is not None:
            progress.read(source.name)
        account(source, result.stats, result.spans.height, result.logs, runs=result.log_resolutions)
        keep(result.spans, result.logs)
        del result
    read_pending()
    return found


def nothing_to_analyse(summaries: Sequence[InputSummary]) -> InputError:
    formats = ", ".join(f"{s.path} ({s.format})" for s in summaries)
    # The warnings are never printed when this is raised: say why records were skipped.
    skipped = [
        w
        for s in summaries
        for w in (*skip_warnings(s.path, s.stats), *reader_warnings(s.path, s.stats))
    ]
    return InputError(
        f"no spans or log records in {formats}; pass --input-format to override detection"
        + "".join(f"; {w}" for w in skipped)
    )


@dataclass
class Normalized:
    """The canonical tables of what was read, made whole: identical duplicates merged, spans
    derived from stage log lines and LLM stage spans added; and what each step found."""

    spans: pl.DataFrame
    logs: pl.DataFrame
    merged_duplicates: int
    derived: DerivedSpans
    llm: LlmFound
    llm_overrides: dict[str, tuple[str, int]]
    #: each span's parent row when every span was made from log lines (``Telemetry``)
    span_parents: pl.Series | None = None

    def warnings(self) -> list[str]:
        return [*_stage_line_warnings(self.derived), *self.llm.warnings]

    def telemetry(
        self,
        *,
        inputs: list[InputSummary],
        warnings: list[str],
        resolutions: list[tuple[int, int]],
    ) -> Telemetry:
        return Telemetry(
            spans=self.spans,
            logs=self.logs,
            inputs=inputs,
            warnings=warnings,
            merged_duplicates=self.merged_duplicates,
            derived_spans=self.derived.spans.height,
            log_span_lines=self.derived.span_lines,
            derived_roots=self.derived.derived_roots,
            log_lines_not_spans=self.derived.not_spans,
            llm_spans=self.llm.spans,
            llm_fields=self.llm.fields,
            llm_stage_spans=self.llm.stage_spans,
            llm_overrides=self.llm_overrides,
            log_resolutions=resolutions,
            span_parents=self.span_parents,
        )


def normalized(
    spans: pl.DataFrame,
    logs: pl.DataFrame,
    *,
    options: ReadOptions,
    resolutions: list[tuple[int, int]],
) -> Normalized:
    """``spans`` and ``logs`` as read (all of a trace's spans and log lines among them) made
    whole; raises MalformedInput under ``--strict`` when a stage line could not become a span.
    ``resolutions``: (log rows, timestamp resolution in ns) per run of ``logs``."""
    spans, merged = merge_identical_duplicates(spans)
    read_spans = spans.height
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
    if derived.spans.height:
        spans = with_slack(spans, derived)
    overrides = llm_overrides(options.field_map)
    spans, llm = with_llm_stages(spans, enabled=options.derived_stages, overrides=overrides)
    only_made = not read_spans and not llm.stage_spans
    # One chunk per column, once: on a frame of many chunks (readers concatenate one per 50,000
    # spans) every eager select or with_columns of polars copies all columns into one chunk again.
    # A log read in blocks has a chunk per 128 MB, and spans made from its lines share its
    # texts: a copy of the log table would hold them twice (20-30 MB more at the peak on 1M
    # lines), so only logs of many pieces (many small inputs) are made one.
    spans = rechunked(spans)
    logs = rechunked(logs) if logs.n_chunks() > LOG_CHUNKS_KEPT else logs
    return Normalized(
        spans=spans,
        logs=logs,
        merged_duplicates=merged,
        derived=derived,
        llm=llm,
        llm_overrides=overrides,
        span_parents=derived.parent_rows if only_made else None,
    )


@dataclass(frozen=True)
class LlmFound:
    """What ``with_llm_stages`` found: LLM spans, the keys that held values, stages added, and
    per LLM field the values that are not non-negative numbers (ignored)."""

    spans: int = 0
    fields: dict[str, list[str]] = field(default_factory=dict)
    stage_spans: int = 0
    unusable: dict[str, int] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        if not self.unusable:
            return []
        counts = ", ".join(f"{n:,} {name.removesuffix('_ns')}" for name, n in self.unusable.items())
        return [f"LLM attribute values that are not non-negative numbers were ignored: {counts}"]


def with_llm_stages(
    spans: pl.DataFrame,
    *,
    enabled: bool,
    overrides: dict[str, tuple[str, int]] | None = None,
) -> tuple[pl.DataFrame, LlmFound]:
    """``spans`` plus the derived ``queue``/``prefill``/``decode`` spans of core/llm.py (when
    ``enabled``), and what was found: read here once, so a cached dump answers ``summary``
    without scanning attributes again."""
    found = llm.llm_spans(spans, aliases=llm.with_overrides(overrides))
    if found.frame.is_empty():
        return spans, LlmFound()
    made = (
        llm_stages.derived_stages(spans, found.frame, schema=spans.schema)
        if enabled
        else spans.clear()
    )
    if made.height:
        spans = pl.concat([spans, made], how="vertical")
    return spans, LlmFound(
        spans=found.frame.height,
        fields=found.found,
        stage_spans=made.height,
        unusable=dict(found.unusable),
    )


def with_slack(spans: pl.DataFrame, derived: DerivedSpans) -> pl.DataFrame:
    """``spans`` and the log-derived spans in one frame, with the ``slack_ns`` column the
    analysis allows log-derived trees (null for spans read as spans)."""
    read = spans.with_columns(slack_ns=pl.lit(None, dtype=pl.Int64))
    made = derived.spans.with_columns(slack_ns=derived.slack_ns)
    return pl.concat([read, made], how="vertical")


def timestamp_resolutions(logs: pl.DataFrame, counts: Sequence[int]) -> list[int]:
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


#: Chunks a log table may keep as read (see ``normalized``).
LOG_CHUNKS_KEPT = 64


def rechunked(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with one chunk per column, emptying ``frame`` (hold no other reference to it):
    column by column, so the peak is the frame plus one column, not twice the frame."""
    columns = []
    for name in frame.columns:
        columns.append(frame.drop_in_place(name).rechunk())
    return pl.DataFrame(columns)


def merge_identical_duplicates(
    spans: pl.DataFrame, ignore: Sequence[str] = ("source",)
) -> tuple[pl.DataFrame, int]:
    """Drop spans identical to an earlier one in every column but those in ``ignore``.

    Exporters retry and files overlap, so the same span is often read twice; conflicting
    duplicates (same ids, different content) are kept and reported by the tree analysis.
    """
    if spans.is_empty():
        return spans, 0
    # Only rows whose ids repeat can be duplicates; comparing every column of every row is not
    # needed for the (usual) dump without any.
    ids_repeat = repeated_pairs(spans, "trace_id", "span_id")
    if not ids_repeat.any():
        return spans, 0
    indexed = spans.with_row_index("_row")
    repeated = indexed.filter(ids_repeat)
    content = [c for c in spans.columns if c not in ignore]
    rows = repeated.get_column("_row")
    keep = repeated.unique(subset=content, keep="first", maintain_order=True).get_column("_row")
    dropped = rows.filter(~rows.is_in(keep.implode()))
    merged = indexed.filter(~pl.col("_row").is_in(dropped.implode())).drop("_row")
    return merged, spans.height - merged.height
