"""What an input is when no reader claims it, so the message can say so.

Profilers write trace files too: Chrome's trace-event JSON (``{"traceEvents": [...]}`` or a bare
array of events with ``ph`` and ``ts``), which Perfetto's UI and the PyTorch profiler (Kineto)
also write. They time threads and kernels, not requests, and tracelens does not read them; a
user who hands one over is told that, not "unknown format". Any other JSON is named by the keys
it holds, so a wrong file (a ``package.json``) is recognised for what it is.
"""

from __future__ import annotations

import re

import orjson

#: Keys seen in the first bytes of a Chrome trace-event file (object or array form).
_TRACE_EVENTS = re.compile(rb'^\s*(?:\{[^{]*"traceEvents"\s*:|\[\s*\{[^{}]*"ph"\s*:)')
_KINETO = re.compile(rb'"(?:schemaVersion|deviceProperties|distributedInfo)"\s*:')
_KEY_LINE = re.compile(rb'^([ \t]*)"((?:[^"\\]|\\.){1,80})"\s*:', re.MULTILINE)
#: How many keys a message lists.
KEYS_SHOWN = 12

NO_TELEMETRY = "no telemetry recognised"
#: Magic bytes of the compressed and archive formats people hand over instead of gzip.
_COMPRESSED = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x89LZO", "lzop"),
    (b"PK\x03\x04", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)
SUPPORTED = "OTLP/JSON, Jaeger, Zipkin v2, the OpenTelemetry console exporter and JSON-lines logs"


def compressed(head: bytes) -> str | None:
    """What a compressed input that is not gzip says for itself: gzip is read while streaming,
    the others have to be decompressed first."""
    for magic, name in _COMPRESSED:
        if head.startswith(magic):
            verb = "extract it" if name in ("zip", "7z") else "decompress it"
            return f"compressed with {name}: {verb} first (or: tracelens reads .gz)"
    return None


def trace_events(head: bytes) -> str | None:
    """A phrase naming a Chrome trace-event profile, when ``head`` begins one."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    if not _TRACE_EVENTS.search(text):
        return None
    writer = "the PyTorch profiler (Kineto)" if _KINETO.search(text) else "Chrome or Perfetto"
    return f"a trace-event profile as {writer} writes it, which tracelens does not read"


def describe(head: bytes) -> str | None:
    """A phrase naming what ``head`` (the first bytes of an input) is, if it can be told."""
    named = compressed(head) or trace_events(head)
    if named:
        return named
    keys = json_keys(head.removeprefix(b"\xef\xbb\xbf"))
    if keys is not None:
        return f"{NO_TELEMETRY} (keys seen: {_listed(keys)})"
    return None


def json_keys(text: bytes) -> list[str] | None:
    """The top-level keys of a JSON object document (None when ``text`` is no object).

    A document cut short by the sniffing window is not parseable: its keys are then read from
    the lines that open with a key, which is what a pretty-printed object looks like.
    """
    stripped = text.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        lines = _KEY_LINE.findall(stripped)
        if not lines:
            return None
        outermost = min(len(indent) for indent, _ in lines)
        found = [k.decode("utf-8", "replace") for indent, k in lines if len(indent) == outermost]
        return list(dict.fromkeys(found))
    return list(value) if isinstance(value, dict) else None


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > KEYS_SHOWN else "")
