"""The explicit registry of format readers, in detection order."""

from __future__ import annotations

from ml_tracelens.readers import (
    jaeger_json,
    json_logs,
    otel_console,
    otlp_json,
    parquet,
    zipkin_json,
)
from ml_tracelens.readers.base import ReaderSpec

# One module per format, each exposing READER. Add new readers here.
_MODULES = (otlp_json, parquet, jaeger_json, zipkin_json, otel_console, json_logs)

READERS: dict[str, ReaderSpec] = {
    spec.name: spec for spec in sorted((m.READER for m in _MODULES), key=lambda s: s.priority)
}


def detect(head: bytes) -> ReaderSpec | None:
    """The first reader, by priority, whose sniffer claims these leading bytes."""
    for spec in READERS.values():
        if spec.sniff(head):
            return spec
    return None
