"""What reading inputs produces: the canonical tables and how each input was read.

Its own module so that a command served from the cache imports none of the format readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from ml_tracelens.readers.base import ReadStats


class Progress(Protocol):
    """Told what is being read, so a terminal can show it (the CLI draws a bar on stderr)."""

    def inputs(self, sizes: list[tuple[str, int]]) -> None: ...
    def reading(self, name: str) -> None: ...
    def read(self, name: str) -> None: ...


@dataclass(frozen=True)
class InputSummary:
    path: str
    format: str
    spans: int
    logs: int
    stats: ReadStats


@dataclass
class Telemetry:
    """The canonical tables for everything that was read, plus how it was read."""

    spans: pl.DataFrame
    logs: pl.DataFrame
    inputs: list[InputSummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: spans dropped because another span with the same trace, id and content was already read
    merged_duplicates: int = 0
    #: spans built from log lines (stage + duration + correlation id), not read as spans
    derived_spans: int = 0
    #: log lines that became spans (``derived_spans`` less the derived roots)
    log_span_lines: int = 0
    #: requests from logs given a derived ``request`` root: no line of theirs covers the others
    derived_roots: int = 0
    #: reason -> log lines that did not become spans (see ``log_spans``)
    log_lines_not_spans: dict[str, int] = field(default_factory=dict)
    #: spans carrying LLM attributes (core/llm.py), read or built from log lines
    llm_spans: int = 0
    #: canonical LLM column -> the attribute keys that held its values
    llm_fields: dict[str, list[str]] = field(default_factory=dict)
    #: ``queue``/``prefill``/``decode`` spans added under LLM spans (core/llm.py)
    llm_stage_spans: int = 0
    #: canonical LLM column -> (key, ns per unit) from ``--field llm.NAME=KEY``
    llm_overrides: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: (log rows, timestamp resolution in ns) in row order, per run of inputs: what the slack
    #: of log-derived trees was computed from (kept by ``convert --dataset``; not cached)
    log_resolutions: list[tuple[int, int]] = field(default_factory=list)
    #: each span's parent row, when every span was made from log lines and ingest built their
    #: trees (``log_spans``): the analysis then need not resolve the parent ids (not cached)
    span_parents: pl.Series | None = None

    @property
    def skipped_lines(self) -> int:
        return sum(i.stats.skipped for i in self.inputs)

    @property
    def skipped_items(self) -> int:
        return sum(i.stats.skipped_items for i in self.inputs)
