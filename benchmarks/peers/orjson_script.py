"""Peer: the straightforward orjson + Python script a user would write.

Per stage (span name, or the ``stage`` field of a log line): count, p50/p95/p99 of the duration
in milliseconds (linear interpolation between closest ranks, numpy's default, in pure Python)
and the error rate (spans with status code 2 / log lines at level error).

    python benchmarks/peers/orjson_script.py otlp FILE.jsonl
    python benchmarks/peers/orjson_script.py logs FILE.jsonl

Prints ``{"rows": [{"stage", "count", "p50_ms", "p95_ms", "p99_ms", "errors", "error_rate"}]}``.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import orjson

QUANTILES = (0.5, 0.95, 0.99)


def percentile(ordered: list[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def read_otlp(path: str) -> tuple[dict[str, list[float]], dict[str, int]]:
    durations: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            document = orjson.loads(line)
            for resource in document.get("resourceSpans", ()):
                for scope in resource.get("scopeSpans", ()):
                    for span in scope.get("spans", ()):
                        name = span["name"]
                        nanos = int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])
                        durations[name].append(nanos / 1e6)
                        if span.get("status", {}).get("code") == 2:
                            errors[name] += 1
    return durations, errors


def read_logs(path: str) -> tuple[dict[str, list[float]], dict[str, int]]:
    durations: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = orjson.loads(line)
            stage = record.get("stage")
            if stage is None or record.get("duration_ms") is None:
                continue
            durations[stage].append(float(record["duration_ms"]))
            if record.get("level") == "error":
                errors[stage] += 1
    return durations, errors


def main(argv: list[str]) -> None:
    kind, path = argv
    durations, errors = read_otlp(path) if kind == "otlp" else read_logs(path)
    rows = []
    for stage, values in sorted(durations.items()):
        values.sort()
        row: dict[str, object] = {"stage": stage, "count": len(values)}
        for q in QUANTILES:
            row[f"p{round(q * 100)}_ms"] = percentile(values, q)
        row["errors"] = errors[stage]
        row["error_rate"] = errors[stage] / len(values)
        rows.append(row)
    sys.stdout.buffer.write(orjson.dumps({"rows": rows}, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
