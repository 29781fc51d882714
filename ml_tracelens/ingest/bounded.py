"""Inputs bigger than memory, analysed a group of traces at a time.

Every per-trace step (merging duplicates, spans from stage log lines, LLM stages, the tree, self
time, critical path, error origin) needs all of one trace and nothing of the others; only the
final statistics are global. So the inputs are cut into ``groups`` by a stable hash of the trace
(``crc32(utf8(trace_id)) mod groups``, the dataset's bucket hash; a log record by its trace id,
else its correlation id), each group is made whole and analysed alone, and of its analysed spans
only the columns the command reads are kept: memory grows with those, not with the inputs.

- A dataset (``convert --dataset``) is read a group of its buckets at a time: ``groups`` divides
  its bucket count, so bucket ``b`` belongs to group ``b mod groups``, and a trace's group is
  the same whether it is read from a dataset or a dump.
- Other inputs, when together larger than the memory budget (``TRACELENS_MEMORY_BUDGET``, bytes
  or ``512M``, ``2G``; default 1 GiB of input), are spilled first (``ingest.spill``): read a
  quarter of the budget at a time where their reader can cut them (OTLP JSON lines, on worker
  processes), each part's rows written to one Arrow file per group in a scratch directory.
- Each group is analysed on a worker process when groups are large; the main process keeps what
  the workers hand back and the accounting of every step.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import polars as pl

from ml_tracelens.core import Analysis, Structure, analyze
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.ingest import (
    InputsRead,
    LlmFound,
    Normalized,
    normalized,
    nothing_to_analyse,
    read_inputs,
    rechunked,
)
from ml_tracelens.ingest.inputs import ResolvedInputs
from ml_tracelens.ingest.log_spans import DerivedSpans
from ml_tracelens.ingest.spill import Spill, compression_for
from ml_tracelens.ingest.telemetry import InputSummary, Progress, Telemetry
from ml_tracelens.readers import dataset
from ml_tracelens.readers.base import (
    MAX_PROBLEMS_KEPT,
    InputSource,
    ReadOptions,
)
from ml_tracelens.readers.support import parallel
from ml_tracelens.schema import SPAN_SCHEMA, empty_logs, empty_spans

BUDGET_VARIABLE = "TRACELENS_MEMORY_BUDGET"
DEFAULT_BUDGET = 1024**3
#: Bytes of a JSON dump per span, to size groups before reading (an OTLP line of the Collector
#: file exporter: 340 on the benchmark dump; Jaeger and Zipkin spans are larger).
BYTES_PER_SPAN = 340
#: A group is a quarter of the budget: its canonical tables and their analysis, while the spans
#: kept of the groups before it are held too.
GROUP_SHARE = 4
#: What a report keeps of a group of analysed spans instead of the spans (picklable: it runs
#: where the group is analysed), e.g. ``reports.latency_parts.Summarise``.
Summarise = Callable[[pl.DataFrame], object]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def memory_budget() -> int:
    """The input size beyond which inputs are analysed a group of traces at a time."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not text:
        return DEFAULT_BUDGET
    match = _SIZE.match(text)
    if not match:
        raise UsageError(
            f"{BUDGET_VARIABLE}={quoted(text)}: expected a size in bytes, or with K, M, G or T "
            "(e.g. 512M, 2G)"
        )
    scale = 1024 ** " kmgt".index(match[2].lower() or " ")
    return max(1, int(float(match[1]) * scale))


