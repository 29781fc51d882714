"""tracelens: where the time went and what failed, from ML inference traces and JSON logs.

The package is built in layers; a module imports only from its own layer and those below it
(``tests/test_layers.py`` holds the order and checks it, with no import cycles):

1. Foundation, shared by all: ``schema`` (the canonical span and log tables every reader
   produces), ``errors`` (the domain errors), ``limits`` (resource limits on hostile input),
   ``durations`` (how a duration is written), ``otlp_values`` (OTLP attribute values).
2. ``core/``: trees, self time, critical path, error origin (``analyze``), span filters
   (``query``), statistics (``stats``: percentiles and request summaries, ``bootstrap``,
   ``significance``). Pure functions of canonical frames.
3. ``readers/``: one module per input format (``otlp_json``, ``jaeger_json``, ``zipkin_json``,
   ``otel_console``, ``json_logs``, ``parquet``) on the shared types of ``readers.base``;
   their helpers (fast paths, log aliases and value rules, parallel line ranges, the names of
   inputs that are not telemetry) live in ``readers/support/``. A new format is a module here
   plus a line in ``readers/__init__.py``.
4. ``ingest/``: inputs (files, directories, globs, stdin), choosing a reader, the accounting of
   every line, span trees from log lines (``log_spans``), the cache, and ``pipeline`` (read and
   analyse once, or take both from the cache).
5. ``gates/``: budgets and the ``tracelens.toml`` config they come from.
6. ``reports/``: one module per command, each building a ``reports.result.Report``.
7. ``render/``: one module per output format (table, json, csv, markdown, junit; the ``show``
   waterfall), and the terminal console.
8. ``cli/``: the typer commands: options in, the library called, output rendered, exit codes.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
