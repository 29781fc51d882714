"""The explicit registry of format readers, in detection order.

The reader modules are imported on the first use of ``registry`` or ``detect``, not with this
package: every layer imports ``readers.base`` (the shared types), and a command served from the
cache should not pay 0.1 s to import every format's parser.
"""

from __future__ import annotations

from functools import cache

from ml_tracelens.readers.base import ReaderSpec


@cache
def registry() -> dict[str, ReaderSpec]:
    """Every reader by its ``--input-format`` name, in detection order."""
    from ml_tracelens.readers import (
        jaeger_json,
        json_logs,
        otel_console,
        otlp_json,
        parquet,
        zipkin_json,
    )

    # One module per format, each exposing READER. Add new readers here.
    modules = (otlp_json, parquet, jaeger_json, zipkin_json, otel_console, json_logs)
    return {
        spec.name: spec for spec in sorted((m.READER for m in modules), key=lambda s: s.priority)
    }


def detect(head: bytes) -> ReaderSpec | None:
    """The first reader, by priority, whose sniffer claims these leading bytes."""
    for spec in registry().values():
        if spec.sniff(head):
            return spec
    return None
