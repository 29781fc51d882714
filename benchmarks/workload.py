"""The benchmark workload: one ML-inference request at a time, from one seeded random stream.

A request: ``gateway`` root ``POST /predict`` -> ``validate``, then ``fetch_features``
(feature-store; a ``redis GET`` client child in 80% of requests, the rest hit the store's local
cache) in parallel with ``profile_lookup`` (profile-db), ``preprocess``, ``model.inference``
(model-server, ``model.version`` v1 70% / v2 30%, latency growing with the input length) and
``postprocess``. Latencies are lognormal. About 3% of requests fail: invalid input (0.5%, stops
after validate), feature-store timeout at 250 ms (0.8%), CUDA out of memory (1.7%, no
postprocess); the root then carries the error and a 4xx/5xx status. 0.5% of profile lookups fail
without failing the request (a fallback profile). About 2% of requests have one stage
(model.inference, fetch_features or preprocess) 5-15x slower than usual.

Times are whole microseconds since the epoch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

START_US = 1_772_442_000_000_000  # 2026-03-02T09:00:00Z
REQUESTS_PER_SECOND = 400  # arrivals overlap, so log lines of requests interleave
INTERNAL, SERVER, CLIENT = 1, 2, 3
CLASSES = ("billing", "technical_support", "account", "cancellation", "other")


@dataclass(slots=True)
class Span:
    service: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    start: int  # µs since the epoch
    end: int
    attributes: dict[str, Any]
    error: str | None = None  # status message when the span failed
    exception: str | None = None  # exception type, recorded as an ``exception`` event


class Workload:
    """Draws requests one at a time from one seeded random stream."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.clock = START_US

    def _lat(self, median_us: float, sigma: float) -> int:
        return max(5, round(median_us * math.exp(self.rng.gauss(0.0, sigma))))

    def _id(self, bits: int) -> str:
        # 64/128 random bits: a collision among a few million ids has negligible probability.
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def request(self) -> tuple[str, str, list[Span], bool, bool]:
        """(trace id, request id, spans in the order they finished, failed, slow)."""
        rng = self.rng
        self.clock += max(50, round(rng.expovariate(REQUESTS_PER_SECOND / 1_000_000)))
        t0 = self.clock
        trace_id, request_id = self._id(128), "req-" + self._id(48)
        slow = rng.random() < 0.02
        slow_stage = rng.choices(("model.inference", "fetch_features", "preprocess"), (6, 3, 1))[0]
        slow_factor = rng.uniform(5, 15) if slow else 1.0
        user = rng.randint(1000, 99999)
        root = Span("gateway", self._id(64), "", "POST /predict", SERVER, t0, t0, {})
        root.attributes = {
            "http.request.method": "POST",
            "http.route": "/predict",
            "request.id": request_id,
        }
        spans = [root]

        def child(parent: Span, service: str, name: str, kind: int, start: int, dur: int) -> Span:
            if slow and name == slow_stage:
                dur = round(dur * slow_factor)
            span = Span(service, self._id(64), parent.span_id, name, kind, start, start + dur, {})
            spans.append(span)
            return span

        status = 200
        cur = t0 + rng.randint(30, 200)
        validate = child(root, "gateway", "validate", INTERNAL, cur, self._lat(600, 0.3))
        fate = rng.random()
        if fate < 0.005:
            fail(validate, "ValidationError", f"invalid input: field 'text' is empty (user {user})")
            status, end = 400, validate.end
        else:
            cur = validate.end + rng.randint(30, 200)
            fetch = child(
                root,
                "feature-store",
                "fetch_features",
                SERVER,
                cur + rng.randint(100, 400),
                self._lat(9_000, 0.35),
            )
            fetch.attributes = {"feature.count": 64}
            if rng.random() < 0.8:  # the rest are served from the store's local cache
                r0 = fetch.start + rng.randint(100, 400)
                redis = child(
                    fetch, "feature-store", "redis GET", CLIENT, r0, self._lat(1_500, 0.4)
                )
                redis.attributes = {
                    "db.system": "redis",
                    "db.statement": f"GET features:user:{user}",
                }
                fetch.end = max(fetch.end, redis.end + rng.randint(100, 500))
            profile = child(
                root,
                "profile-db",
                "profile_lookup",
                SERVER,
                cur + rng.randint(50, 300),
                self._lat(7_000, 0.45),
            )
            profile.attributes = {"db.system": "postgresql"}
            if rng.random() < 0.005:  # handled: the gateway falls back to a default profile
                fail(profile, "ProfileNotFound", f"profile not found for user {user}")
            cur = max(fetch.end, profile.end) + rng.randint(30, 200)
            if fate < 0.013:
                fetch.end = fetch.start + 250_000 + rng.randint(100, 900)
                fail(fetch, "TimeoutError", f"feature store timeout after 250ms (user {user})")
                status, end = 504, fetch.end + rng.randint(30, 200)
            else:
                end = self._inference(root, child, cur, oom=fate < 0.03)
                status = 500 if fate < 0.03 else 200
        root.end = end + rng.randint(30, 200)
        root.attributes["http.response.status_code"] = status
        failed = status != 200
        if failed:
            root.error = next(s.error for s in spans if s.error and s.name != "profile_lookup")
        spans.sort(key=lambda s: s.end)  # exporters send a span when it ends: children first
        return trace_id, request_id, spans, failed, slow

    def _inference(self, root: Span, child: Callable[..., Span], cur: int, oom: bool) -> int:
        rng = self.rng
        version = "v1" if rng.random() < 0.7 else "v2"
        length = min(1024, max(8, round(120 * math.exp(rng.gauss(0.0, 0.6)))))
        pre = child(
            root, "gateway", "preprocess", INTERNAL, cur, self._lat(2_500 + 4 * length, 0.25)
        )
        pre.attributes = {"input.length": length}
        median = (34_000 if version == "v1" else 27_000) * (0.5 + length / 240)
        m0 = pre.end + rng.randint(200, 800)
        model = child(
            root,
            "model-server",
            "model.inference",
            SERVER,
            m0,
            self._lat(median * (0.4 if oom else 1), 0.25),
        )
        model.attributes = {
            "model.name": "intent-classifier",
            "model.version": version,
            "input.length": length,
        }
        if oom:
            size = rng.choice(("512 MiB", "1.5 GiB", "2 GiB", "3.25 GiB"))
            fail(
                model,
                "torch.cuda.OutOfMemoryError",
                f"CUDA out of memory: tried to allocate {size}",
            )
            return model.end + rng.randint(150, 600)
        model.attributes["prediction"] = rng.choice(CLASSES)
        model.attributes["confidence"] = round(rng.betavariate(8, 2), 4)
        post = child(
            root,
            "gateway",
            "postprocess",
            INTERNAL,
            model.end + rng.randint(150, 600),
            self._lat(1_200, 0.3),
        )
        return post.end


def fail(span: Span, exc_type: str, message: str) -> None:
    span.error, span.exception = message, exc_type
