"""The fuzzer's seed inputs: real dumps, cut to a size that keeps one case fast.

The small fixtures under tests/fixtures are used whole; the real Zipkin traces in
../shared/fixtures whole when small, else their first spans (about 20 KB); the OTLP capture and
the sample data as a few lines of each kind (spans, logs, metrics) or their first traces; and a
Parquet file written by ``convert``. Slices are fixed, so a case number means the same input
until the fixtures change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.conftest import FIXTURES, SAMPLE_DATA, SHARED_FIXTURES


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    suffix: str


def _lines_matching(data: bytes, wanted: list[tuple[bytes, int]]) -> bytes:
    """The first ``count`` lines containing each marker, in file order (a small real slice)."""
    keep: list[int] = []
    lines = data.split(b"\n")
    for marker, count in wanted:
        keep.extend([i for i, line in enumerate(lines) if marker in line][:count])
    return b"\n".join(lines[i] for i in sorted(set(keep))) + b"\n"


def _shortest_lines(data: bytes, wanted: list[tuple[bytes, int]]) -> bytes:
    lines = data.split(b"\n")
    keep: list[int] = []
    for marker, count in wanted:
        found = sorted((len(line), i) for i, line in enumerate(lines) if marker in line)
        keep.extend(i for _, i in found[:count])
    return b"\n".join(lines[i] for i in sorted(keep)) + b"\n"


def _jaeger_slice(data: bytes, traces: int) -> bytes:
    document = orjson.loads(data)
    return orjson.dumps({"data": document["data"][:traces], "total": 0, "errors": None})


def _zipkin_slice(data: bytes, traces: int) -> bytes:
    spans = orjson.loads(data)
    ids = list(dict.fromkeys(s["traceId"] for s in spans))[:traces]
    return orjson.dumps([s for s in spans if s["traceId"] in ids])


def _array_head(data: bytes, max_bytes: int) -> bytes:
    """The first items of a JSON array that fit in about ``max_bytes``."""
    items = orjson.loads(data)
    sizes = [len(orjson.dumps(item)) + 1 for item in items]
    count = next((i for i in range(len(items)) if sum(sizes[: i + 1]) > max_bytes), len(items))
    return orjson.dumps(items[: max(count, 1)])


def _parquet_seed(tmp: Path) -> bytes:
    from ml_tracelens import ingest
    from ml_tracelens.readers.parquet import write_parquet

    telemetry = ingest.load([str(FIXTURES / "console" / "same-trace.console.txt")])
    out = tmp / "seed.parquet"
    write_parquet(telemetry.spans, telemetry.logs, out)
    return out.read_bytes()


def build_seeds(tmp: Path) -> list[Seed]:
    seeds: list[Seed] = []
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".txt"):
            seeds.append(Seed(str(path.relative_to(FIXTURES)), path.read_bytes(), path.suffix))
    if SHARED_FIXTURES.is_dir():
        for path in sorted((SHARED_FIXTURES / "zipkin").glob("*.json")):
            data = path.read_bytes()
            if len(data) > 20_000:
                data = _array_head(data, 20_000)
            seeds.append(Seed(f"shared/zipkin/{path.name}", data, ".json"))
        capture = (SHARED_FIXTURES / "otlp" / "otel-demo-capture.otlp.jsonl").read_bytes()
        wanted = [(b'"resourceSpans"', 2), (b'"resourceLogs"', 1), (b'"resourceMetrics"', 1)]
        seeds.append(Seed("shared/otlp-capture", _shortest_lines(capture, wanted), ".jsonl"))
    otlp = (SAMPLE_DATA / "traces.otlp.jsonl").read_bytes()
    wanted = [(b'"resourceSpans"', 1), (b'"resourceLogs"', 1), (b'"resourceMetrics"', 1)]
    seeds += [
        Seed("sample/traces.otlp.jsonl", _lines_matching(otlp, wanted), ".jsonl"),
        Seed(
            "sample/traces.jaeger.json",
            _jaeger_slice((SAMPLE_DATA / "traces.jaeger.json").read_bytes(), 3),
            ".json",
        ),
        Seed(
            "sample/traces.zipkin.json",
            _zipkin_slice((SAMPLE_DATA / "traces.zipkin.json").read_bytes(), 3),
            ".json",
        ),
    ]
    for name, count in (("app.log.jsonl", 40), ("stages.log.jsonl", 30)):
        head = b"\n".join((SAMPLE_DATA / name).read_bytes().split(b"\n")[:count]) + b"\n"
        seeds.append(Seed(f"sample/{name}", head, ".jsonl"))
    seeds.append(Seed("parquet/same-trace", _parquet_seed(tmp), ".parquet"))
    return seeds