def plan(resolved: ResolvedInputs) -> int | None:
    """How many groups to analyse the inputs in; None: they fit, read them at once."""
    budget = memory_budget()
    datasets, others = _split(resolved)
    other_bytes = sum(_json_bytes(source) for source in others)
    manifests = [dataset.read_manifest(path) for path in datasets]
    # A dataset counts as the JSON its spans would take.
    total = other_bytes + BYTES_PER_SPAN * sum(m.spans for m in manifests)
    if total <= budget:
        return None
    wanted = math.ceil(total / max(1, budget // GROUP_SHARE))
    if not manifests:
        return max(1, wanted)
    # A divisor of every dataset's bucket count: its buckets then fall into whole groups.
    common = math.gcd(*(m.buckets for m in manifests))
    return next((d for d in range(max(1, wanted), common + 1) if common % d == 0), common)


#: How much JSON a gzipped input holds per byte, to size groups before reading it (OTLP and log
#: lines compress 8-15x).
GZIP_RATIO = 8


def _json_bytes(source: InputSource) -> int:
    """The bytes of JSON an input holds: its size, or an estimate for a compressed file."""
    compressed = source.path is None and source.file_path is not None
    return (source.size or 0) * (GZIP_RATIO if compressed else 1)


def _split(resolved: ResolvedInputs) -> tuple[list[Path], list[InputSource]]:
    datasets = [
        s.path for s in resolved.sources if s.path is not None and dataset.is_dataset(s.path)
    ]
    others = [s for s in resolved.sources if s.path is None or not dataset.is_dataset(s.path)]
    return datasets, others


def load(
    resolved: ResolvedInputs,
    groups: int,
    *,
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None,
    without: Collection[str],
    opaque: Collection[str] = (),
    summarise: Summarise | None = None,
) -> tuple[Telemetry, Analysis]:
    """Read and analyse the inputs ``groups`` traces' groups at a time, keeping the analysed
    spans without the columns in ``without``, and the id columns in ``opaque`` (which the
    caller only groups and joins by) as integers that tell the same ids apart; or, given
    ``summarise``, only what it returns of each group's analysed spans (``Analysis.summaries``),
    and no spans."""
    datasets, _ = _split(resolved)
    with spilled(resolved, groups, input_format, options, progress) as (spill, found):
        combined = Combined()
        jobs = [
            GroupJob(
                spill,
                group,
                datasets,
                found.resolutions,
                options,
                tuple(without),
                tuple(opaque),
                summarise,
            )
            for group in range(groups)
        ]
        for index, result in enumerate(_analysed_groups(jobs, spill)):
            if progress is not None:
                progress.reading(f"analysing traces (group {index + 1:,} of {groups:,})")
            combined.add(result)
    summaries = [*_dataset_summaries(datasets, combined.dataset_spans), *found.summaries]
    done = combined.normalized()
    if not combined.span_count and done.logs.is_empty():
        raise nothing_to_analyse(summaries)
    warnings = [*found.warnings, *done.warnings()]
    telemetry = done.telemetry(inputs=summaries, warnings=warnings, resolutions=[])
    telemetry.derived_spans = combined.derived_spans
    return telemetry, Analysis(
        spans=combined.analysed(),
        structure=combined.structure(),
        summaries=tuple(combined.summaries),
    )


@contextmanager
def spilled(
    resolved: ResolvedInputs,
    groups: int,
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None,
) -> Iterator[tuple[Spill, InputsRead]]:
    """The inputs other than datasets read into a spill of ``groups`` groups (removed on
    leaving), and what reading them found."""
    _, others = _split(resolved)
    with tempfile.TemporaryDirectory(prefix="tracelens-spill-") as scratch:
        json_bytes = sum(_json_bytes(source) for source in others)
        spill = Spill(Path(scratch), groups, compression_for(Path(scratch), json_bytes))
        found = InputsRead(warnings=list(resolved.warnings))
        if others:
            found = read_inputs(
                ResolvedInputs(sources=others, warnings=resolved.warnings),
                input_format=input_format,
                options=options,
                progress=progress,
                keep=spill.keep,
                read_parts=lambda reader, source: spill.read_parts(
                    reader, source, input_format, options, max(1, memory_budget() // GROUP_SHARE)
                ),
            )
        yield spill, found


def _dataset_summaries(datasets: list[Path], spans_read: list[int]) -> list[InputSummary]:
    summaries = []
    # No group may have been analysed (nothing read): then none was read of any dataset.
    counts = [*spans_read, *[0] * (len(datasets) - len(spans_read))]
    for path, spans in zip(datasets, counts, strict=True):
        manifest = dataset.read_manifest(path)
        summaries.append(
            InputSummary(
                path=str(path),
                format=dataset.NAME,
                spans=spans,
                logs=manifest.logs,
                stats=dataset.read_stats(manifest, spans),
            )
        )
    return summaries


@dataclass(frozen=True)
class GroupJob:
    """One group to analyse (picklable: a worker process may do it)."""

    spill: Spill
    group: int
    datasets: list[Path]
    resolutions: list[tuple[int, int]]
    options: ReadOptions
    without: tuple[str, ...]
    opaque: tuple[str, ...] = ()
    summarise: Summarise | None = None


@dataclass
class GroupResult:
    """A group analysed: what its steps found (tables emptied), its structure, its span count,
    the files holding its kept spans and its logs, and its summary when one was asked for."""

    done: Normalized
    structure: Structure
    derived_spans: int
    spans: int
    spans_path: Path
    logs_path: Path
    summary: object = None
    #: spans read of each dataset (fewer than it holds when filters are pushed down)
    dataset_spans: list[int] = field(default_factory=list)


def analyse_group(job: GroupJob) -> GroupResult:
    """Make one group whole, analyse it, and write its analysed spans (without the columns
    ``job.without`` names) and its logs next to the spill."""
    spans, logs, resolutions, dataset_spans = job.spill.group(
        job.group,
        job.datasets,
        job.resolutions,
        span_sources="source" not in job.without,
        pushdown=job.options.pushdown,
    )
    done = normalized(spans, logs, options=job.options, resolutions=resolutions)
    del spans, logs
    # As the pipeline does: the merged duplicates are warned about from the telemetry.
    analysis = analyze(done.spans)
    summary = job.summarise(analysis.spans) if job.summarise is not None else None
    kept = analysis.spans.drop(job.without, strict=False)
    if job.summarise is not None:
        kept = kept.clear()
    if job.opaque:
        # Ids as integers, the group in the high bits: a trace lies in one group, so they
        # tell apart what the texts do (8 bytes a span each instead of 32 to 48). The code of
        # a text is its Categorical one in this process (a sort to rank the texts costs twice
        # as much); other groups here reuse the codes, the group bits part them from others.
        base = job.group << 40
        kept = kept.with_columns(
            (pl.col(c).cast(pl.Categorical).to_physical().cast(pl.UInt64) + base).alias(c)
            for c in job.opaque
            if c in kept.columns
        )
    stem = job.spill.directory / f"analysed-{job.group:04d}"
    spans_path, logs_path = stem.with_suffix(".spans.arrow"), stem.with_suffix(".logs.arrow")
    kept.write_ipc(spans_path, compression="lz4")
    done.logs.write_ipc(logs_path, compression="lz4")
    derived = done.derived.spans.height
    # The counts travel back; the tables do so through the files.
    done.spans, done.logs = done.spans.clear(), done.logs.clear()
    done.derived.spans = done.derived.spans.clear()
    done.derived.slack_ns = done.derived.slack_ns.clear()
    return GroupResult(
        done,
        analysis.structure,
        derived,
        analysis.spans.height,
        spans_path,
        logs_path,
        summary,
        dataset_spans,
    )


def _analysed_groups(jobs: list[GroupJob], spill: Spill) -> Iterator[GroupResult]:
    """Each group analysed, in order: on worker processes (one per core) when the groups are
    large, each process holding only its group; else here."""
    # Worker processes when a group is as large as an input read on several cores (starting
    # them costs more than small groups save).
    workers = min(len(jobs), parallel.worker_count(memory_budget() // GROUP_SHARE))
    calls = [functools.partial(analyse_group, job) for job in jobs]
    # One group waits beyond those being analysed: the groups' files are the memory.
    for result, _ in parallel.in_order_on_workers(calls, workers, [__name__]):
        yield result


@dataclass
class Combined:
    """The groups analysed so far: their kept spans, logs and what each step found."""

    spans: list[pl.DataFrame] = field(default_factory=list)
    canonical: list[str] = field(default_factory=list)
    logs: list[pl.DataFrame] = field(default_factory=list)
    parts: list[Normalized] = field(default_factory=list)
    structures: list[Structure] = field(default_factory=list)
    summaries: list[object] = field(default_factory=list)
    derived_spans: int = 0
    span_count: int = 0
    dataset_spans: list[int] = field(default_factory=list)

    def add(self, result: GroupResult) -> None:
        kept = pl.read_ipc(result.spans_path)
        logs = pl.read_ipc(result.logs_path)
        result.spans_path.unlink()
        result.logs_path.unlink()
        if not self.canonical:
            self.canonical = [c for c in kept.columns if c in SPAN_SCHEMA or c == "slack_ns"]
        if kept.height:
            self.spans.append(kept)
        if logs.height:
            self.logs.append(logs)
        self.parts.append(result.done)
        self.structures.append(result.structure)
        self.derived_spans += result.derived_spans
        self.span_count += result.spans
        self.dataset_spans = [
            a + b
            for a, b in itertools.zip_longest(self.dataset_spans, result.dataset_spans, fillvalue=0)
        ]
        if result.summary is not None and result.spans:
            self.summaries.append(result.summary)

    def analysed(self) -> pl.DataFrame:
        """The kept spans of every group in one frame of one chunk per column (once; a column
        at a time, so the peak is the frame and one column): on a frame of a chunk per group,
        a group-by of ten million spans takes six times the memory and four times the time."""
        if len(self.spans) > 1:
            self.spans = [rechunked(pl.concat(self.spans, how="vertical"))]
        return self.spans[0] if self.spans else empty_spans()

    def normalized(self) -> Normalized:
        spans = self.analysed()
        first = self.parts[0]
        derived = DerivedSpans(
            spans=empty_spans().clear(),
            slack_ns=pl.Series("slack_ns", [], dtype=pl.Int64),
            derived_roots=sum(p.derived.derived_roots for p in self.parts),
            span_lines=sum(p.derived.span_lines for p in self.parts),
            not_spans=_summed([p.derived.not_spans for p in self.parts]),
            problems=[x for p in self.parts for x in p.derived.problems][:MAX_PROBLEMS_KEPT],
        )
        fields_found: dict[str, list[str]] = {}
        for part in self.parts:
            for name, keys in part.llm.fields.items():
                known = fields_found.setdefault(name, [])
                known.extend(k for k in keys if k not in known)
        llm = LlmFound(
            spans=sum(p.llm.spans for p in self.parts),
            fields=fields_found,
            stage_spans=sum(p.llm.stage_spans for p in self.parts),
            unusable=_summed([p.llm.unusable for p in self.parts]),
        )
        return Normalized(
            spans=spans.select([c for c in self.canonical if c in spans.columns]),
            logs=pl.concat(self.logs, how="vertical") if self.logs else empty_logs(),
            merged_duplicates=sum(p.merged_duplicates for p in self.parts),
            derived=derived,
            llm=llm,
            llm_overrides=first.llm_overrides,
        )

    def structure(self) -> Structure:
        counts = {
            item.name: sum(getattr(s, item.name) for s in self.structures)
            for item in fields(Structure)
            if item.name != "skew_by_service_pair"
        }
        pairs = _summed([s.skew_by_service_pair for s in self.structures])
        # Most frequent first, then by name (no service first), as core.analyze orders them.
        order = sorted(
            pairs.items(),
            key=lambda item: (-item[1], *((name is not None, name or "") for name in item[0])),
        )
        return Structure(**counts, skew_by_service_pair=dict(order))


K = TypeVar("K")


def _summed(counts: list[dict[K, int]]) -> dict[K, int]:
    total: dict[K, int] = {}
    for part in counts:
        for key, count in part.items():
            total[key] = total.get(key, 0) + count
    return total
