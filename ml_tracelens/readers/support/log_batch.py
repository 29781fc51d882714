"""Many small JSON-lines inputs mapped together: one polars mapping for all their lines.

``json_logs.read`` maps each input with several polars queries (~13 ms however small the input:
136 s of CPU for 10,000 files of 2 lines). ``LogBatch`` collects the parsed lines of many
inputs (each parsed on its own by ``log_lines.parse_lines``, so its lines, records, skipped
lines and blank lines are its own) and maps them in one ``log_fields.map_logs`` call, the input
of each row in a column of its own; what ``read`` counts per input after mapping is then split
by input: unreadable times and durations (the per-row flags), colliding keys, the ``--field``
keys no line has, and the keys of the first records (``ReadStats.sample_keys``).

Each input gets the rows and the accounting ``json_logs.read`` gives it (``tests/
test_many_small_inputs.py`` checks this on generated inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from ml_tracelens.readers.base import BatchResult, ReadResult, ReadStats
from ml_tracelens.readers.support import log_aliases, log_fields, log_flat, log_keys
from ml_tracelens.readers.support.log_problems import COLLISIONS
from ml_tracelens.schema import empty_logs

#: Lines, and bytes of them, mapped together at most (as ``log_lines`` maps a chunk).
BATCH_LINES = 100_000
BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class _Input:
    name: str
    stats: ReadStats
    start: int  # index of its first document in the batch
    end: int


class LogBatch:
    """Inputs in the order added; ``result`` gives their rows (in that order) and accounting."""

    def __init__(
        self,
        plan: log_aliases.Plan,
        field_map: Mapping[str, str],
        *,
        sample_records: int,
        max_sample_keys: int,
    ) -> None:
        self.plan = plan
        self.field_map = field_map
        self.keep = log_keys.mapped_keys(plan)
        self.wanted = frozenset(plan.user_keys.values())
        self.sample_records = sample_records
        self.max_sample_keys = max_sample_keys
        self.stats: list[ReadStats] = []
        self.log_counts: list[int] = []
        self.frames: list[pl.DataFrame] = []
        self._inputs: list[_Input] = []
        self._documents: list[dict[str, object]] = []
        self._numbers: list[int] = []
        self._size = 0

    def add(
        self,
        name: str,
        stats: ReadStats,
        documents: list[dict[str, object]],
        numbers: list[int],
        size: int,
    ) -> None:
        """An input's parsed lines (objects and their line numbers) and its accounting so far;
        ``size``: its bytes."""
        start = len(self._documents)
        self._documents += documents
        self._numbers += numbers
        self._inputs.append(_Input(name, stats, start, len(self._documents)))
        self._size += size
        if len(self._documents) >= BATCH_LINES or self._size >= BATCH_BYTES:
            self.flush()

    def add_result(self, result: ReadResult) -> None:
        """An input read on its own (too big to batch), in its place among the others."""
        self.flush()
        self.stats.append(result.stats)
        self.log_counts.append(result.logs.height)
        if result.logs.height:
            self.frames.append(result.logs)

    def result(self) -> BatchResult:
        self.flush()
        logs = pl.concat(self.frames, how="vertical") if self.frames else empty_logs()
        return BatchResult(
            stats=self.stats,
            span_counts=[0] * len(self.stats),
            log_counts=self.log_counts,
            logs=logs,
        )

    def flush(self) -> None:
        inputs, documents, numbers = self._inputs, self._documents, self._numbers
        size = self._size
        self._inputs, self._documents, self._numbers, self._size = [], [], [], 0
        if not inputs:
            return
        flat = log_flat.flatten(documents)
        del documents
        logs, flags = self._map(flat, numbers, inputs, size)
        unread = self._unread_by_input(flags, inputs)
        for index, entry in enumerate(inputs):
            self._finish(entry, flat, unread.get(index, {}))
            self.stats.append(entry.stats)
            self.log_counts.append(entry.end - entry.start)
        if logs.height:
            self.frames.append(logs)

    def _map(
        self, flat: log_flat.Flat, numbers: list[int], inputs: list[_Input], size: int
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        if not flat.rows:
            return empty_logs(), pl.DataFrame()
        columns, triples = log_flat.frames(flat, size=size, keep=self.keep)
        raw = pl.DataFrame([pl.Series(log_fields.LINE, numbers, dtype=pl.Int64), *columns.values()])
        names = pl.Series(
            [entry.name for entry in inputs for _ in range(entry.end - entry.start)],
            dtype=pl.String,
        )
        return log_fields.map_logs(raw, source_name=names, plan_=self.plan, extra=triples)

    def _unread_by_input(
        self, flags: pl.DataFrame, inputs: list[_Input]
    ) -> dict[int, dict[str, int]]:
        """input index -> unreadable time and duration values counted as ``to_logs`` counts."""
        if not flags.height or not flags.select(pl.any_horizontal(pl.all().any())).item():
            return {}
        lengths = [entry.end - entry.start for entry in inputs]
        owner = (
            pl.DataFrame({"input": range(len(inputs)), "n": lengths})
            .select(pl.col("input").repeat_by("n"))
            .explode("input")
            .get_column("input")
        )
        sums = flags.with_columns(input=owner).group_by("input").agg(pl.all().sum())
        out: dict[int, dict[str, int]] = {}
        for row in sums.iter_rows(named=True):
            counts = {what: row[field] for field, what in log_fields.UNREAD_COUNTS.items()}
            out[row["input"]] = {what: n for what, n in counts.items() if n}
        return out

    def _finish(self, entry: _Input, flat: log_flat.Flat, unread: dict[str, int]) -> None:
        """What ``json_logs.read`` adds to an input's accounting once its lines are mapped."""
        stats = entry.stats
        rows = flat.rows[entry.start : entry.end]
        collisions = sum(flat.collisions[entry.start : entry.end])
        if collisions:
            stats.ignore(COLLISIONS, collisions)
        for what, count in unread.items():
            stats.ignore(what, count)
        first = rows[: self.sample_records]
        stats.sample_keys = sorted(set().union(*first))[: self.max_sample_keys] if first else []
        found: set[str] = set()
        if self.wanted and rows:
            found = log_fields.keys_held(set().union(*rows), self.wanted)
        for message in log_aliases.unfound_field_warnings(self.plan, self.field_map, found):
            stats.warn(message)
