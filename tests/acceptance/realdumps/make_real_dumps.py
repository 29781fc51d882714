"""Write telemetry dumps with the real OpenTelemetry SDK and real logging libraries.

Usage: ``python tests/acceptance/realdumps/make_real_dumps.py OUT_DIR`` (needs the ``test`` extra:
opentelemetry-sdk, opentelemetry-exporter-zipkin-json, opentelemetry-exporter-otlp-proto-common,
structlog, python-json-logger, loguru).

A small instrumented inference pipeline runs four requests through three services, each with its
own ``TracerProvider`` (as three processes would): ``gateway`` serves ``POST /predict`` with
``validate``, then ``fetch_features`` (a CLIENT call to ``feature-store``, whose ``GET /features``
has a ``redis GET`` child) in parallel with ``profile_lookup`` on two threads, ``preprocess``,
``model.inference`` (a CLIENT call to ``model-server``'s ``predict``, context carried by the W3C
``traceparent`` header through the real propagator) and ``postprocess``. The third request runs
out of GPU memory: the exception is recorded by the SDK on every span it leaves (status ERROR).

Files written into OUT_DIR, every one by the library itself:

- ``spans.console.json``: ``ConsoleSpanExporter`` (pretty JSON objects back to back)
- ``spans.zipkin.json``: ``JsonV2Encoder.serialize`` per service, the arrays joined into one
- ``spans.otlp.jsonl``: the OTLP encoders (``encode_spans``/``encode_logs``) turned into JSON by
  ``google.protobuf.json_format.MessageToJson``: one request per line, ids in base64 as the
  protobuf JSON mapping writes bytes; the last line holds the log records of the SDK's
  ``LoggingHandler``
- ``app.structlog.jsonl`` (``JSONRenderer``), ``app.jsonlogger.jsonl`` (python-json-logger,
  asctime in UTC), ``app.loguru.jsonl`` (``serialize=True``): one line per finished stage and
  one per finished request, with bound request id, stage and duration
- ``truth.json``: the spans as the ``InMemorySpanExporter`` holds them, the SDK's log records,
  and every value handed to the three loggers with the time window of each call

Span times are passed explicitly, read from the real clock and cut to whole microseconds: the
Zipkin and console formats only carry microseconds, so exact comparison needs a µs grid.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from google.protobuf.json_format import MessageToJson
from loguru import logger as loguru_logger
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

try:  # python-json-logger >= 3 moved the formatter
    from pythonjsonlogger.json import JsonFormatter
except ImportError:  # pragma: no cover - older python-json-logger
    from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

try:  # renamed in opentelemetry-sdk 1.3x; the old name is a deprecated alias
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogs
except ImportError:  # pragma: no cover - older SDK
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogs

SERVICES = {"gateway": "2.4.1", "feature-store": "1.12.0", "model-server": "0.9.3"}
OOM = "CUDA out of memory: tried to allocate 1.5 GiB"
REQUESTS = (  # request id, user id, model version, input length, fails with OOM
    ("req-8f3a2c", 8123, "v1", 120, False),
    ("req-1b7e90", 4411, "v2", 64, False),
    ("req-c05d17", 2718, "v1", 900, True),
    ("req-5e2a44", 3141, "v2", 210, False),
)


def now_ns() -> int:
    return time.time_ns() // 1000 * 1000


def work(ms: float) -> None:
    time.sleep(ms / 1000)


class LockedExporter(SpanExporter):
    """Serialises exports: spans end on two threads and the console exporter writes unlocked."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()


