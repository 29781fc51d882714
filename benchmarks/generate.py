"""Seeded generator of large, realistic ML-inference telemetry dumps for the benchmarks.

Writes N spans (rounded up to whole requests) as

- ``otlp-<N>-s<seed>.jsonl``: OTLP/JSON lines exactly as the OpenTelemetry Collector's file
  exporter writes them: one ``{"resourceSpans": [...]}`` document per line holding about 50
  traces, grouped by resource (service) with a scope per service; ids in hex, times as strings
  of nanoseconds, typed attributes (``intValue`` as a string, ``doubleValue``, ``stringValue``),
  ``status: {}`` or ``{"message": ..., "code": 2}``, ``exception`` events on failing spans;
- ``logs-<N>-s<seed>.jsonl`` (with ``--logs``): the same spans as flat JSON-lines logs, one line
  per span written when the stage finished, in time order across concurrent requests:
  ``timestamp`` (ISO-8601, µs, Z), ``level``, ``trace_id``, ``span_id``, ``request_id``,
  ``stage``, ``service``, ``duration_ms``, ``error`` (message or null);
- ``meta-<N>-s<seed>.json``: what was generated (counts per stage, errors, sample trace ids,
  bytes, seconds), so the harness can sanity-check every tool against ground truth.

The workload (``workload.py``): a gateway root ``POST /predict`` with validate, parallel
fetch_features (+ ``redis GET``) and profile_lookup, preprocess, model.inference and postprocess:
7-8 spans per request, ~3% failed requests, ~2% slow outliers.

Every time is a whole number of microseconds so the OTLP nanoseconds and the logs' milliseconds
state exactly the same durations. Standard library + orjson; streams to disk, so memory stays
flat whatever N is.

    python benchmarks/generate.py --spans 1000000 --logs --out benchmarks/data
"""

from __future__ import annotations

import argparse
import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from workload import Span, Workload

TRACES_PER_LINE = 50
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
RESOURCES: dict[str, dict[str, Any]] = {
    "gateway": {
        "service.version": "2.4.1",
        "host.name": "gateway-7d9f8",
        "telemetry.sdk.language": "python",
    },
    "feature-store": {
        "service.version": "1.12.0",
        "host.name": "feature-store-0",
        "telemetry.sdk.language": "go",
    },
    "profile-db": {
        "service.version": "15.4",
        "host.name": "profile-db-primary",
        "telemetry.sdk.language": "java",
    },
    "model-server": {
        "service.version": "0.9.3",
        "host.name": "gpu-node-a100-2",
        "telemetry.sdk.language": "python",
    },
}
SCOPES = {
    "gateway": {"name": "opentelemetry.instrumentation.fastapi", "version": "0.47b0"},
    "feature-store": {"name": "feature-store/server", "version": "1.12.0"},
    "profile-db": {"name": "io.opentelemetry.jdbc", "version": "2.6.0-alpha"},
    "model-server": {"name": "model_server.tracing", "version": "0.9.3"},
}
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/{service}/handlers.py", line {line}, in {func}\n'
    "    result = await call()\n"
    "{exc_type}: {message}"
)


@dataclass
class Totals:
    """Ground truth accumulated while writing: per-stage counts and errors, requests, samples."""

    spans: int = 0
    requests: int = 0
    failed_requests: int = 0
    slow_requests: int = 0
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    sample_ok: str | None = None
    sample_error: str | None = None

    def add(self, trace_id: str, spans: list[Span], failed: bool) -> None:
        self.requests += 1
        self.spans += len(spans)
        self.failed_requests += failed
        for span in spans:
            item = self.stages.setdefault(span.name, {"count": 0, "errors": 0})
            item["count"] += 1
            item["errors"] += span.error is not None
        if failed and self.sample_error is None:
            self.sample_error = trace_id
        if not failed and self.sample_ok is None and len(spans) == 8:
            self.sample_ok = trace_id


# ---------------------------------------------------------------- OTLP


def otlp_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            typed: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            typed = {"intValue": str(value)}  # int64 is a string in the protobuf JSON mapping
        elif isinstance(value, float):
            typed = {"doubleValue": value}
        else:
            typed = {"stringValue": value}
        out.append({"key": key, "value": typed})
    return out


def otlp_span(trace_id: str, span: Span) -> dict[str, Any]:
    # Key order and omissions follow the Collector's pdata JSON marshaler.
    doc: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": f"{span.start}000",
        "endTimeUnixNano": f"{span.end}000",
        "attributes": otlp_attributes(span.attributes),
    }
    if span.exception:
        line = 40 + len(span.name)
        trace = TRACEBACK.format(
            service=span.service,
            line=line,
            func=span.name,
            exc_type=span.exception,
            message=span.error,
        )
        doc["events"] = [
            {
                "timeUnixNano": f"{span.end}000",
                "name": "exception",
                "attributes": otlp_attributes(
                    {
                        "exception.type": span.exception,
                        "exception.message": span.error,
                        "exception.stacktrace": trace,
                        "exception.escaped": "False",
                    }
                ),
            }
        ]
    doc["status"] = {"message": span.error, "code": 2} if span.error else {}
    return doc


