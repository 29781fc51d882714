"""Which keys of a JSON log line feed which canonical log column: the alias tables, ``--field``
and the ``Plan`` that ``log_fields.to_logs`` maps lines by.

A log line arrives here flattened: nested objects become dotted keys (``{"log": {"level": "x"}}``
and ``{"log.level": "x"}`` are both ``log.level``; loguru's bound fields are
``record.extra.request_id``) and every value is text (see ``json_logs``). For each canonical
field the candidate keys (the ``*_KEYS`` tables below, then the same keys under loguru's
``record.extra.``) are tried in order; the first whose value parses wins and is *consumed*. Every
other key, including a candidate whose value did not parse (``"duration_ms": "abc"``: the row
keeps a null duration and the text stays in ``attributes``), goes to ``attributes``: no value is
lost. A time or duration present but unread is counted in ``ReadStats.ignored`` and named in the
row's ``unread_reason``: ``unreadable time``, else ``negative duration`` (text starting as a
negative number) or ``duration not a number``.

- trace_id: 16 or 32 hex digits under a trace-id key (Cloud Logging's ``projects/P/traces/``
  and a ``0x`` prefix removed, lowercased; all zeros is OpenTelemetry's "no trace" and is
  dropped). correlation_id: a request-id key, else the trace id, else a non-hex value under a
  trace-id key, else ECS ``transaction.id``. So a request-id key alone never makes a trace id.
- span_id, parent_span_id: the value without a ``0x`` prefix; all zeros is no id.
- level: normalized to trace/debug/info/warn/error/fatal (``log_values.LEVELS``: warning -> warn,
  critical -> fatal, err -> error, pino and syslog numbers); other words are kept, lowercased.
- message: ``message``, ``msg``, structlog's ``event`` (never a stage), loguru's
  ``record.message`` (loguru's top-level ``text`` is the formatted line and stays an attribute).
- error (never null): the line signals an error when its level is error or fatal, or its error
  field (``ERROR_KEYS``, or the ``--field error=KEY`` key) or an exception field
  (``EXCEPTION_KEYS``, loguru's ``record.exception``) holds a value other than
  ``log_values.NOT_ERRORS`` (``false``, ``null``, ``""``, ``0``, ``ok``, ``none``; any case) or an
  object with such a value (any ``KEY.*`` key), or an HTTP status field (``STATUS_KEYS``) holds
  a number >= 500. These keys are also looked up under loguru's ``record.extra.``.
- error_message: the error field's text (``true`` is no text), else the exception's: a
  traceback's last line (``ValueError: boom``), ``type: message`` of an error object
  (``error.type`` + ``error.message``, loguru's ``record.exception`` type and value), a type
  alone; else, on an error line, the log message. A type stays in ``attributes`` (for ``--by``);
  the key giving the text is consumed. Status fields stay in ``attributes``.
- service: service-name keys only; a logger name (``name``, ``logger``) is not a service.
- duration: each key has a unit (``duration_ms`` ms, ``duration_us`` µs, ``duration_ns`` and ECS
  ``event.duration`` ns, ``elapsed``/``duration``/``duration_s`` seconds, unitless ``dur`` ms);
  text with units overrides it (``"357.8ms"``). loguru's ``record.elapsed`` (time since the
  logger started) is not a duration.

Canonical field names for ``--field FIELD=KEY`` (``ReadOptions.field_map``) are ``FIELD_NAMES``,
and ``llm.NAME`` for the LLM fields of core/llm.py (``llm_overrides``: those keys are not log
columns; they stay in ``attributes``, where the LLM report reads them);
a user key replaces the built-in aliases of that field (a dotted key is a nested path; for
``error`` an object under the key counts, and its ``KEY.message`` and ``KEY.type`` give the
text). ``duration=KEY`` takes its unit from ``KEY:UNIT`` (``took:ms``; an unknown unit is a
usage error, so a key holding a colon needs an explicit unit), else from a unit suffix of the
key (``took_ms``, ``latencyUs``, ``wait_seconds``), else from the built-in alias of that name,
else milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ml_tracelens.core import llm
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.readers.support import log_values as v

#: ``unread_reason`` values: why a time or duration present on a line was not read.
UNREADABLE_TIME = "unreadable time"
DURATION_NOT_A_NUMBER = "duration not a number"
NEGATIVE_DURATION = "negative duration"

#: Canonical log fields a user may map with ``--field FIELD=KEY``.
FIELD_NAMES = (
    "time",
    "level",
    "message",
    "trace_id",
    "span_id",
    "parent_span_id",
    "correlation_id",
    "service",
    "stage",
    "duration",
    "error",
)

#: loguru (serialize=True) keeps bound fields under record.extra.
LOGURU_EXTRA = "record.extra."

TIME_KEYS = (
    "timestamp",
    "@timestamp",
    "time",
    "ts",
    "asctime",
    "datetime",
    "record.time.timestamp",
)
LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "loglevel", "record.level.name")
MESSAGE_KEYS = ("message", "msg", "event", "record.message")
TRACE_KEYS = (
    "trace_id",
    "traceId",
    "traceID",
    "otelTraceID",
    "trace.id",
    "logging.googleapis.com/trace",
)
SPAN_KEYS = (
    "span_id",
    "spanId",
    "spanID",
    "otelSpanID",
    "span.id",
    "logging.googleapis.com/spanId",
)
PARENT_SPAN_KEYS = (
    "parent_span_id",
    "parent_id",
    "parentSpanId",
    "parentSpanID",
    "parent.id",
    "span.parent_id",
)
REQUEST_KEYS = (
    "request_id",
    "requestId",
    "correlation_id",
    "correlationId",
    "req_id",
    "req",
    "req.id",
    "x-request-id",
)
#: Correlation keys used only when no request id and no trace id is present: ECS'
#: transaction.id names one service's transaction, not the whole request.
LAST_RESORT_CORRELATION_KEYS = ("transaction.id",)
SERVICE_KEYS = (
    "service",
    "service.name",
    "service_name",
    "serviceName",
    "otelServiceName",
    "app",
    "application",
)
# structlog's `event` is the message and `name` is usually a logger name: neither is a stage.
STAGE_KEYS = ("stage", "operation", "span_name", "step", "span", "span.name")
#: The error field: its text is the error message.
ERROR_KEYS = (
    "error",
    "error.message",
    "err",
    "err.message",
    "exception",
    "exception.message",
    "exc_info",
)
#: Exception fields: present (and not a "no error" value) means an exception was logged, even
#: when ``--field error=KEY`` replaces the error field's aliases. ``error.stack_trace`` is ECS'.
EXCEPTION_KEYS = ("exc_info", "exception", "exc_text", "stack_trace", "error.stack_trace")
#: HTTP status fields: a server error (>= 500) is an error line.
STATUS_KEYS = ("status_code", "http.status_code", "http.response.status_code")
DURATION_KEYS = (
    ("duration_ms", v.MS),
    ("latency_ms", v.MS),
    ("elapsed_ms", v.MS),
    ("took_ms", v.MS),
    ("time_ms", v.MS),
    ("durationMs", v.MS),
    ("latencyMs", v.MS),
    ("elapsedMs", v.MS),
    ("responseTime", v.MS),  # pino-http
    ("duration_us", v.US),
    ("latency_us", v.US),
    ("elapsed_us", v.US),
    ("duration_ns", v.NS),
    ("latency_ns", v.NS),
    ("elapsed_ns", v.NS),
    ("event.duration", v.NS),  # ECS
    ("duration_s", v.S),
    ("duration_seconds", v.S),
    ("latency_s", v.S),
    ("elapsed_s", v.S),
    ("elapsed", v.S),  # loguru's record.elapsed is a different key: time since start
    ("duration", v.S),
    ("dur", v.MS),
)
_LOGURU_EXCEPTION = "record.exception"

# A unit after a separator in any case (took_ms, TOOK-MS), or camelCase (tookMs, waitSeconds).
_SUFFIX_UNITS = tuple(
    (re.compile(rf"(?i:[_.\-](?:{words}))$|[a-z0-9](?:{camel})$"), unit)
    for words, camel, unit in (
        ("ms|millis|milliseconds", "Ms|Millis|Milliseconds", v.MS),
        ("us|µs|micros|microseconds", "Us|Micros|Microseconds", v.US),
        ("ns|nanos|nanoseconds", "Ns|Nanos|Nanoseconds", v.NS),
        ("s|sec|secs|seconds", "S|Sec|Secs|Seconds", v.S),
    )
)


@dataclass(frozen=True)
class Candidate:
    key: str  # flattened key
    parse: str  # how to read it (see _parse)
    unit_ns: int = v.MS  # durations only
    #: errors only: the key of the error's type, written before the text (``ValueError: boom``)
    type_key: str | None = None
    #: whether the key leaves ``attributes`` when its value is taken
    consumed: bool = True


@dataclass(frozen=True)
class Plan:
    """What to look for in a block's keys, made once per parse from ``--field``."""

    #: canonical field -> candidate keys in priority order
    fields: Mapping[str, tuple[Candidate, ...]]
    #: keys whose value (or object under them) signals an error: error and exception fields
    error_keys: frozenset[str]
    #: keys holding an HTTP status
    status_keys: tuple[str, ...]
    #: --field name -> the flattened key it names (without a duration's :UNIT)
    user_keys: Mapping[str, str]


