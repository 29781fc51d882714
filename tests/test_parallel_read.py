"""Reading one file on several processes gives exactly what one process gives."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ml_tracelens import ingest
from ml_tracelens.readers.support.parallel import line_ranges, worker_count


def _dump(path: Path, documents: int) -> None:
    lines = []
    for index in range(documents):
        spans = [
            {
                "traceId": f"{index:032x}",
                "spanId": f"{index * 10 + j + 1:016x}",
                "parentSpanId": "" if j == 0 else f"{index * 10 + 1:016x}",
                "name": "root" if j == 0 else f"stage{j}",
                "startTimeUnixNano": str(1_700_000_000_000_000_000 + index * 1000 + j),
                "endTimeUnixNano": str(1_700_000_000_000_000_000 + index * 1000 + 100 - j),
            }
            for j in range(3)
        ]
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        lines.append(json.dumps(doc))
        if index % 7 == 3:
            lines.append('{"resourceSpans": [truncated')
    path.write_text("\n".join(lines) + "\n")


def test_line_ranges_cover_the_file_at_line_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 50)
    data = path.read_bytes()
    for parts, head_start in itertools.product((1, 2, 3, 7), (0.0, 0.2, 1.0)):
        ranges = line_ranges(path, parts, head_start=head_start)
        assert ranges[0][0] == 0
        assert ranges[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert all(data[start - 1 : start] == b"\n" for start, _ in ranges[1:])
        if parts > 1 and head_start < 1:
            # the first range takes its equal part and the head start, to a line boundary
            assert ranges[0][1] >= len(data) * (1 / parts + head_start)
            assert len(ranges) == parts


@pytest.mark.parametrize("workers", ["2", "3"])
def test_parallel_read_equals_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 60)
    monkeypatch.setenv("TRACELENS_WORKERS", "1")
    serial = ingest.load([str(path)])
    monkeypatch.setenv("TRACELENS_WORKERS", workers)
    monkeypatch.setenv("TRACELENS_PARALLEL_MIN_MB", "0")
    assert worker_count(path.stat().st_size) == int(workers)
    parallel = ingest.load([str(path)])
    assert parallel.spans.equals(serial.spans)  # sources carry the same file:line
    s, p = serial.inputs[0].stats, parallel.inputs[0].stats
    assert (
        (p.lines, p.records, p.skipped) == (s.lines, s.records, s.skipped) == (69, 60, 9)
    )  # 60 documents + 9 truncated lines (index % 7 == 3)
    assert p.problems == s.problems
    assert s.problems[0][0] == f"{path}:5"
