"""The canonical span and log tables every reader produces and every report consumes.

Units are in the column names. Times are Int64 nanoseconds since the Unix epoch and never pass
through a float. A span's attributes (resource and span attributes, full dotted keys) are JSON
text in two columns: ``attributes`` (always) and ``resource`` (null unless a reader keeps the
resource's attributes apart; a key in both: ``attributes`` wins). The OTLP fast path does, and
makes ``resource`` a Categorical: the same few hundred bytes of resource attributes repeat on
every span of a process, and as one dictionary entry per distinct resource they cost 4 bytes a
span instead (half the table of a Collector dump). Both are in one of two forms: a flat object
(``{"model.version": "v2"}``, what most readers write) or an OTLP KeyValue list
(``[{"key": "model.version", "value": {"stringValue": "v2"}}]``, which the OTLP reader keeps as it
comes to avoid per-attribute work on million-span dumps). Read them only through ``attribute``,
``with_attribute_columns`` or ``attributes_dict``, which accept both forms and both columns.
The table stays flat: Parquet-friendly, concatenating across readers without unification.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
import polars as pl
from polars.datatypes import DataTypeClass

#: The range of the tables' Int64 columns: as times, 1677-09-21 to 2262-04-11.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KINDS = ("server", "client", "internal", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
Kind = pl.Enum(KINDS)
Status = pl.Enum(STATUSES)

#: Classes (pl.String) and instances (pl.Enum(...)) mixed: annotated, or mypy infers object.
_SPAN_TYPES: dict[str, pl.DataType | DataTypeClass] = {
    "trace_id": pl.String,
    "span_id": pl.String,
    "parent_id": pl.String,  # null for a root; first CHILD_OF reference only
    "service": pl.String,
    "name": pl.String,  # the stage
    "kind": Kind,
    "start_ns": pl.Int64,
    "end_ns": pl.Int64,
    "duration_ns": pl.Int64,
    "status": Status,
    "status_message": pl.String,
    "attributes": pl.String,  # JSON: the span's attributes (object or OTLP list)
    "resource": pl.Categorical(),  # JSON: resource attributes kept apart, else null
    "events": pl.String,  # JSON list of {name, time_ns, attributes}, null when none
    "links": pl.String,  # JSON list of {trace_id, span_id, type}, null when none
    # file:line or file#index, for messages. Text, not Categorical: a log line is a span, so a
    # log dump has a distinct value per span, and a Categorical's dictionary of a million of them
    # would never be freed (140 MB and 0.3 s on 1M lines)
    "source": pl.String,
}
SPAN_SCHEMA = pl.Schema(_SPAN_TYPES)

LOG_SCHEMA = pl.Schema(
    {
        "time_ns": pl.Int64,
        "level": pl.String,  # trace, debug, info, warn, error, fatal (or the source's own word)
        "message": pl.String,
        "trace_id": pl.String,
        "span_id": pl.String,
        "parent_span_id": pl.String,  # the span the line's span hangs under, when logged
        "correlation_id": pl.String,  # request id; equals trace_id when only a trace id is known
        "service": pl.String,
        "stage": pl.String,
        "duration_ns": pl.Int64,
        # error field, else exception type and message, else (on an error line) the message
        "error_message": pl.String,
        "error": pl.Boolean,  # never null: the line signals an error (level, fields; see readers)
        "attributes": pl.String,  # JSON object of the remaining fields
        # why a time or duration present on the line was not read, else null:
        # "unreadable time", "duration not a number", "negative duration"
        "unread_reason": pl.String,
        "source": pl.String,
    }
)

#: Column sets for readers: formats that give an end time, or a duration, but not both. Their
#: per-span Python lists hold resource attributes in ``attributes``: ``resource`` stays null.
SPAN_COLUMNS_WITH_END = tuple(c for c in SPAN_SCHEMA if c not in ("duration_ns", "resource"))
SPAN_COLUMNS_WITH_DURATION = tuple(c for c in SPAN_SCHEMA if c not in ("end_ns", "resource"))
#: What OpenTelemetry log records carry: no stage, duration or parent span of their own, and
#: nothing left unread; ``error`` is filled from the level by ``normalize_logs``.
OTEL_LOG_COLUMNS = tuple(
    c
    for c in LOG_SCHEMA
    if c not in ("stage", "duration_ns", "parent_span_id", "error", "unread_reason")
)

LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
ERROR_LEVELS = ("error", "fatal")


def empty_spans() -> pl.DataFrame:
    return pl.DataFrame(schema=SPAN_SCHEMA)


def empty_logs() -> pl.DataFrame:
    return pl.DataFrame(schema=LOG_SCHEMA)


def spans_from_columns(columns: Mapping[str, Sequence[object]]) -> pl.DataFrame:
    """Build a canonical span frame from per-column Python lists (missing columns are null).

    Readers collect plain lists while parsing and call this once per file or chunk; ids and
    durations are normalized here so every reader agrees.
    """
    return normalize_spans(_frame(columns, SPAN_SCHEMA))


def logs_from_columns(columns: Mapping[str, Sequence[object]]) -> pl.DataFrame:
    return normalize_logs(_frame(columns, LOG_SCHEMA))


def _frame(columns: Mapping[str, Sequence[Any]], schema: pl.Schema) -> pl.DataFrame:
    unknown = set(columns) - set(schema)
    if unknown:
        raise ValueError(f"not canonical columns: {sorted(unknown)}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {lengths}")
    height = lengths.pop() if lengths else 0
    series = []
    for name, dtype in schema.items():
        values = columns.get(name)
        if values is None:
            series.append(pl.Series(name, [None] * height, dtype=dtype))
        elif dtype in (Kind, Status):
            # Strings first: an Enum cast of an unknown value must fail loudly, not become null.
            series.append(pl.Series(name, values, dtype=pl.String).cast(dtype))
        else:
            series.append(pl.Series(name, values, dtype=dtype, strict=False))
    return pl.DataFrame(series)


def normalize_id(column: str) -> pl.Expr:
    """Lowercase hex ids, left-padded to 16 or 32 digits (32 with a zero high half -> 16);
    non-hex ids are kept as they are.

    Jaeger and Zipkin drop leading zeros that OTLP keeps, so padding makes the same trace
    compare equal across formats. Empty strings become null (OTLP writes "" for no parent).
    """
    original = pl.col(column)
    lowered = original.str.to_lowercase()
    length = lowered.str.len_bytes()
    is_hex = lowered.str.contains(r"^[0-9a-f]+$")
    return (
        pl.when(length == 0)
        .then(None)
        .when(~is_hex)
        .then(original)
        .when(length < 16)
        .then(lowered.str.pad_start(16, "0"))
        .when((length > 16) & (length < 32))
        .then(lowered.str.pad_start(32, "0"))
        # A 128-bit id whose high half is zero is the 64-bit id Jaeger and Zipkin write
        # (Zipkin's normalizeTraceId does the same), so both spellings meet.
        .when((length == 32) & lowered.str.starts_with("0000000000000000"))
        .then(lowered.str.slice(16))
        .otherwise(lowered)
        .alias(column)
    )


def _ids_to_normalize(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """The id columns holding any id ``normalize_id`` would change. Checking costs a third of
    normalising (115 against 366 ms for three columns of 1M OTLP ids) and OTLP ids are
    canonical already, so most of the time nothing is left to do."""
    if frame.is_empty() or not columns:
        return []
    changes = frame.select((~_is_canonical_id(c)).any() for c in columns).row(0)
    return [c for c, change in zip(columns, changes, strict=True) if change]


def _is_canonical_id(column: str) -> pl.Expr:
    """Null, or lowercase hex of 16 digits or of 32 with a non-zero high half."""
    value = pl.col(column)
    length = value.str.len_bytes()
    sized = (length == 16) | ((length == 32) & ~value.str.starts_with("0" * 16))
    return value.is_null() | (sized & ~value.str.contains("[^0-9a-f]"))


def since_epoch(time_ns: pl.Expr) -> pl.Expr:
    """A time with instants before the epoch made null (unknown).

    No telemetry format means them (OTLP times are unsigned), and with both ends non-negative
    ``end - start`` cannot overflow Int64 anywhere downstream. Instants beyond Int64 (past
    2262, e.g. year 9999 in ns) already arrive as null from the readers' non-strict casts.
    """
    return pl.when(time_ns >= 0).then(time_ns)


def normalize_spans(spans: pl.DataFrame) -> pl.DataFrame:
    start = since_epoch(pl.col("start_ns"))
    end = since_epoch(pl.col("end_ns"))
    # start + duration is added in 128 bits: a sum past Int64 becomes null, not a wrapped value.
    derived_end = since_epoch(
        (start.cast(pl.Int128) + pl.col("duration_ns").cast(pl.Int128)).cast(pl.Int64, strict=False)
    )
    return spans.with_columns(
        *(normalize_id(c) for c in _ids_to_normalize(spans, ("trace_id", "span_id", "parent_id"))),
        start_ns=start,
        # Derive whichever of end/duration a format leaves out; both given wins as written.
        end_ns=pl.coalesce(end, derived_end),
        duration_ns=pl.coalesce(pl.col("duration_ns"), end - start),
        status=pl.col("status").fill_null("unset"),
        attributes=pl.col("attributes").fill_null("{}"),
    )


def normalize_logs(logs: pl.DataFrame, canonical_ids: Collection[str] = ()) -> pl.DataFrame:
    """Ids as ``normalize_id`` makes them, levels lowercased, and ``error`` never null: a reader
    that does not decide it (OTLP log records) gets ``level_is_error``. ``canonical_ids``: id
    columns the reader has checked already (every value one ``normalize_id`` keeps)."""
    ids = [c for c in ("trace_id", "span_id", "parent_span_id") if c not in canonical_ids]
    return logs.with_columns(
        *(normalize_id(c) for c in _ids_to_normalize(logs, ids)),
        pl.col("level").str.to_lowercase(),
        error=pl.col("error").fill_null(level_is_error()),
        attributes=pl.col("attributes").fill_null("{}"),
    )


def level_is_error() -> pl.Expr:
    """Whether a log row's level is an error level (``ERROR_LEVELS``); False when it has none."""
    return pl.col("level").str.to_lowercase().is_in(ERROR_LEVELS).fill_null(False)


