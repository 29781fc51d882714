"""Load and analyse inputs once, through the cache: what every report command starts from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from ml_tracelens.core import Analysis, Derived, analyze
from ml_tracelens.core.attribute_pairs import COLUMNS as ATTRIBUTE_COLUMNS
from ml_tracelens.core.attribute_pairs import AttributePairs, attribute_pairs
from ml_tracelens.ingest import cache
from ml_tracelens.ingest.telemetry import Progress, Telemetry
from ml_tracelens.readers.base import ReadOptions

__all__ = ["HEAVY_COLUMNS", "ReadOptions", "load_analysed"]

#: Span columns the aggregate reports read only for ``attr.KEY`` groupings and filters: the
#: per-span JSON (most of a dump's bytes), the resource and the source. On a warm cache they are
#: left on disk unless asked for.
HEAVY_COLUMNS = ("attributes", "resource", "events", "links", "source")


def load_analysed(
    paths: Sequence[str],
    *,
    input_format: str | None = None,
    options: ReadOptions | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    without: Collection[str] = (),
    logs: bool = True,
    opaque: Collection[str] = (),
    summarise: Callable[[pl.DataFrame], object] | None = None,
    pairs: bool = False,
    derived: Derived | None = None,
) -> tuple[Telemetry, Analysis]:
    """Read and analyse ``paths``, or take both from the cache.

    Span columns named in ``without`` are left out of the result: not read from a cache entry,
    and dropped after a fresh read is cached, so reports filter and join narrower frames and
    see the same columns either way. Without ``logs`` the log table comes back empty, alike.
    Beyond the memory budget, ``summarise`` (when given) takes what a report needs of each
    group of analysed traces, and those ``Analysis.summaries`` come back instead of spans.
    With ``pairs`` the analysis has the attribute pairs of its spans (``core.attribute_pairs``),
    kept with the cache entry: the attribute columns may then be in ``without``. With
    ``derived`` the analysis has its tables (``Analysis.derived``), kept with the cache entry:
    an entry that holds them gives them without any span column (and without pairs).
    """
    options, key = _options_and_key(paths, input_format, options, use_cache)
    if key is not None:
        hit = cache.load(key, without=without, logs=logs, pairs=pairs, derived=derived)
        if hit is not None and not logs and hit[0].spans.is_empty() and not hit[1].derived:
            # Nothing to analyse: the logs say why (which keys the lines lack).
            hit = cache.load(key, without=without, pairs=pairs)
        if hit is not None:
            telemetry, analysis = hit
            if analysis.derived:
                return telemetry, analysis
            if pairs and analysis.pairs is None:
                # An entry another command wrote: parsed once, here, and kept with it.
                parsed = attribute_pairs(analysis.spans)
                cache.add_pairs(key, parsed)
                analysis = _narrowed(analysis, without, parsed)
                telemetry.spans = telemetry.spans.drop(without, strict=False)
            return telemetry, _with_derived(analysis, derived, key)
    # Beyond the memory budget the pairs are parsed from the analysed spans: they keep the texts.
    kept = without if not pairs else [c for c in without if c not in ATTRIBUTE_COLUMNS]
    from ml_tracelens.ingest import bounded
    from ml_tracelens.ingest.inputs import resolve

    resolved = resolve(paths)
    groups = bounded.plan(resolved)
    if groups is not None:
        # Beyond the memory budget: analysed a group of traces at a time, nothing cached (the
        # entry would be as large as the inputs; a dataset is the form to keep them in).
        telemetry, analysis = bounded.load(
            resolved,
            groups,
            input_format=input_format,
            options=options,
            progress=progress,
            without=kept,
            opaque=opaque,
            summarise=summarise,
        )
        if not logs and telemetry.spans.height:
            telemetry.logs = telemetry.logs.clear()
        if pairs:
            analysis = _narrowed(analysis, without, attribute_pairs(analysis.spans))
            telemetry.spans = telemetry.spans.drop(without, strict=False)
        return telemetry, _with_derived(analysis, derived, None)
    telemetry = _read(paths, input_format, options, progress)
    if progress is not None:
        progress.reading("analysing traces")
    # The pairs are parsed on a thread while the spans are analysed and the entry is written
    # (all mostly in polars, which releases the GIL), and kept with it; then, on the same
    # thread, the derived tables are made while the entry is still being written. The analysis
    # keeps the spans' rows in their order, so the pairs of the spans read are those of the
    # analysed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        parsing = pool.submit(attribute_pairs, telemetry.spans) if pairs else None
        analysis = analyze(telemetry.spans, parent_rows=telemetry.span_parents)
        deriving = None
        if derived is not None:
            analysed = analysis
            deriving = pool.submit(
                lambda: derived.make(
                    _narrowed(analysed, without, parsing.result() if parsing else None)
                )
            )
        if key is not None:
            cache.store(key, telemetry, analysis, pairs=parsing.result if parsing else None)
        found = parsing.result() if parsing else None
        tables = deriving.result() if deriving else None
    if not logs and telemetry.spans.height:
        telemetry.logs = telemetry.logs.clear()
    if without:
        telemetry.spans = telemetry.spans.drop(without, strict=False)
    if without or found is not None:
        analysis = _narrowed(analysis, without, found)
    return telemetry, _kept_derived(analysis, derived, tables, key)


def _with_derived(analysis: Analysis, derived: Derived | None, key: str | None) -> Analysis:
    """``analysis`` with the tables of ``derived``, made here and kept with the entry for
    ``key`` (when there is one)."""
    if derived is None:
        return analysis
    return _kept_derived(analysis, derived, derived.make(analysis), key)


def _kept_derived(
    analysis: Analysis,
    derived: Derived | None,
    tables: dict[str, pl.DataFrame] | None,
    key: str | None,
) -> Analysis:
    """``analysis`` with the ``tables`` of ``derived`` (when there are any), kept with the
    entry for ``key`` (when there is one)."""
    if derived is None or tables is None:
        return analysis
    if key is not None:
        cache.add_derived(key, derived, tables)
    return dataclasses.replace(analysis, derived={**analysis.derived, derived.name: tables})


def _narrowed(
    analysis: Analysis, without: Collection[str], pairs: AttributePairs | None
) -> Analysis:
    """``analysis`` without the span columns in ``without``, with ``pairs`` (the rest as is)."""
    return dataclasses.replace(
        analysis, spans=analysis.spans.drop(without, strict=False), pairs=pairs
    )


def load_cached_or_raw(
    paths: Sequence[str],
    *,
    input_format: str | None = None,
    options: ReadOptions | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> tuple[Telemetry, pl.DataFrame | pl.LazyFrame, pl.DataFrame | pl.LazyFrame]:
    """How the dump was read, its spans and its logs: from the cache when it has the dump (then
    the spans are analysed, and both frames are lazy scans of the entry's checked bytes, which
    another command's prune cannot take away), else the raw read (spans not analysed, nothing
    stored: a damaged entry is removed, and the next aggregate command writes it again).

    For commands about one trace (``show``): analysing a million spans to look at a dozen costs
    more than reading them, so a cold run analyses only the trace it shows, and a warm one reads
    only that trace's rows.
    """
    options, key = _options_and_key(paths, input_format, options, use_cache)
    if key is not None:
        hit = cache.scan(key)
        if hit is not None:
            return hit
    telemetry = _read(paths, input_format, options, progress)
    return telemetry, telemetry.spans, telemetry.logs


def _options_and_key(
    paths: Sequence[str], input_format: str | None, options: ReadOptions | None, use_cache: bool
) -> tuple[ReadOptions, str | None]:
    """The read options (the defaults when none are given) and the inputs' cache key: None when
    the cache is off or the inputs are not cached (stdin, small inputs)."""
    options = options or ReadOptions()
    key = cache.cache_key(paths, input_format=input_format, options=options) if use_cache else None
    return options, key


def _read(
    paths: Sequence[str],
    input_format: str | None,
    options: ReadOptions,
    progress: Progress | None,
) -> Telemetry:
    # Imported here: the readers are needed only when the cache cannot answer.
    from ml_tracelens import ingest

    return ingest.load(paths, input_format=input_format, options=options, progress=progress)
