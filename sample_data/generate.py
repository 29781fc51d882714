"""Generate the shipped sample dumps: one seeded ML-inference workload written in every format.

Run ``python sample_data/generate.py`` (options ``--out DIR``, ``--requests N``, ``--seed S``).
Standard library only, so anyone can regenerate or vary the samples without installing tracelens.

The workload: requests hit ``gateway`` (root server span ``POST /predict``), which runs
``validate``, then ``fetch_features`` (feature-store, with a ``redis GET`` client child) in
parallel with ``profile_lookup`` (profile-db), then ``preprocess``, ``model.inference``
(model-server; model v1/v2 about 70/30, with prediction, confidence and input length) and
``postprocess``. Latencies are lognormal; a few percent of requests fail (invalid input, feature
store timeout, CUDA out of memory) and the failure propagates to the root's status; profile
lookups sometimes fail without failing the request; about 2% of requests are slow outliers.
Planted for ``tracelens why``: every timed-out or slow feature fetch is served by one degraded
feature-store shard (``feature_store.shard = shard-3``), the others by any of 16 shards alike.

Every time is an integer number of microseconds, so the OTLP (ns), Jaeger and Zipkin (µs) and the
log files (µs / ms) all state exactly the same instants. ``truth.json`` holds the numbers the
generator knows (counts, errors, durations and numpy-style linear p50/p95) for tests to check.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The encoders live beside this script (run as a script, its folder is on sys.path).
from _dump_formats import (
    CLIENT_HALF_NAME,
    EPOCH,
    MODEL_NAME,
    app_log_lines,
    jaeger_trace,
    otlp_logs_document,
    otlp_metrics_document,
    otlp_spans_document,
    zipkin_spans,
)

START_US = int((datetime(2026, 3, 2, 9, 0, tzinfo=UTC) - EPOCH).total_seconds()) * 1_000_000
LOG_ONLY_START_US = START_US + 3_600_000_000  # the log-only service runs an hour later
CLASSES = ("billing", "technical_support", "account", "cancellation", "other")
CLASS_WEIGHTS = (0.30, 0.28, 0.20, 0.12, 0.10)
#: The planted cause `tracelens why` should find: a degraded feature-store shard.
SHARDS = 16
PLANTED = {"stage": "fetch_features", "attribute": "feature_store.shard", "value": "shard-3"}


class Workload:
    """Draws the requests of one seeded run; ``spans`` is the trace view, ``requests`` the rest."""

    def __init__(self, seed: int, count: int):
        self.rng = random.Random(seed)
        # The planted cause draws from its own generator, so every other draw (ids, times,
        # errors) is the one the samples had before it was planted.
        self.planted = random.Random(seed + 3)
        self.ids: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        clock = START_US
        for _ in range(count):
            clock += max(1_000, round(self.rng.expovariate(1 / 150_000)))
            self.requests.append(self._request(clock))

    def _hex(self, bits: int) -> str:
        while True:
            value = f"{self.rng.getrandbits(bits):0{bits // 4}x}"
            if value not in self.ids and int(value, 16):
                self.ids.add(value)
                return value

    def _shard(self, degraded: bool) -> str:
        """The feature-store shard of a fetch: every timed-out or slow fetch is served by the
        degraded shard (PLANTED), the healthy ones by any of the shards alike."""
        if degraded:
            return PLANTED["value"]
        return f"shard-{self.planted.randrange(SHARDS)}"

    def _lat(self, median_ms: float, sigma: float) -> int:
        return max(5, round(median_ms * 1000 * math.exp(self.rng.gauss(0, sigma))))

    def _gap(self) -> int:
        return self.rng.randint(30, 300)

    def _request(self, t0: int) -> dict[str, Any]:
        rng = self.rng
        trace_id = self._hex(128)
        req: dict[str, Any] = {
            "request_id": f"req-{self._hex(24)}",
            "trace_id": trace_id,
            "user_id": rng.randint(1000, 9999),
            "spans": [],
            "error": None,
        }
        root = self._span(req, None, "gateway", "POST /predict", "server", t0, t0)
        root["attributes"] = {
            "request.id": req["request_id"],
            "http.method": "POST",
            "http.route": "/predict",
            "user.id": req["user_id"],
        }
        end = self._stages(req, root, t0 + self._gap())
        root["end"] = end + self._gap()
        status_code = {None: 200, "validate": 400, "fetch_features": 504, "model.inference": 500}
        root["attributes"]["http.status_code"] = status_code[req["error"] and req["error"][0]]
        if req["error"]:
            root["status"], root["message"] = "error", req["error"][1]
        return req

    def _stages(self, req: dict[str, Any], root: dict[str, Any], cur: int) -> int:
        rng, uid = self.rng, req["user_id"]
        validate = self._span(
            req, root, "gateway", "validate", "internal", cur, cur + self._lat(0.6, 0.3)
        )
        if rng.random() < 0.01:
            field, value = rng.choice(
                (("age", -rng.randint(1, 9)), ("text", "''"), ("amount", -rng.randint(1, 500)))
            )
            self._fail(
                req, validate, "ValidationError", f"invalid input: field '{field}' is {value}"
            )
            return validate["end"]
        cur = validate["end"] + self._gap()
        # fetch_features and profile_lookup run in parallel on other services.
        f0 = cur + self._gap()
        fetch = self._span(req, root, "feature-store", "fetch_features", "server", f0, 0)
        r0 = f0 + rng.randint(100, 400)
        redis = self._span(
            req, fetch, "feature-store", "redis GET", "client", r0, r0 + self._lat(1.5, 0.4)
        )
        redis["attributes"] = {"db.system": "redis", "db.statement": f"GET features:user:{uid}"}
        fetch["end"] = max(redis["end"] + rng.randint(100, 500), f0 + self._lat(12, 0.35))
        timed_out = rng.random() < 0.015
        slow_fetch = False
        if timed_out:
            fetch["end"] = f0 + 250_000 + rng.randint(100, 900)
        elif rng.random() < 0.01:
            slow_fetch = True
            fetch["end"] = f0 + round((fetch["end"] - f0) * rng.uniform(5, 10))
        fetch["attributes"] = {"feature_store.shard": self._shard(timed_out or slow_fetch)}
        p0 = cur + self._gap()
        profile = self._span(
            req, root, "profile-db", "profile_lookup", "server", p0, p0 + self._lat(8, 0.45)
        )
        profile["attributes"] = {"db.system": "postgresql"}
        if rng.random() < 0.02:  # handled: the gateway falls back to a default profile
            self._fail(
                req, profile, "ProfileNotFound", f"profile not found for user {uid}", fatal=False
            )
        if timed_out:
            self._fail(
                req, fetch, "TimeoutError", f"feature store timeout after 250ms for user {uid}"
            )
        cur = max(fetch["end"], profile["end"]) + self._gap()
        if timed_out:
            return cur
        pre = self._span(
            req, root, "gateway", "preprocess", "internal", cur, cur + self._lat(3, 0.25)
        )
        return self._inference(req, root, pre["end"])

    def _inference(self, req: dict[str, Any], root: dict[str, Any], cur: int) -> int:
        rng = self.rng
        version = "v1" if rng.random() < 0.7 else "v2"
        length = min(1024, max(8, round(120 * math.exp(rng.gauss(0, 0.6)))))
        oom = rng.random() < (0.03 if length > 300 else 0.008)
        median = (35 if version == "v1" else 28) * (0.5 + length / 240)
        net_in, net_out = rng.randint(200, 800), rng.randint(150, 600)
        m0 = cur + self._gap() + net_in
        duration = self._lat(median * (0.4 if oom else 1), 0.25)
        if not oom and rng.random() < 0.01:
            duration = round(duration * rng.uniform(5, 10))
        model = self._span(
            req, root, "model-server", "model.inference", "server", m0, m0 + duration
        )
        model["attributes"] = {
            "model.name": MODEL_NAME,
            "model.version": version,
            "input.length": length,
        }
        model["client_half"] = (m0 - net_in, m0 + duration + net_out)
        if oom:
            size = rng.choice(("512 MiB", "1.5 GiB", "2 GiB", "3.25 GiB"))
            self._fail(
                req,
                model,
                "torch.cuda.OutOfMemoryError",
                f"CUDA out of memory: tried to allocate {size}",
            )
            return model["client_half"][1]
        alpha, beta = (8, 2) if version == "v1" else (5, 3)  # v2 is less sure of itself
        model["attributes"]["prediction"] = rng.choices(CLASSES, CLASS_WEIGHTS)[0]
        model["attributes"]["confidence"] = round(rng.betavariate(alpha, beta), 4)
        p0 = model["client_half"][1] + self._gap()
        post = self._span(
            req, root, "gateway", "postprocess", "internal", p0, p0 + self._lat(1.2, 0.3)
        )
        return post["end"]

    def _span(
        self,
        req: dict[str, Any],
        parent: dict[str, Any] | None,
        service: str,
        name: str,
        kind: str,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        span = {
            "trace_id": req["trace_id"],
            "span_id": self._hex(64),
            "parent_id": parent["span_id"] if parent else None,
            "service": service,
            "name": name,
            "kind": kind,
            "start": start,
            "end": end,
            "status": "unset",
            "message": None,
            "attributes": {},
            "exception": None,
        }
        req["spans"].append(span)
        return span

    def _fail(
        self,
        req: dict[str, Any],
        span: dict[str, Any],
        exc_type: str,
        message: str,
        fatal: bool = True,
    ) -> None:
        span["status"], span["message"], span["exception"] = "error", message, exc_type
        if fatal:
            req["error"] = (span["name"], message)


LOG_ONLY_STAGES = (
    ("tokenize", 0.8, 0.3),
    ("embed", 9.0, 0.3),
    ("ann_search", 4.0, 0.5),
    ("rerank", 15.0, 0.35),
)


def stages_log(rng: random.Random, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """python-json-logger lines of a log-only ranking service, and its per-stage records."""
    events: list[tuple[int, dict[str, Any]]] = []
    records = []
    clock = LOG_ONLY_START_US
    used: set[str] = set()
    for _ in range(count):
        clock += max(1_000, round(rng.expovariate(1 / 300_000)))
        while (request_id := f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}") in used:
            pass
        used.add(request_id)
        cur = clock
        for stage, median, sigma in LOG_ONLY_STAGES:
            # asctime has millisecond resolution: lines are written on the millisecond grid.
            latency_us = max(5, round(median * 1000 * math.exp(rng.gauss(0, sigma))))
            cur = ((cur + latency_us) // 1000 + 1) * 1000
            failed = stage == "ann_search" and rng.random() < 0.03
            line = {
                "asctime": (EPOCH + timedelta(microseconds=cur)).strftime("%Y-%m-%d %H:%M:%S,")
                + f"{cur // 1000 % 1000:03d}",
                "levelname": "ERROR" if failed else "INFO",
                "name": "ranker.pipeline",
                "message": "stage failed" if failed else "stage done",
                "service": "ranker",
                "request_id": request_id,
                "stage": stage,
                "latency_ms": latency_us / 1000,
            }
            if failed:
                line["error"] = f"ann index unavailable: shard {rng.randint(0, 7)} not loaded"
            events.append((cur, line))
            records.append(
                {
                    "request_id": request_id,
                    "stage": stage,
                    "latency_us": latency_us,
                    "time_us": cur,
                    "error": failed,
                }
            )
            cur += rng.randint(50, 400)
            if failed:
                break
    events.sort(key=lambda item: item[0])
    return [line for _, line in events], records


# ---------------------------------------------------------------- ground truth


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy.percentile's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def stage_truth(durations_us: dict[str, list[int]], errors: dict[str, int]) -> dict[str, Any]:
    return {
        name: {
            "count": len(values),
            "errors": errors.get(name, 0),
            "p50_ms": percentile(values, 0.5) / 1000,
            "p95_ms": percentile(values, 0.95) / 1000,
            "durations_us": values,
        }
        for name, values in sorted(durations_us.items())
    }


def truth(
    requests: list[dict[str, Any]], stage_records: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    spans = [s for r in requests for s in r["spans"]]
    durations: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    services: dict[str, str] = {}
    for span in spans:
        durations.setdefault(span["name"], []).append(span["end"] - span["start"])
        errors[span["name"]] = errors.get(span["name"], 0) + (span["status"] == "error")
        services[span["name"]] = span["service"]
    stages = stage_truth(durations, errors)
    for name, item in stages.items():
        item["service"] = services[name]
    models: dict[str, dict[str, Any]] = {}
    for span in spans:
        if span["name"] == "model.inference":
            attrs = span["attributes"]
            item = models.setdefault(
                attrs["model.version"],
                {"count": 0, "errors": 0, "predictions": {}, "confidences": []},
            )
            item["count"] += 1
            item["errors"] += span["status"] == "error"
            if "prediction" in attrs:
                item["predictions"][attrs["prediction"]] = (
                    item["predictions"].get(attrs["prediction"], 0) + 1
                )
                item["confidences"].append(attrs["confidence"])
    for item in models.values():
        item["confidence_mean"] = sum(item["confidences"]) / len(item["confidences"])
        item["predictions"] = dict(sorted(item["predictions"].items()))
    log_durations: dict[str, list[int]] = {}
    log_errors: dict[str, int] = {}
    for record in stage_records:
        log_durations.setdefault(record["stage"], []).append(record["latency_us"])
        log_errors[record["stage"]] = log_errors.get(record["stage"], 0) + record["error"]
    log_requests = {r["request_id"] for r in stage_records}
    failed_requests = {r["request_id"] for r in stage_records if r["error"]}
    roots = [r["spans"][0] for r in requests]
    fetches = [s for s in spans if s["name"] == PLANTED["stage"]]
    planted = {
        **PLANTED,
        "requests_with_value": sum(
            s["attributes"][PLANTED["attribute"]] == PLANTED["value"] for s in fetches
        ),
    }
    return {
        "requests": len(requests),
        "request_errors": sum(r["error"] is not None for r in requests),
        "requests_with_error_spans": sum(
            any(s["status"] == "error" for s in r["spans"]) for r in requests
        ),
        "spans": len(spans),
        "error_spans": sum(s["status"] == "error" for s in spans),
        "root": {
            "name": "POST /predict",
            "service": "gateway",
            "p50_ms": percentile([s["end"] - s["start"] for s in roots], 0.5) / 1000,
            "p95_ms": percentile([s["end"] - s["start"] for s in roots], 0.95) / 1000,
        },
        "error_messages": sorted({s["message"] for s in spans if s["message"]}),
        "planted": planted,
        "stages": stages,
        "model_versions": dict(sorted(models.items())),
        "zipkin": {
            "note": f"adds a gateway CLIENT half named {CLIENT_HALF_NAME!r} sharing the id of "
            "every model.inference span (the server half, shared: true)",
            "spans": len(spans) + len(durations["model.inference"]),
            "client_halves": len(durations["model.inference"]),
            "client_half_errors": errors["model.inference"],
        },
        **extra,
        "stages_log": {
            "service": "ranker",
            "requests": len(log_requests),
            "request_errors": len(failed_requests),
            "lines": len(stage_records),
            "stages": stage_truth(log_durations, log_errors),
        },
    }


def app_log_truth(lines: list[dict[str, Any]]) -> dict[str, Any]:
    levels: dict[str, int] = {}
    stages: dict[str, dict[str, int]] = {}
    for line in lines:
        levels[line["level"]] = levels.get(line["level"], 0) + 1
        if "stage" in line:
            item = stages.setdefault(line["stage"], {"count": 0, "errors": 0})
            item["count"] += 1
            # The README's rule: an error level, or an error field (the handled profile
            # lookup failures are warnings with an error field).
            item["errors"] += line["level"] == "error" or bool(line.get("error"))
    return {
        "lines": len(lines),
        "requests": len({line["request_id"] for line in lines}),
        "levels": dict(sorted(levels.items())),
        "stage_lines": sum(item["count"] for item in stages.values()),
        "stages": dict(sorted(stages.items())),
    }


# ---------------------------------------------------------------- files


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_all(out: Path, *, seed: int, count: int, log_count: int) -> dict[str, Any]:
    workload = Workload(seed, count)
    requests = workload.requests
    out.mkdir(parents=True, exist_ok=True)
    otlp_lines = [
        dumps(otlp_spans_document([s for r in requests[i : i + 5] for s in r["spans"]]))
        for i in range(0, len(requests), 5)
    ]
    logs_doc, log_records = otlp_logs_document(requests)
    # Split the log records over two lines and mix them in among the span lines, as the
    # Collector's file exporter does; one metrics line that readers must skip.
    halves = [dict(logs_doc), dict(logs_doc)]
    halves[0]["resourceLogs"] = logs_doc["resourceLogs"][: len(logs_doc["resourceLogs"]) // 2]
    halves[1]["resourceLogs"] = logs_doc["resourceLogs"][len(logs_doc["resourceLogs"]) // 2 :]
    otlp_lines.insert(len(otlp_lines) // 3, dumps(halves[0]))
    otlp_lines.insert(2 * len(otlp_lines) // 3, dumps(halves[1]))
    otlp_lines.insert(len(otlp_lines) // 2, dumps(otlp_metrics_document(requests)))
    (out / "traces.otlp.jsonl").write_text("\n".join(otlp_lines) + "\n", encoding="utf-8")
    jaeger = {
        "data": [jaeger_trace(r) for r in requests],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
    (out / "traces.jaeger.json").write_text(dumps(jaeger) + "\n", encoding="utf-8")
    zipkin_rng = random.Random(seed + 1)
    zipkin = [s for r in requests for s in zipkin_spans(r, zipkin_rng)]
    (out / "traces.zipkin.json").write_text(dumps(zipkin) + "\n", encoding="utf-8")
    app_lines = app_log_lines(requests)
    (out / "app.log.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for _, line in app_lines), encoding="utf-8"
    )
    stage_lines, stage_records = stages_log(random.Random(seed + 2), log_count)
    (out / "stages.log.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in stage_lines), encoding="utf-8"
    )
    extra = {
        "seed": seed,
        "otlp": {
            "lines": len(otlp_lines),
            "span_lines": len(otlp_lines) - 3,
            "log_lines": 2,
            "metrics_lines": 1,
            "log_records": log_records,
        },
        "app_log": app_log_truth([line for _, line in app_lines]),
    }
    result = truth(requests, stage_records, extra)
    (out / "truth.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output directory (default: next to this script)",
    )
    parser.add_argument(
        "--requests", type=int, default=350, help="requests in the traced workload (default 350)"
    )
    parser.add_argument(
        "--log-requests",
        type=int,
        default=200,
        help="requests in the log-only service (default 200)",
    )
    parser.add_argument("--seed", type=int, default=20260316, help="random seed (default 20260316)")
    args = parser.parse_args(argv)
    result = write_all(args.out, seed=args.seed, count=args.requests, log_count=args.log_requests)
    summary = f"{result['spans']} spans of {result['requests']} requests"
    print(f"wrote {summary} ({result['request_errors']} failed) to {args.out}")


if __name__ == "__main__":
    main()
