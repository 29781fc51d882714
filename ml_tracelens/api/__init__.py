"""The library: everything the CLI does, as functions of loaded telemetry returning results.

    import ml_tracelens as tl

    t = tl.load(["dump.jsonl"])          # read (or take from the cache) and analyse
    t.spans                              # polars: canonical spans + self_ns, cp_ns, error origin
    tl.latency(t, by="stage").rows       # polars: one row per stage, the CLI's JSON rows
    tl.check(t, budgets=["model.inference:p95<=120ms"]).passed
    print(tl.errors(t).to_json())        # exactly what `tracelens errors --format json` prints

Each report function takes the options of its command (without the leading ``--``) and returns
a ``Result``. Errors are the domain errors of ``ml_tracelens.exceptions``: ``InputError``
(nothing to analyse, unreadable input), ``UsageError`` (an option value that makes no sense),
``NotFound`` (an unknown request id).
"""

from __future__ import annotations

from ml_tracelens.api.loading import DatasetWritten, convert_dataset, load, read
from ml_tracelens.api.loading import read_options as read_options
from ml_tracelens.api.report_functions import (
    bottlenecks,
    check,
    compare,
    diff,
    errors,
    latency,
    llm,
    models,
    report,
    show,
    summary,
    traces,
    why,
)
from ml_tracelens.api.results import (
    AnalysedTelemetry,
    Page,
    Result,
    SpanFilters,
)
from ml_tracelens.api.results import LogTime as LogTime
from ml_tracelens.api.results import PathsLike as PathsLike
from ml_tracelens.api.results import table_frame as table_frame
from ml_tracelens.reports.latency import OPAQUE as LATENCY_OPAQUE
from ml_tracelens.reports.latency import UNREAD as LATENCY_UNREAD
from ml_tracelens.reports.latency_parts import Summarise as LatencySummarise
from ml_tracelens.reports.why import UNREAD as WHY_UNREAD
from ml_tracelens.reports.why_index import DERIVED as WHY_INDEX
from ml_tracelens.reports.why_index import serves as why_index_serves

__all__ = [
    "LATENCY_OPAQUE",
    "LATENCY_UNREAD",
    "WHY_INDEX",
    "WHY_UNREAD",
    "AnalysedTelemetry",
    "DatasetWritten",
    "LatencySummarise",
    "Page",
    "Result",
    "SpanFilters",
    "bottlenecks",
    "check",
    "compare",
    "convert_dataset",
    "diff",
    "errors",
    "latency",
    "llm",
    "load",
    "models",
    "read",
    "report",
    "show",
    "summary",
    "traces",
    "why",
    "why_index_serves",
]