RESOURCE_DOCS = {
    service: {"attributes": otlp_attributes({"service.name": service, **attrs})}
    for service, attrs in RESOURCES.items()
}


def otlp_line(batch: list[tuple[str, list[Span]]]) -> bytes:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for trace_id, spans in batch:
        for span in spans:
            by_service.setdefault(span.service, []).append(otlp_span(trace_id, span))
    document = {
        "resourceSpans": [
            {
                "resource": RESOURCE_DOCS[service],
                "scopeSpans": [{"scope": SCOPES[service], "spans": spans}],
                "schemaUrl": SCHEMA_URL,
            }
            for service, spans in by_service.items()
        ]
    }
    return orjson.dumps(document) + b"\n"


# ---------------------------------------------------------------- logs


class IsoClock:
    """ISO-8601 UTC with microseconds; the seconds part is cached since times barely move."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, us: int) -> str:
        second, micros = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micros:06d}Z"


def log_line(iso: IsoClock, trace_id: str, request_id: str, span: Span) -> bytes:
    record = {
        "timestamp": iso(span.end),
        "level": "error" if span.error else "info",
        "trace_id": trace_id,
        "span_id": span.span_id,
        "request_id": request_id,
        "stage": span.name,
        "service": span.service,
        "duration_ms": (span.end - span.start) / 1000,
        "error": span.error,
    }
    return orjson.dumps(record) + b"\n"


# ---------------------------------------------------------------- files


def dataset_paths(out: Path, spans: int, seed: int) -> dict[str, Path]:
    stem = f"{spans}-s{seed}"
    return {
        "otlp": out / f"otlp-{stem}.jsonl",
        "logs": out / f"logs-{stem}.jsonl",
        "meta": out / f"meta-{stem}.json",
    }


def generate(spans: int, seed: int, out: Path, *, logs: bool = False) -> dict[str, Any]:
    """Write the dataset for (spans, seed) into ``out`` and return its meta description."""
    out.mkdir(parents=True, exist_ok=True)
    paths = dataset_paths(out, spans, seed)
    started = time.perf_counter()
    workload, totals, iso = Workload(seed), Totals(), IsoClock()
    pending: list[
        tuple[int, int, bytes]
    ] = []  # log lines waiting for earlier ones: (time, seq, line)
    sequence = otlp_lines = 0
    batch: list[tuple[str, list[Span]]] = []
    tmp = {k: p.with_suffix(p.suffix + ".part") for k, p in paths.items()}
    with (
        open(tmp["otlp"], "wb") as otlp_out,
        open(tmp["logs"] if logs else "/dev/null", "wb") as log_out,
    ):
        while totals.spans < spans:
            trace_id, request_id, request_spans, failed, slow = workload.request()
            totals.add(trace_id, request_spans, failed)
            totals.slow_requests += slow
            batch.append((trace_id, request_spans))
            if len(batch) == TRACES_PER_LINE:
                otlp_out.write(otlp_line(batch))
                otlp_lines += 1
                batch = []
            if logs:
                # Later requests start after this one, so every pending line that finished before
                # its start can be written now: the file comes out in time order.
                start = request_spans[-1].start
                while pending and pending[0][0] < start:
                    log_out.write(heapq.heappop(pending)[2])
                for span in request_spans:
                    sequence += 1
                    heapq.heappush(
                        pending, (span.end, sequence, log_line(iso, trace_id, request_id, span))
                    )
        if batch:
            otlp_out.write(otlp_line(batch))
            otlp_lines += 1
        while pending:
            log_out.write(heapq.heappop(pending)[2])
    tmp["otlp"].replace(paths["otlp"])
    if logs:
        tmp["logs"].replace(paths["logs"])
    meta = {
        "seed": seed,
        "spans_requested": spans,
        "spans": totals.spans,
        "requests": totals.requests,
        "failed_requests": totals.failed_requests,
        "slow_requests": totals.slow_requests,
        "otlp_lines": otlp_lines,
        "otlp_bytes": paths["otlp"].stat().st_size,
        "log_lines": totals.spans if logs else None,
        "log_bytes": paths["logs"].stat().st_size if logs else None,
        "sample_trace_ok": totals.sample_ok,
        "sample_trace_error": totals.sample_error,
        "stages": dict(sorted(totals.stages.items())),
        "seconds": round(time.perf_counter() - started, 2),
    }
    paths["meta"].write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to write (default 1M)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--logs", action="store_true", help="also write the JSON-lines logs")
    args = parser.parse_args(argv)
    meta = generate(args.spans, args.seed, args.out, logs=args.logs)
    paths = dataset_paths(args.out, args.spans, args.seed)
    print(
        f"{meta['spans']:,} spans in {meta['requests']:,} requests, "
        f"{meta['otlp_bytes'] / 1e6:,.0f} MB OTLP -> {paths['otlp']}"
        + (f", {meta['log_bytes'] / 1e6:,.0f} MB logs -> {paths['logs']}" if args.logs else "")
        + f" in {meta['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
