"""`convert --dataset` of inputs larger than the memory budget, a group of traces at a time.

The inputs are spilled as for an analysis (``ingest.bounded``: a trace's spans and log records
in one group), and each group is made whole as a read makes it (identical duplicates merged,
stage lines and LLM stages checked) and written to the partitions of its traces. The number of
groups divides the dataset's bucket count, so a bucket's traces all lie in one group and each
partition gets one file per conversion, as when the inputs are read at once. Rows keep their
number among all rows read as ``_seq``: the order is that of a conversion read at once, with
the numbers of merged duplicates left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ml_tracelens.ingest import merge_identical_duplicates, normalized, nothing_to_analyse
from ml_tracelens.ingest.bounded import Combined, plan, spilled
from ml_tracelens.ingest.inputs import ResolvedInputs
from ml_tracelens.ingest.telemetry import Progress
from ml_tracelens.readers import dataset, dataset_writer
from ml_tracelens.readers.base import ReadOptions
from ml_tracelens.readers.dataset import DEFAULT_BUCKETS, Manifest, SourceFile


def groups_for(resolved: ResolvedInputs, buckets: int) -> int | None:
    """How many groups to convert the inputs in (a divisor of ``buckets``); None: they fit in
    the memory budget, or hold a dataset (whose rows a conversion numbers as read at once)."""
    if any(s.path is not None and dataset.is_dataset(s.path) for s in resolved.sources):
        return None
    wanted = plan(resolved)
    if wanted is None:
        return None
    return next((d for d in range(wanted, buckets + 1) if buckets % d == 0), buckets)


def convert(
    resolved: ResolvedInputs,
    groups: int,
    target: Path,
    *,
    sources: Sequence[SourceFile],
    buckets: int | None,
    previous: Manifest | None,
    replace: bool,
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None = None,
) -> tuple[Manifest, int, int, list[str]]:
    """Convert the inputs ``groups`` groups of traces at a time: the manifest, the spans and
    log records this conversion wrote, and the warnings about the inputs."""
    with spilled(resolved, groups, input_format, options, progress) as (spill, found):
        if not spill.span_rows and not spill.log_rows:
            raise nothing_to_analyse(found.summaries)
        conversion = dataset_writer.begin(
            target,
            buckets=previous.buckets if previous else buckets or DEFAULT_BUCKETS,
            previous=previous,
            replace=replace,
        )
        # Logs come after every span read, as when the inputs are read at once.
        log_offset = conversion.offset + spill.span_rows
        combined = Combined()
        for group in range(groups):
            if progress is not None:
                progress.reading(f"writing traces (group {group + 1:,} of {groups:,})")
            spans, logs, runs, _ = spill.group(group, [], found.resolutions, row_numbers=True)
            log_rows = logs.drop_in_place("_log_row")
            # What a read finds of the group (and --strict refuses), for the warnings; it
            # empties the frames it is given.
            done = normalized(
                spans.drop("_span_row"), logs.clone(), options=options, resolutions=runs
            )
            done.spans, done.logs = done.spans.clear(), done.logs.clear()
            combined.parts.append(done)
            kept, _ = merge_identical_duplicates(spans, ignore=("source", "_span_row"))
            del spans
            resolution = pl.Series([ns for rows, ns in runs for _ in range(rows)], dtype=pl.Int64)
            dataset_writer.add(
                conversion,
                kept.with_columns(_seq=pl.col("_span_row") + conversion.offset).drop("_span_row"),
                logs.with_columns(_seq=log_rows + log_offset),
                resolution,
            )
        manifest = dataset_writer.finish(conversion, sources=sources, previous=previous)
    return (
        manifest,
        conversion.spans,
        conversion.logs,
        [
            *found.warnings,
            *combined.normalized().warnings(),
        ],
    )