class Sinks:
    """The three JSON loggers, each given the same values; ``records`` is what was handed over."""

    def __init__(self, out: Path):
        self.records: list[dict[str, Any]] = []
        # Stages finish on two threads: one lock keeps every file in the order of ``records``.
        self._lock = threading.Lock()
        self._structlog_file = (out / "app.structlog.jsonl").open("w", encoding="utf-8")
        self.structlog = structlog.wrap_logger(
            structlog.PrintLogger(file=self._structlog_file),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
        )
        formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        formatter.converter = time.gmtime  # asctime has no zone: write it in UTC
        self._handler = logging.FileHandler(out / "app.jsonlogger.jsonl", encoding="utf-8")
        self._handler.setFormatter(formatter)
        self.jsonlogger = logging.getLogger("inference.pipeline")
        self.jsonlogger.propagate = False
        self.jsonlogger.setLevel(logging.INFO)
        self.jsonlogger.addHandler(self._handler)
        loguru_logger.remove()  # this script's own process: drop the default stderr sink
        self._loguru_sink = loguru_logger.add(
            str(out / "app.loguru.jsonl"), serialize=True, level="INFO"
        )

    def log(
        self,
        level: str,
        message: str,
        *,
        request_id: str,
        trace_id: str,
        span_id: str,
        stage: str | None,
        duration_ns: int,
        error: BaseException | None = None,
    ) -> None:
        duration_ms = duration_ns / 1_000_000  # whole µs, so three decimals say it exactly
        staged = {"stage": stage} if stage else {}
        failed = {"error": str(error)} if error else {}
        with self._lock:
            before = time.time_ns()
            structlog_bound = self.structlog.bind(
                request_id=request_id, trace_id=trace_id, span_id=span_id
            )
            getattr(structlog_bound, level)(message, **staged, duration_ms=duration_ms, **failed)
            extra = {"request_id": request_id, **staged, "latency_ms": duration_ms, **failed}
            getattr(self.jsonlogger, level)(message, extra=extra)
            loguru_bound = loguru_logger.bind(
                request_id=request_id,
                trace_id=trace_id,
                **staged,
                duration_ms=duration_ms,
                **failed,
            )
            getattr(loguru_bound.opt(exception=error) if error else loguru_bound, level)(message)
            after = time.time_ns()
            self.records.append(
                {
                    "level": level,
                    "message": message,
                    "request_id": request_id,
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "stage": stage,
                    "duration_ns": duration_ns,
                    "error": str(error) if error else None,
                    "before_ns": before,
                    "after_ns": after,
                }
            )

    def close(self) -> None:
        self._structlog_file.close()
        self.jsonlogger.removeHandler(self._handler)
        self._handler.close()
        loguru_logger.remove(self._loguru_sink)