def validate(frame: pl.DataFrame, schema: pl.Schema) -> None:
    """Raise if a reader produced a frame that is not exactly the canonical schema."""
    if frame.schema != schema:
        got = dict(frame.schema)
        want = dict(schema)
        diff = {
            k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)
        }
        raise TypeError(f"frame does not match the canonical schema: {diff}")


def attribute(key: str, column: str = "attributes") -> pl.Expr:
    """The value of one attribute in the JSON text of ``column`` (null where absent), from
    either form. For the value on a span, span attributes before resource ones, use
    ``with_attribute_columns``.

    Evaluates on every row; over large frames prefer ``with_attribute_columns``, which only
    looks at rows that mention the key.
    """
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    text = pl.col(column)
    as_list = text.str.json_path_match(f"$[?(@.key=='{quoted}')].value.*")
    as_object = text.str.json_path_match(f"$['{quoted}']")
    return pl.when(text.str.starts_with("[")).then(as_list).otherwise(as_object)


def with_attribute_columns(frame: pl.DataFrame, columns: Mapping[str, str]) -> pl.DataFrame:
    """Add one text column per ``{name: attribute key}``, evaluating JSON only where needed.

    A key missing from a span's ``attributes`` is looked up in its ``resource`` (when the frame
    has that column), once per distinct resource.
    """
    if not columns:
        return frame
    indexed = frame.with_row_index("_attr_row")
    resources = distinct_resources(frame)
    for name, key in columns.items():
        needle = orjson.dumps(key).decode()
        mentions = pl.col("attributes").str.contains(needle, literal=True)
        values = indexed.filter(mentions).select("_attr_row", attribute(key).alias(name))
        indexed = indexed.join(values, on="_attr_row", how="left", maintain_order="left")
        if resources is None:
            continue
        held = resources.filter(pl.col("_text").str.contains(needle, literal=True))
        held = held.select("resource", _resource_value=attribute(key, "_text"))
        if held.height:
            indexed = (
                indexed.join(held, on="resource", how="left", maintain_order="left")
                .with_columns(pl.coalesce(name, "_resource_value").alias(name))
                .drop("_resource_value")
            )
    return indexed.drop("_attr_row")


def distinct_resources(frame: pl.DataFrame) -> pl.DataFrame | None:
    """(resource, _text) for each distinct non-null resource of ``frame``; None when none."""
    if "resource" not in frame.columns:
        return None
    distinct = frame.select(pl.col("resource").unique().drop_nulls())
    if distinct.is_empty():
        return None
    return distinct.with_columns(_text=pl.col("resource").cast(pl.String))


def attributes_dict(text: str | None, resource: str | None = None) -> dict[str, object]:
    """Python dict of a span's attributes from its ``attributes`` and ``resource`` cells (span
    attributes win), whichever form each is in (for per-row views).

    Raises ValueError for text nested deeper than ``limits.py`` allows: the OTLP fast path keeps
    attribute values as raw JSON text, and this is where they are first parsed in Python.
    """
    if resource:
        return {**attributes_dict(resource), **attributes_dict(text)}
    if not text:
        return {}
    from ml_tracelens import limits

    depth = limits.current().max_json_depth
    data = text.encode()
    if limits.too_deep(data, depth):
        raise ValueError(limits.depth_reason(depth))
    value = orjson.loads(data)
    if isinstance(value, dict):
        return value
    from ml_tracelens.otlp_values import tolerant_attributes

    return tolerant_attributes(value)
