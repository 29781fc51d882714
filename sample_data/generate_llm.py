"""Generate the LLM-serving sample: a chat app calling a vLLM-style server, two models.

Run ``python sample_data/generate_llm.py`` (options ``--out DIR``, ``--requests N``,
``--seed S``). Standard library only, seeded: the files are reproducible byte for byte.

Each request: ``chat-app`` root ``POST /v1/chat`` (SERVER) -> ``chat MODEL`` (CLIENT; OpenTelemetry
GenAI semantic conventions: gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model,
gen_ai.response.model, gen_ai.usage.input_tokens/output_tokens, gen_ai.response.finish_reasons)
-> ``vllm`` ``llm_request`` (SERVER; vLLM's attributes: gen_ai.latency.* in seconds,
gen_ai.usage.prompt_tokens/completion_tokens, gen_ai.request.id, max_tokens). The server
span lasts exactly its e2e = queue + prefill + decode, ttft = queue + prefill. A queueing burst in
the middle of the run, ~4% of requests with max_tokens 1 (no TPOT), ~12% cut at max_tokens
(finish reason ``length``), ~3% fail on the server (KV cache exhausted) and the client.

Files: ``llm.otlp.jsonl`` (OTLP/JSON, 10 traces a line), ``llm.slower.otlp.jsonl`` (another
draw of the same workload in which mixtral decodes 30% slower: a regression for ``diff``),
``llm.log.jsonl`` (the app's log line
per request: stage ``chat``, duration_ms, ttft_ms, queue_ms, prefill_ms, decode_ms,
prompt_tokens, completion_tokens, model, finish_reason), ``llm_truth.json`` (per model: the raw values the generator drew).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _dump_formats import EPOCH, iso_us, otlp_attrs

START_US = int((datetime(2026, 3, 2, 12, 0, tzinfo=UTC) - EPOCH).total_seconds()) * 1_000_000
#: model -> (share of requests, TPOT median ms, prefill ms per 1k prompt tokens, base prefill ms)
MODELS = {
    "llama-3-8b-instruct": (0.65, 22.0, 60.0, 12.0),
    "mixtral-8x7b-instruct": (0.35, 38.0, 130.0, 25.0),
}
KIND = {"server": 2, "client": 3}
#: the regressed run (``llm.slower.otlp.jsonl``): another draw, mixtral decoding 30% slower
SLOWER = {"mixtral-8x7b-instruct": 1.3}


class Llm:
    def __init__(self, seed: int, count: int, slower: dict[str, float] | None = None):
        self.rng = random.Random(seed)
        #: model -> factor on its TPOT (the regressed run)
        self.slower = slower or {}
        self.ids: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        clock = START_US
        for index in range(count):
            clock += max(1_000, round(self.rng.expovariate(1 / 400_000)))
            burst = count // 2 <= index < count // 2 + count // 8
            self.requests.append(self._request(clock, burst))

    def _hex(self, bits: int) -> str:
        while True:
            value = f"{self.rng.getrandbits(bits):0{bits // 4}x}"
            if value not in self.ids and int(value, 16):
                self.ids.add(value)
                return value

    def _request(self, t0: int, burst: bool) -> dict[str, Any]:
        rng = self.rng
        names = list(MODELS)
        model = rng.choices(names, weights=[MODELS[m][0] for m in names])[0]
        _, tpot_ms, per_1k_ms, base_ms = MODELS[model]
        tpot_ms *= self.slower.get(model, 1.0)
        prompt = max(8, min(6000, round(550 * math.exp(rng.gauss(0, 0.8)))))
        short = rng.random() < 0.04
        max_tokens = 1 if short else 512
        wanted = max(1, round(170 * math.exp(rng.gauss(0, 0.7))))
        output = min(wanted, max_tokens)
        finish = "length" if wanted > max_tokens else "stop"
        failed = rng.random() < 0.03
        queue = round(rng.expovariate(1 / (180_000 if burst else 8_000)))
        prefill = round((base_ms + per_1k_ms * prompt / 1000) * 1000 * math.exp(rng.gauss(0, 0.15)))
        per_token = tpot_ms * 1000 * math.exp(rng.gauss(0, 0.12))
        decode = round(per_token * (output - 1)) if output > 1 else 0
        cached = rng.choice([0, 0, 0, 256, 512]) if prompt > 512 else 0
        if failed:
            output, decode, finish = 0, 0, "error"
        trace_id, request_id = self._hex(128), f"chatcmpl-{self._hex(48)}"
        root_id, client_id, server_id = self._hex(64), self._hex(64), self._hex(64)
        e2e = queue + prefill + decode
        net_in, net_out = rng.randint(300, 2500), rng.randint(200, 1500)
        app_before, app_after = rng.randint(500, 4000), rng.randint(300, 2000)
        c0 = t0 + app_before
        s0 = c0 + net_in
        s1 = s0 + e2e
        c1 = s1 + net_out
        end = c1 + app_after
        message = "KV cache exhausted: request preempted and not resumed" if failed else None
        server_attrs: dict[str, Any] = {
            "gen_ai.response.model": model,
            "gen_ai.request.id": request_id,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.usage.prompt_tokens": prompt,
            "gen_ai.latency.time_in_queue": queue / 1e6,
            "gen_ai.latency.e2e": e2e / 1e6,
        }
        if not failed:
            server_attrs.update(
                {
                    "gen_ai.usage.completion_tokens": output,
                    "gen_ai.latency.time_to_first_token": (queue + prefill) / 1e6,
                    "gen_ai.latency.time_in_model_prefill": prefill / 1e6,
                    "gen_ai.latency.time_in_model_decode": decode / 1e6,
                    "gen_ai.latency.time_in_model_inference": (prefill + decode) / 1e6,
                }
            )
        client_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "vllm",
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.usage.input_tokens": prompt,
        }
        if cached:
            client_attrs["gen_ai.usage.cache_read.input_tokens"] = cached
        if not failed:
            client_attrs.update(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.usage.output_tokens": output,
                    "gen_ai.response.finish_reasons": [finish],
                }
            )
        status = "error" if failed else "ok"
        spans = [
            span(
                trace_id,
                root_id,
                None,
                "chat-app",
                "POST /v1/chat",
                "server",
                t0,
                end,
                status,
                message,
                {
                    "http.response.status_code": 503 if failed else 200,
                },
            ),
            span(
                trace_id,
                client_id,
                root_id,
                "chat-app",
                f"chat {model}",
                "client",
                c0,
                c1,
                status,
                message,
                client_attrs,
            ),
            span(
                trace_id,
                server_id,
                client_id,
                "vllm",
                "llm_request",
                "server",
                s0,
                s1,
                status,
                message,
                server_attrs,
            ),
        ]
        return {
            "trace_id": trace_id,
            "request_id": request_id,
            "model": model,
            "failed": failed,
            "spans": spans,
            "queue_us": queue,
            "prefill_us": prefill,
            "decode_us": decode,
            "ttft_us": None if failed else queue + prefill,
            "e2e_us": e2e,
            "client_e2e_us": c1 - c0,
            "input_tokens": prompt,
            "output_tokens": None if failed else output,
            "cached_tokens": cached,
            "finish_reason": None if failed else finish,
            "client_end_us": c1,
        }


def span(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    service: str,
    name: str,
    kind: str,
    start: int,
    end: int,
    status: str,
    message: str | None,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent_id,
        "service": service,
        "name": name,
        "kind": kind,
        "start": start,
        "end": end,
        "status": status,
        "message": message,
        "attributes": attributes,
    }


def otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_value(v) for v in value]}}
    return otlp_attrs({"v": value})[0]["value"]


def otlp_span(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "traceId": item["trace_id"],
        "spanId": item["span_id"],
        "parentSpanId": item["parent_id"] or "",
        "name": item["name"],
        "kind": KIND[item["kind"]],
        "startTimeUnixNano": str(item["start"] * 1000),
        "endTimeUnixNano": str(item["end"] * 1000),
        "attributes": [{"key": k, "value": otlp_value(v)} for k, v in item["attributes"].items()],
        "status": {"code": 2, "message": item["message"]} if item["status"] == "error" else {},
    }


def otlp_document(spans: list[dict[str, Any]]) -> dict[str, Any]:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for item in spans:
        by_service.setdefault(item["service"], []).append(otlp_span(item))
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "llm-sample", "version": "1.0"}, "spans": items}],
            }
            for service, items in by_service.items()
        ]
    }


def log_line(req: dict[str, Any]) -> dict[str, Any]:
    """The app's line for a request, written when the client call returns."""
    line: dict[str, Any] = {
        "timestamp": iso_us(req["client_end_us"]),
        "level": "error" if req["failed"] else "info",
        "event": "chat completion failed" if req["failed"] else "chat completion",
        "trace_id": req["trace_id"],
        "request_id": req["request_id"],
        "service": "chat-app",
        "stage": "chat",
        "duration_ms": req["client_e2e_us"] / 1000,
        "model": req["model"],
        "prompt_tokens": req["input_tokens"],
    }
    if req["failed"]:
        line["error"] = "KV cache exhausted: request preempted and not resumed"
    else:
        line.update(
            completion_tokens=req["output_tokens"],
            ttft_ms=req["ttft_us"] / 1000,
            queue_ms=req["queue_us"] / 1000,
            prefill_ms=req["prefill_us"] / 1000,
            decode_ms=req["decode_us"] / 1000,
            finish_reason=req["finish_reason"],
        )
    return line


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_all(out: Path, *, seed: int, count: int) -> dict[str, Any]:
    requests = Llm(seed, count).requests
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        dumps(otlp_document([s for r in requests[i : i + 10] for s in r["spans"]]))
        for i in range(0, len(requests), 10)
    ]
    (out / "llm.otlp.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "llm.log.jsonl").write_text(
        "".join(json.dumps(log_line(r)) + "\n" for r in requests), encoding="utf-8"
    )
    keys = (
        "queue_us",
        "prefill_us",
        "decode_us",
        "ttft_us",
        "e2e_us",
        "client_e2e_us",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "finish_reason",
        "failed",
    )
    truth = {
        "seed": seed,
        "requests": len(requests),
        "spans": 3 * len(requests),
        "models": {
            model: {key: [r[key] for r in requests if r["model"] == model] for key in keys}
            for model in MODELS
        },
    }
    (out / "llm_truth.json").write_text(json.dumps(truth) + "\n", encoding="utf-8")
    slower = Llm(seed + 1, count, slower=SLOWER).requests
    lines = [
        dumps(otlp_document([s for r in slower[i : i + 10] for s in r["spans"]]))
        for i in range(0, len(slower), 10)
    ]
    (out / "llm.slower.otlp.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20260317)
    args = parser.parse_args(argv)
    write_all(args.out, seed=args.seed, count=args.requests)


if __name__ == "__main__":
    main()
