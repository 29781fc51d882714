"""The fast path's decoded spans turned into canonical frames a chunk at a time.

A big OTLP/JSON input would hold every decoded span in Python lists (about 600 bytes a span)
until the end; ``SpanChunks`` converts them every ``FLUSH_SPANS`` spans (``otlp_batch``), so
memory stays at tens of megabytes however big the input is. The same chunks serve a batch of
many small inputs read together (``otlp_json.read_many``): they are converted together, and
``in_input_order`` puts each input's typed rows back after its lenient ones.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import polars as pl

from ml_tracelens.readers.base import DEEP_VALUES_DROPPED, ReadStats
from ml_tracelens.readers.support.otlp_batch import canonical_from_batch
from ml_tracelens.readers.support.otlp_fast import SpanBatch, TraceDocument
from ml_tracelens.readers.support.otlp_lenient import reject

#: Spans decoded before they are turned into canonical frames (see ``SpanChunks``).
FLUSH_SPANS = 50_000


class SpanChunks:
    """The fast path's spans, turned into canonical frames every ``FLUSH_SPANS`` spans.

    Decoded spans wait in Python lists (about 600 bytes a span); converting them chunk by chunk
    keeps that at tens of megabytes however big the input is. A document is never split between
    chunks, so a line dropped for invalid UTF-8 goes whole.

    Several inputs may share the chunks (``shared``, for ``read_many``): each is ``begin``-ed
    and ``end``-ed in turn, its lines numbered after the previous inputs' lines in the batch
    (``offset + line``), so that one mapping serves them all and every row, skipped line and
    alteration still goes to its own input. Shared chunks are converted only between inputs,
    so an input's problems stay in the order ``read`` finds them.
    """

    def __init__(
        self, name: str | None = None, stats: ReadStats | None = None, *, shared: bool = False
    ) -> None:
        self.shared = shared
        self.batch = SpanBatch()
        self.depth = self.batch.depth
        self.frames: list[pl.DataFrame] = []
        #: (offset, name, stats) per input, and its typed rows in ``frames``
        self.inputs: list[tuple[int, str, ReadStats]] = []
        self.counts: list[int] = []
        #: inputs from this one on have rows in ``batch``
        self._first_pending = 0
        self.offset = 0
        if name is not None and stats is not None:
            self.begin(name, stats)

    def begin(self, name: str, stats: ReadStats) -> None:
        self.inputs.append((self.offset, name, stats))
        self.counts.append(0)

    def end(self) -> None:
        _, _, stats = self.inputs[-1]
        self.offset += stats.lines
        if len(self.batch) >= FLUSH_SPANS:
            self.flush()

    def add(self, document: TraceDocument, line: int) -> None:
        self.batch.add(document, self.offset + line)
        if not self.shared and len(self.batch) >= FLUSH_SPANS:
            self.flush()

    def set_positions(self, line: int, positions: list[int] | None) -> None:
        """Each row's position among the spans of ``line`` (None: forget them)."""
        if positions is None:
            self.batch.positions.pop(self.offset + line, None)
        else:
            self.batch.positions[self.offset + line] = positions

    def flush(self) -> None:
        if not len(self.batch):
            return
        pending = self.inputs[self._first_pending :]
        sources = [(offset, name) for offset, name, _ in pending]
        frame, bad_lines = canonical_from_batch(
            self.batch, sources if len(sources) > 1 or sources[0][0] else sources[0][1]
        )
        self.frames.append(frame)
        offsets = [offset for offset, _ in sources]
        lines = self.batch.line
        for key in bad_lines:
            # Raw attribute bytes are checked for UTF-8 only when the batch becomes columns.
            offset, name, stats = pending[bisect_left(offsets, key) - 1]
            reject(stats, f"{name}:{key - offset}", "invalid UTF-8")
        bad = set(bad_lines)
        for key, where, keys in self.batch.deep_values:
            if key not in bad:
                offset, name, stats = pending[bisect_left(offsets, key) - 1]
                stats.alter(
                    f"{name}:{key - offset}#{where}",
                    DEEP_VALUES_DROPPED,
                    len(keys),
                    f"{', '.join(map(repr, keys[:3]))} nested deeper than {self.depth} levels "
                    "(TRACELENS_MAX_JSON_DEPTH)",
                )
        for index, offset in enumerate(offsets):
            end = offsets[index + 1] if index + 1 < len(offsets) else lines[-1]
            rows = bisect_right(lines, end) - bisect_right(lines, offset)
            rows -= sum(
                bisect_right(lines, key) - bisect_left(lines, key)
                for key in bad_lines
                if offset < key <= end
            )
            self.counts[self._first_pending + index] += rows
        if self.shared:
            self._first_pending = len(self.inputs)
        self.batch = SpanBatch()


def in_input_order(
    lenient: pl.DataFrame, lenient_ends: list[int], chunks: SpanChunks
) -> pl.DataFrame:
    """The spans of shared ``chunks`` (flushed) and of the lenient path (``lenient``, each
    input's rows ending at its ``lenient_ends`` entry) in ``read``'s order: each input's lenient
    rows, then its typed ones."""
    if not chunks.frames:
        return lenient
    starts = [0, *lenient_ends[:-1]]
    typed = pl.concat(chunks.frames, how="vertical")
    # Runs of consecutive rows of one frame, so that inputs of one kind make one slice.
    runs: list[list[Any]] = []  # [frame, start, length]
    typed_start = 0
    for start, end, count in zip(starts, lenient_ends, chunks.counts, strict=True):
        for frame, first, length in (
            (lenient, start, end - start),
            (typed, typed_start, count),
        ):
            if not length:
                continue
            if runs and runs[-1][0] is frame and runs[-1][1] + runs[-1][2] == first:
                runs[-1][2] += length
            else:
                runs.append([frame, first, length])
        typed_start += count
    pieces = [frame.slice(first, length) for frame, first, length in runs]
    return pl.concat(pieces, how="vertical") if pieces else lenient
