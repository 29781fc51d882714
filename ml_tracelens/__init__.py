"""tracelens: where the time went and what failed, from ML inference traces and JSON logs.

The package is built in layers; a module imports only from its own layer and those below it
(``tests/test_layers.py`` holds the order and checks it, with no import cycles):

1. Foundation, shared by all: ``schema`` (the canonical span and log tables every reader
   produces), ``exceptions`` (the domain errors), ``limits`` (resource limits on hostile input),
   ``durations`` (how a duration is written), ``otlp_values`` (OTLP attribute values).
2. ``core/``: trees, self time, critical path, error origin (``analyze``), span filters
   (``query``), statistics (``stats``: percentiles and request summaries, ``bootstrap``,
   ``significance``, ``psi``), LLM fields and metrics (``llm``) and the stages derived from
   them (``llm_stages``). Pure functions of canonical frames.
3. ``readers/``: one module per input format (``otlp_json``, ``jaeger_json``, ``zipkin_json``,
   ``otel_console``, ``json_logs``, ``parquet``) on the shared types of ``readers.base``;
   their helpers (fast paths, log aliases and value rules, parallel line ranges, the names of
   inputs that are not telemetry) live in ``readers/support/``. A new format is a module here
   plus a line in ``readers/__init__.py``.
4. ``ingest/``: inputs (files, directories, globs, stdin), choosing a reader, the accounting of
   every line, span trees from log lines (``log_spans``), the cache, and ``pipeline`` (read and
   analyse once, or take both from the cache).
5. ``gates/``: budgets and the ``tracelens.toml`` config they come from.
6. ``reports/``: one module per command, each building a ``reports.result.Report``; what they
   share (the inputs block, times, the nothing-to-analyse message) is ``reports.context``, the
   JSON documents' types are ``reports.documents``.
7. ``render/``: one module per output format (table, json, csv, markdown, junit, html; the
   ``show`` waterfall; the SVG charts of the HTML pages), and the terminal console.
8. ``api``: the library: ``load`` and one function per report, returning ``Result``s. Beside
   it, ``spark``: the same analysis on Spark (the ``spark`` extra; pyspark is imported only
   when its functions run), which only the CLI imports.
9. ``cli/``: the typer commands: options in, the library called, output rendered, exit codes.

The library's names are importable from the package itself (``import ml_tracelens as tl;
tl.load(...)``); they load on first use, so importing a lower layer stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: The library (``ml_tracelens.api``), importable from here.
API = (
    "AnalysedTelemetry", "Result", "load", "read", "summary", "latency", "errors", "bottlenecks",
    "traces", "show", "check", "diff", "models", "llm", "report", "Page",
    "why", "compare", "LatencySummarise",
)  # fmt: skip

__all__ = ["__version__", *API]

if TYPE_CHECKING:
    from ml_tracelens.api import (
        AnalysedTelemetry as AnalysedTelemetry,
    )
    from ml_tracelens.api import (
        LatencySummarise as LatencySummarise,
    )
    from ml_tracelens.api import (
        Page as Page,
    )
    from ml_tracelens.api import (
        Result as Result,
    )
    from ml_tracelens.api import (
        bottlenecks as bottlenecks,
    )
    from ml_tracelens.api import (
        check as check,
    )
    from ml_tracelens.api import (
        compare as compare,
    )
    from ml_tracelens.api import (
        diff as diff,
    )
    from ml_tracelens.api import (
        errors as errors,
    )
    from ml_tracelens.api import (
        latency as latency,
    )
    from ml_tracelens.api import (
        llm as llm,
    )
    from ml_tracelens.api import (
        load as load,
    )
    from ml_tracelens.api import (
        models as models,
    )
    from ml_tracelens.api import (
        read as read,
    )
    from ml_tracelens.api import (
        report as report,
    )
    from ml_tracelens.api import (
        show as show,
    )
    from ml_tracelens.api import (
        summary as summary,
    )
    from ml_tracelens.api import (
        traces as traces,
    )
    from ml_tracelens.api import (
        why as why,
    )


def __getattr__(name: str) -> object:
    if name in API:
        from ml_tracelens import api

        return getattr(api, name)
    raise AttributeError(f"module 'ml_tracelens' has no attribute {name!r}")
