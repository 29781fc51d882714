"""OTLP/JSON value decoding shared by the lenient and fast OTLP paths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import SupportsIndex, SupportsInt, TypedDict

import orjson


def int_or_none(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("boolean where a timestamp was expected")
    return integer(value)


class KeyValue(TypedDict, total=False):
    """One OTLP attribute as JSON: ``{"key": "model.version", "value": {"stringValue": "v2"}}``."""

    key: str
    value: object


#: What ``int()`` takes.
_INT_LIKE = (int, float, str, bytes, bytearray, SupportsInt, SupportsIndex)


def integer(value: object) -> int:
    """``int(value)``, with ValueError (never OverflowError) for an infinite or NaN float: JSON
    numbers such as ``1e400`` parse as infinity, and callers expect ValueError from bad input."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if not isinstance(value, _INT_LIKE):
        # int()'s own words: skip reasons quote them.
        raise TypeError(
            "int() argument must be a string, a bytes-like object or a real number, "
            f"not '{type(value).__name__}'"
        )
    return int(value)


def attributes_of(items: Sequence[KeyValue] | None) -> dict[str, object]:
    if not items:
        return {}
    return {item["key"]: any_value(item.get("value")) for item in items}


def tolerant_attributes(items: Sequence[KeyValue] | None) -> dict[str, object]:
    """``attributes_of``, keeping a value of the wrong type (``{"intValue": "x"}``) as its JSON
    text instead of raising, as the typed path keeps it: for attributes read where no span can
    be skipped for them (a resource, shared by all its spans; a span's attributes shown).
    A malformed list of pairs still raises."""
    if not items:
        return {}
    out: dict[str, object] = {}
    for item in items:
        key, value = item["key"], item.get("value")
        try:
            out[key] = any_value(value)
        except (TypeError, ValueError, AttributeError, KeyError):
            out[key] = orjson.dumps(value).decode()
    return out


def any_value(value: object) -> object:
    """OTLP AnyValue -> plain JSON value (ints may arrive as strings)."""
    if not isinstance(value, dict) or not value:
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return integer(value["intValue"])
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return attributes_of((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


_SEVERITY_BY_NUMBER = (
    (21, "fatal"),
    (17, "error"),
    (13, "warn"),
    (9, "info"),
    (5, "debug"),
    (1, "trace"),
)
_LEVEL_WORDS = {"warning": "warn", "critical": "fatal", "err": "error"}


def level_from_severity_number(number: object) -> str | None:
    """OpenTelemetry SeverityNumber (1..24) -> trace/debug/info/warn/error/fatal."""
    if isinstance(number, bool) or not isinstance(number, _INT_LIKE):
        return None
    try:
        value = int(number)
    except (TypeError, ValueError):
        return None
    return next((name for threshold, name in _SEVERITY_BY_NUMBER if value >= threshold), None)


def canonical_level(level: object) -> str | None:
    """A severity word in the canonical spelling (warning -> warn, critical -> fatal)."""
    if level is None:
        return None
    lowered = str(level).lower()
    return _LEVEL_WORDS.get(lowered, lowered)
