"""Write LLM-serving dumps with the real OpenTelemetry SDK and exporters.

Usage: ``python tests/acceptance/realdumps/make_llm_dumps.py OUT_DIR`` (needs the ``test`` extra).

Two services, each with its own ``TracerProvider`` (as two processes would): ``chat-app`` serves
``POST /v1/chat`` and calls the model through a CLIENT span ``chat MODEL`` carrying the
OpenTelemetry GenAI attributes (``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` and
``output_tokens``, ``gen_ai.response.finish_reasons`` as a string sequence); the context crosses
to ``vllm`` through the W3C ``traceparent`` header and the real propagator, where a SERVER span
``llm_request`` carries vLLM's attributes (``gen_ai.latency.*`` in seconds as doubles,
``gen_ai.usage.prompt_tokens``/``completion_tokens``, ``gen_ai.request.id``). Twelve requests on
two models; the ninth fails on the server (status ERROR, no completion).

Files written into OUT_DIR by the exporters themselves: ``llm.otlp.jsonl`` (``encode_spans`` +
``MessageToJson``, a request a line), ``llm.console.json`` (``ConsoleSpanExporter``),
``llm.zipkin.json`` (``JsonV2Encoder``, per service, joined), and ``truth.json``: the spans as
the ``InMemorySpanExporter`` holds them, attributes included.

Times are set explicitly on a µs grid from a seeded generator (the console and Zipkin formats
carry µs), starting at the real clock.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToJson
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = ("chat-app", "vllm")
MODELS = ("llama-3-8b-instruct", "qwen2-7b-instruct")
US = 1_000


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    memory = InMemorySpanExporter()
    with (out / "llm.console.json").open("w", encoding="utf-8") as console_file:
        console = ConsoleSpanExporter(out=console_file)
        providers = {}
        for service in SERVICES:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SimpleSpanProcessor(memory))
            provider.add_span_processor(SimpleSpanProcessor(console))
            providers[service] = provider
        app = providers["chat-app"].get_tracer("chat.app", "1.0")
        engine = providers["vllm"].get_tracer("vllm", "0.6.0")
        rng = random.Random(17)
        clock = time.time_ns() // US * US
        for index in range(12):
            clock += rng.randint(50_000, 400_000) * US
            run_request(app, engine, rng, clock, index)
        for provider in providers.values():
            provider.shutdown()
    spans = memory.get_finished_spans()
    write_zipkin(spans, out / "llm.zipkin.json")
    trace_ids = list(dict.fromkeys(s.get_span_context().trace_id for s in spans))
    lines = [
        MessageToJson(
            encode_spans([s for s in spans if s.get_span_context().trace_id == t]), indent=None
        )
        for t in trace_ids
    ]
    (out / "llm.otlp.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    truth = {"spans": [span_truth(s) for s in spans]}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return 0


def run_request(
    app: trace.Tracer, engine: trace.Tracer, rng: random.Random, t0: int, index: int
) -> None:
    model = MODELS[index % 2]
    failed = index == 8
    prompt = rng.randint(40, 2000)
    output = 1 if index == 5 else rng.randint(2, 400)
    queue = rng.randint(0, 80_000) * US
    prefill = rng.randint(10_000, 200_000) * US
    decode = 0 if failed else (output - 1) * rng.randint(15_000, 45_000) * US
    e2e = queue + prefill + decode
    client_start = t0 + rng.randint(200, 2_000) * US
    server_start = client_start + rng.randint(300, 3_000) * US
    server_end = server_start + e2e
    client_end = server_end + rng.randint(200, 2_000) * US
    root = app.start_span("POST /v1/chat", kind=SpanKind.SERVER, start_time=t0)
    with trace.use_span(root, end_on_exit=False):
        client = app.start_span(f"chat {model}", kind=SpanKind.CLIENT, start_time=client_start)
        client.set_attribute("gen_ai.operation.name", "chat")
        client.set_attribute("gen_ai.provider.name", "vllm")
        client.set_attribute("gen_ai.request.model", model)
        client.set_attribute("gen_ai.usage.input_tokens", prompt)
        headers: dict[str, str] = {}
        with trace.use_span(client, end_on_exit=False):
            inject(headers)
        server = engine.start_span(
            "llm_request", kind=SpanKind.SERVER, start_time=server_start, context=extract(headers)
        )
        server.set_attribute("gen_ai.response.model", model)
        server.set_attribute("gen_ai.request.id", f"cmpl-{index}")
        server.set_attribute("gen_ai.usage.prompt_tokens", prompt)
        server.set_attribute("gen_ai.latency.time_in_queue", queue / 1e9)
        server.set_attribute("gen_ai.latency.e2e", e2e / 1e9)
        if failed:
            server.set_status(Status(StatusCode.ERROR, "KV cache exhausted"))
            client.set_status(Status(StatusCode.ERROR, "503 from the model server"))
            root.set_status(Status(StatusCode.ERROR, "503 from the model server"))
        else:
            server.set_attribute("gen_ai.usage.completion_tokens", output)
            server.set_attribute("gen_ai.latency.time_to_first_token", (queue + prefill) / 1e9)
            server.set_attribute("gen_ai.latency.time_in_model_prefill", prefill / 1e9)
            server.set_attribute("gen_ai.latency.time_in_model_decode", decode / 1e9)
            client.set_attribute("gen_ai.response.model", model)
            client.set_attribute("gen_ai.usage.output_tokens", output)
            reason = "length" if output >= 390 else "stop"
            client.set_attribute("gen_ai.response.finish_reasons", (reason,))
        server.end(end_time=server_end)
        client.end(end_time=client_end)
    root.end(end_time=client_end + rng.randint(100, 1_000) * US)


def span_truth(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    attributes = {
        k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()
    }
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "service": span.resource.attributes["service.name"],
        "name": span.name,
        "kind": span.kind.name.lower(),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name.lower(),
        "attributes": attributes,
    }


def write_zipkin(spans: Any, path: Path) -> None:
    encoder = JsonV2Encoder()
    combined: list[Any] = []
    for service in SERVICES:
        mine = [s for s in spans if s.resource.attributes["service.name"] == service]
        endpoint = NodeEndpoint()
        endpoint.service_name = service
        combined.extend(json.loads(encoder.serialize(mine, endpoint)))
    path.write_text(json.dumps(combined) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