def validate_field_map(field_map: Mapping[str, str]) -> dict[str, str]:
    """Check ``--field`` names and duration units; raise UsageError naming the bad one and the
    valid ones."""
    llm_overrides(field_map)
    for name, key in field_map.items():
        if name.startswith(llm.FIELD_PREFIX):
            continue
        if name not in FIELD_NAMES:
            raise UsageError(
                f"{name}={key}: unknown log field {quoted(name)}; known fields: {', '.join(FIELD_NAMES)}"
                f" and the LLM fields llm.{', llm.'.join(llm.FIELD_NAMES)}",
                option="fields",
            )
        if not key:
            raise UsageError(f"{name}= needs a key name", option="fields")
        if name == "duration":
            duration_unit(key)
    return dict(field_map)


def llm_overrides(field_map: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    """``--field llm.NAME=KEY`` options -> {canonical LLM column: (key, ns per unit)}: the key
    replaces the built-in aliases of that field (core/llm.py). Times take their unit as a
    ``duration=`` key does (``first_token:ms``, a suffix such as ``_ms``, else ms)."""
    out: dict[str, tuple[str, int]] = {}
    for name, key in field_map.items():
        if not name.startswith(llm.FIELD_PREFIX):
            continue
        column = llm.FIELD_NAMES.get(name.removeprefix(llm.FIELD_PREFIX))
        if column is None:
            raise UsageError(
                f"{name}={key}: unknown LLM field; known: llm.{', llm.'.join(llm.FIELD_NAMES)}",
                option="fields",
            )
        if not key:
            raise UsageError(f"{name}= needs a key name", option="fields")
        out[column] = duration_unit(key) if column in llm.TIME_FIELDS else (key, 0)
    return out


def duration_unit(key: str) -> tuple[str, int]:
    """A user's duration key -> (key, unit in ns), per the rules in the module docstring."""
    base, _, unit = key.rpartition(":")
    if base:
        if unit in v.UNITS:
            return base, v.UNITS[unit]
        # Taking "took:minutes" as a key no line has would only show as missing durations.
        raise UsageError(
            f"duration={key}: unknown unit {quoted(unit)}; units: {', '.join(v.UNITS)} "
            f"(a key holding a colon needs one: --field duration={key}:ms)",
            option="fields",
        )
    for pattern, unit_ns in _SUFFIX_UNITS:
        if pattern.search(key):
            return key, unit_ns
    return key, dict(DURATION_KEYS).get(key, v.MS)


def _with_extra(names: tuple[str, ...]) -> tuple[str, ...]:
    return (*names, *(LOGURU_EXTRA + k for k in names))


def _error_candidates(keys: tuple[str, ...]) -> list[Candidate]:
    """Text candidates for error and exception keys: ``X.message`` takes ``X.type`` before it."""
    found = []
    for key in keys:
        prefix = key.removesuffix(".message")
        found.append(Candidate(key, "error", type_key=prefix + ".type" if prefix != key else None))
    return found


def unfound_field_warnings(
    plan_: Plan, field_map: Mapping[str, str], found: set[str] | frozenset[str]
) -> list[str]:
    """A sentence per ``--field`` key of ``plan_`` that is not among the ``found`` keys."""
    return [
        f'--field {name}={field_map[name]}: no line has the key "{key}"'
        for name, key in plan_.user_keys.items()
        if key not in found
    ]


def plan(field_map: Mapping[str, str]) -> Plan:
    """Candidate keys per canonical field, and the keys that signal an error."""

    def keys(names: tuple[str, ...], parse: str, extra: bool = True) -> list[Candidate]:
        return [Candidate(k, parse) for k in (_with_extra(names) if extra else names)]

    field_map = validate_field_map(field_map)
    durations = [Candidate(k, "duration", unit) for k, unit in DURATION_KEYS]
    durations += [Candidate(LOGURU_EXTRA + k, "duration", unit) for k, unit in DURATION_KEYS]
    fields: dict[str, list[Candidate]] = {
        "time": keys(TIME_KEYS, "time", extra=False),
        "level": keys(LEVEL_KEYS, "level", extra=False),
        "message": keys(MESSAGE_KEYS, "message", extra=False),
        "trace_id": keys(TRACE_KEYS, "trace"),
        "span_id": keys(SPAN_KEYS, "span"),
        "parent_span_id": keys(PARENT_SPAN_KEYS, "span"),
        "correlation_id": keys(REQUEST_KEYS, "text"),
        "service": keys(SERVICE_KEYS, "text"),
        "stage": keys(STAGE_KEYS, "text"),
        "duration": durations,
    }
    user_keys: dict[str, str] = {}
    for name, key in field_map.items():
        if name.startswith(llm.FIELD_PREFIX):
            continue  # not a log column: the key stays in attributes for core/llm.py
        if name == "duration":
            key, unit = duration_unit(key)
            fields[name] = [Candidate(key, "duration", unit)]
        elif name != "error":
            fields[name] = [Candidate(key, fields[name][0].parse)]
        user_keys[name] = key
    # The error field (the user's key, which may hold an object, or the aliases), then the
    # exception fields, then an error type alone (left in attributes: it is what --by wants).
    if "error" in field_map:
        error_field: tuple[str, ...] = (field_map["error"],)
        error_texts: tuple[str, ...] = (field_map["error"], field_map["error"] + ".message")
    else:
        error_field = error_texts = _with_extra(ERROR_KEYS)
    errors = [
        *_error_candidates(error_texts),
        *_error_candidates(_with_extra((*EXCEPTION_KEYS, "exception.message"))),
        Candidate(f"{_LOGURU_EXCEPTION}.value", "error", type_key=f"{_LOGURU_EXCEPTION}.type"),
    ]
    errors += [Candidate(c.type_key, "error", consumed=False) for c in errors if c.type_key]
    fields["error"] = []
    for candidate in errors:
        if all(c.key != candidate.key for c in fields["error"]):
            fields["error"].append(candidate)
    error_keys = frozenset((*error_field, *_with_extra(EXCEPTION_KEYS), _LOGURU_EXCEPTION))
    # A value under a trace-id key that is not a hex trace id still correlates the request's
    # lines: it is the correlation id when no request-id key is present.
    fields["correlation_id"] += [Candidate(c.key, "non_hex_trace") for c in fields["trace_id"]]
    if "correlation_id" not in field_map:
        fields["correlation_id"] += [
            Candidate(k, "last_resort") for k in LAST_RESORT_CORRELATION_KEYS
        ]
    return Plan(
        fields={name: tuple(found) for name, found in fields.items()},
        error_keys=error_keys,
        status_keys=_with_extra(STATUS_KEYS),
        user_keys=user_keys,
    )