class Pipeline:
    def __init__(self, out: Path):
        self.memory = InMemorySpanExporter()
        self._console_file = (out / "spans.console.json").open("w", encoding="utf-8")
        console = LockedExporter(ConsoleSpanExporter(out=self._console_file))
        self.providers: dict[str, TracerProvider] = {}
        self.tracers: dict[str, trace.Tracer] = {}
        for service, version in SERVICES.items():
            provider = TracerProvider(
                resource=Resource.create({"service.name": service, "service.version": version})
            )
            provider.add_span_processor(SimpleSpanProcessor(self.memory))
            provider.add_span_processor(SimpleSpanProcessor(console))
            self.providers[service] = provider
            self.tracers[service] = provider.get_tracer("inference.pipeline", "1.0")
        self.log_memory = InMemoryLogs()
        self.log_provider = LoggerProvider(resource=Resource.create({"service.name": "gateway"}))
        self.log_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_memory))
        self._otel_handler = LoggingHandler(logger_provider=self.log_provider)
        self.otel_log = logging.getLogger("inference.otel")
        self.otel_log.propagate = False
        self.otel_log.setLevel(logging.INFO)
        self.otel_log.addHandler(self._otel_handler)
        self.sinks = Sinks(out)
        # Both parallel stages open their spans, then meet here before working: they overlap
        # however late the thread pool starts either of them.
        self.together = threading.Barrier(2, timeout=30)

    @contextmanager
    def span(
        self, service: str, name: str, *, kind: SpanKind = SpanKind.INTERNAL, **options: Any
    ) -> Iterator[Any]:
        """A span on the µs grid; the SDK records an escaping exception and sets ERROR itself."""
        start = now_ns()
        manager = self.tracers[service].start_as_current_span(
            name, kind=kind, start_time=start, end_on_exit=False, **options
        )
        span = None
        try:
            with manager as span:
                yield span
        finally:
            if span is not None:
                span.end(end_time=max(now_ns(), start + 1000))

    @contextmanager
    def stage(
        self, request_id: str, name: str, *, kind: SpanKind = SpanKind.INTERNAL
    ) -> Iterator[Any]:
        """A gateway stage: its span, then one line in each logger when it is over."""
        error: BaseException | None = None
        span = None
        try:
            with self.span("gateway", name, kind=kind) as span:
                yield span
        except Exception as exc:
            error = exc
            raise
        finally:
            if span is not None:
                self._log_span(
                    request_id, span, "stage failed" if error else "stage finished", name, error
                )

    def _log_span(
        self,
        request_id: str,
        span: Any,
        message: str,
        stage: str | None,
        error: BaseException | None,
    ) -> None:
        context = span.get_span_context()
        self.sinks.log(
            "error" if error else "info",
            message,
            request_id=request_id,
            trace_id=f"{context.trace_id:032x}",
            span_id=f"{context.span_id:016x}",
            stage=stage,
            duration_ns=span.end_time - span.start_time,
            error=error,
        )

    def handle(self, request_id: str, user_id: int, version: str, length: int, fail: bool) -> None:
        root = None
        error: BaseException | None = None
        attributes = {"request.id": request_id, "http.method": "POST", "user.id": user_id}
        try:
            with self.span(
                "gateway", "POST /predict", kind=SpanKind.SERVER, attributes=attributes
            ) as root:
                self.otel_log.info("request received", extra={"request.id": request_id})
                with self.stage(request_id, "validate"):
                    work(1)
                # fetch_features and profile_lookup run in parallel, each on a copy of the
                # current context so that both are children of the root.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    fetch = pool.submit(
                        contextvars.copy_context().run, self.fetch_features, request_id, user_id
                    )
                    profile = pool.submit(
                        contextvars.copy_context().run, self.profile_lookup, request_id
                    )
                    fetch.result()
                    profile.result()
                with self.stage(request_id, "preprocess"):
                    work(2)
                with self.stage(request_id, "model.inference", kind=SpanKind.CLIENT) as client:
                    headers: dict[str, str] = {}
                    inject(headers)
                    client.set_attribute("peer.service", "model-server")
                    self.model_server(headers, version, length, fail)
                with self.stage(request_id, "postprocess"):
                    work(1)
                root.set_attribute("http.status_code", 200)
        except RuntimeError as exc:
            error = exc
            with trace.use_span(root, end_on_exit=False):
                self.otel_log.error("request failed: %s", exc, extra={"request.id": request_id})
        self._log_span(
            request_id, root, "request failed" if error else "request completed", None, error
        )

    def fetch_features(self, request_id: str, user_id: int) -> None:
        with self.stage(request_id, "fetch_features", kind=SpanKind.CLIENT):
            self.together.wait()
            headers: dict[str, str] = {}
            inject(headers)
            with self.span(
                "feature-store", "GET /features", kind=SpanKind.SERVER, context=extract(headers)
            ):
                work(1)
                with self.span(
                    "feature-store",
                    "redis GET",
                    kind=SpanKind.CLIENT,
                    attributes={
                        "db.system": "redis",
                        "db.statement": f"GET features:user:{user_id}",
                    },
                ):
                    work(2)

    def profile_lookup(self, request_id: str) -> None:
        with self.stage(request_id, "profile_lookup"):
            self.together.wait()
            work(4)

    def model_server(self, headers: dict[str, str], version: str, length: int, fail: bool) -> None:
        attributes = {
            "model.name": "intent-classifier",
            "model.version": version,
            "input.length": length,
        }
        with self.span(
            "model-server",
            "predict",
            kind=SpanKind.SERVER,
            context=extract(headers),
            attributes=attributes,
        ) as span:
            work(5)
            if fail:
                raise RuntimeError(OOM)
            span.set_attribute("prediction", "billing")
            span.set_attribute("confidence", 0.875)
            span.set_status(Status(StatusCode.OK))

    def close(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()
        self.log_provider.shutdown()
        self.otel_log.removeHandler(self._otel_handler)
        self._console_file.close()
        self.sinks.close()


def span_truth(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
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
        "status_message": span.status.description,
        "attributes": dict(span.attributes or {}),
    }


def write_zipkin(spans: Sequence[ReadableSpan], path: Path) -> None:
    encoder = JsonV2Encoder()
    combined: list[Any] = []
    for service in SERVICES:
        mine = [s for s in spans if s.resource.attributes["service.name"] == service]
        endpoint = NodeEndpoint()
        # NodeEndpoint reads the global provider's service; each service reports its own.
        endpoint.service_name = service
        combined.extend(json.loads(encoder.serialize(mine, endpoint)))
    path.write_text(json.dumps(combined) + "\n", encoding="utf-8")


def write_otlp(spans: Sequence[ReadableSpan], logs: Sequence[Any], path: Path) -> None:
    trace_ids = list(dict.fromkeys(s.get_span_context().trace_id for s in spans))
    lines = [
        MessageToJson(
            encode_spans([s for s in spans if s.get_span_context().trace_id == t]), indent=None
        )
        for t in trace_ids
    ]
    lines.append(MessageToJson(encode_logs(logs), indent=None))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def log_truth(item: Any) -> dict[str, Any]:
    record = item.log_record
    return {
        "time_ns": record.timestamp,
        "level": record.severity_text,
        "message": record.body,
        "trace_id": f"{record.trace_id:032x}" if record.trace_id else None,
        "span_id": f"{record.span_id:016x}" if record.span_id else None,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(out)
    try:
        for request in REQUESTS:
            pipeline.handle(*request)
    finally:
        pipeline.close()
    spans = pipeline.memory.get_finished_spans()
    logs = pipeline.log_memory.get_finished_logs()
    write_zipkin(spans, out / "spans.zipkin.json")
    write_otlp(spans, logs, out / "spans.otlp.jsonl")
    truth = {
        "spans": [span_truth(s) for s in spans],
        "otel_logs": [log_truth(item) for item in logs],
        "log_lines": pipeline.sinks.records,
        "requests": [r[0] for r in REQUESTS],
        "versions": {
            "opentelemetry-sdk": _version("opentelemetry-sdk"),
            "structlog": _version("structlog"),
            "python-json-logger": _version("python-json-logger"),
            "loguru": _version("loguru"),
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return 0


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
