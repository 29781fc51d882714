"""Load and analyse inputs once, through the cache: what every report command starts from."""

from __future__ import annotations

from collections.abc import Sequence

from ml_tracelens import cache, ingest
from ml_tracelens.core import Analysis, analyze
from ml_tracelens.ingest import Progress, Telemetry
from ml_tracelens.readers.base import ReadOptions

__all__ = ["ReadOptions", "load_analysed"]


def load_analysed(
    paths: Sequence[str],
    *,
    input_format: str | None = None,
    options: ReadOptions | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> tuple[Telemetry, Analysis]:
    options = options or ReadOptions()
    key = cache.cache_key(paths, input_format=input_format, options=options) if use_cache else None
    if key is not None:
        hit = cache.load(key)
        if hit is not None:
            return hit
    telemetry = ingest.load(paths, input_format=input_format, options=options, progress=progress)
    if progress is not None:
        progress.reading("analysing traces")
    analysis = analyze(telemetry.spans)
    if key is not None:
        cache.store(key, telemetry, analysis)
    return telemetry, analysis


def load_cached_or_raw(
    paths: Sequence[str],
    *,
    input_format: str | None = None,
    options: ReadOptions | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> tuple[Telemetry, Analysis | None]:
    """The analysed dump when the cache has it, else the raw read (no analysis, nothing stored).

    For commands about one trace (``show``): analysing a million spans to look at a dozen costs
    more than reading them, so a cold run analyses only the trace it shows.
    """
    options = options or ReadOptions()
    key = cache.cache_key(paths, input_format=input_format, options=options) if use_cache else None
    if key is not None:
        hit = cache.load(key)
        if hit is not None:
            return hit
    return ingest.load(paths, input_format=input_format, options=options, progress=progress), None
