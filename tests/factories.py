"""Build canonical span frames for tests from compact rows or the notation of algorithms.md.

    make_spans([("A", None, 0, 100), ("B", "A", 10, 60, {"status": "error"})])
    parse_spans("A[0,100]; B[10,60](A){status=error, service=api}; U[?,?](A)")

Both return a frame with exactly ``SPAN_SCHEMA`` (ids are kept as written, not normalized, so
tests read naturally). Defaults: trace id "t1", name = span id, service "svc", status "unset",
duration = end - start, attributes "{}", source "test:<row>". Times are multiplied by
``scale`` (e.g. ``scale=1_000_000`` to write milliseconds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from ml_tracelens.schema import SPAN_SCHEMA

Row = tuple[Any, ...] | Mapping[str, Any]

#: short names accepted in row mappings and ``{...}`` attributes of the notation
ALIASES = {
    "id": "span_id",
    "parent": "parent_id",
    "trace": "trace_id",
    "start": "start_ns",
    "end": "end_ns",
    "duration": "duration_ns",
    "message": "status_message",
}


def make_spans(
    rows: Iterable[Row],
    *,
    trace_id: str = "t1",
    service: str = "svc",
    status: str = "unset",
    kind: str | None = None,
    scale: int = 1,
    **defaults: Any,
) -> pl.DataFrame:
    """A canonical span frame from ``(span_id, parent_id, start, end[, {column: value}])`` rows.

    Rows may also be mappings of column names (or the ``ALIASES``). ``defaults`` sets any other
    column for every row (e.g. ``source="x.json:1"``); per-row values win.
    """
    records = []
    for index, row in enumerate(rows):
        record: dict[str, Any] = {
            "trace_id": trace_id,
            "service": service,
            "status": status,
            "kind": kind,
            **{ALIASES.get(k, k): v for k, v in defaults.items()},
        }
        if isinstance(row, Mapping):
            fields = dict(row)
        else:
            span_id, parent_id, start, end, *extra = row
            fields = {"span_id": span_id, "parent_id": parent_id, "start_ns": start, "end_ns": end}
            if extra:
                fields.update(extra[0])
        record.update({ALIASES.get(k, k): v for k, v in fields.items()})
        record.setdefault("name", record.get("span_id"))
        record.setdefault("source", f"test:{index + 1}")
        for column in ("start_ns", "end_ns", "duration_ns"):
            if record.get(column) is not None:
                record[column] = int(record[column]) * scale
        if "duration_ns" not in record and None not in (
            record.get("start_ns"),
            record.get("end_ns"),
        ):
            record["duration_ns"] = record["end_ns"] - record["start_ns"]
        if isinstance(record.get("attributes"), Mapping):
            record["attributes"] = json.dumps(record["attributes"])
        record.setdefault("attributes", "{}")
        unknown = set(record) - set(SPAN_SCHEMA)
        if unknown:
            raise ValueError(f"not canonical columns: {sorted(unknown)}")
        records.append(record)
    columns = {
        name: pl.Series(name, [r.get(name) for r in records], dtype=pl.String).cast(dtype)
        if dtype in (SPAN_SCHEMA["kind"], SPAN_SCHEMA["status"])
        else pl.Series(name, [r.get(name) for r in records], dtype=dtype)
        for name, dtype in SPAN_SCHEMA.items()
    }
    return pl.DataFrame(columns)


_ITEM = re.compile(
    r"""^\s*(?P<id>[^\s\[\](){};]+)\s*
    \[\s*(?P<start>[-+\d?]*)\s*,\s*(?P<end>[-+\d?]*)\s*\]\s*
    (?:\(\s*(?P<parent>[^\s()]+)\s*\))?\s*
    (?:\{(?P<attrs>[^}]*)\})?\s*$""",
    re.VERBOSE,
)


def parse_spans(text: str, *, trace_id: str = "t1", **defaults: Any) -> pl.DataFrame:
    """Spans written as in algorithms.md: ``A[0,100]; B[10,60](A); C[20,30](B)``.

    Items are separated by ``;`` or newlines. ``?`` (or nothing) for a time means unknown.
    ``{key=value, ...}`` after an item sets columns (aliases allowed): status, service, name,
    kind, trace, duration... Other keyword arguments are passed on to ``make_spans``.
    """
    rows = []
    for item in re.split(r"[;\n]", text):
        if not item.strip():
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"cannot parse span {item.strip()!r}; expected ID[start,end](PARENT)")
        extra: dict[str, Any] = {}
        for pair in (match["attrs"] or "").split(","):
            if pair.strip():
                key, _, value = pair.partition("=")
                extra[key.strip()] = value.strip()
        rows.append(
            (match["id"], match["parent"], _time(match["start"]), _time(match["end"]), extra)
        )
    return make_spans(rows, trace_id=trace_id, **defaults)


def _time(text: str) -> int | None:
    return None if text in ("", "?") else int(text)


def by_span(frame: pl.DataFrame, column: str = "cp_ns") -> dict[str, int | None]:
    """``{span_id: value}`` of one result column, for compact assertions."""
    return dict(zip(frame.get_column("span_id"), frame.get_column(column), strict=True))
