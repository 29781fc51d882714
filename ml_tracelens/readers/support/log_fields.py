"""The mapping of JSON log lines onto the canonical log table: flattened text columns (one per
key, see ``json_logs``) -> ``LOG_SCHEMA`` rows, by the ``Plan`` of ``log_aliases`` (which keys
feed which column, and the rules for their values; documented there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import orjson
import polars as pl
from polars.datatypes import DataTypeClass

from ml_tracelens.readers.support import log_values as v
from ml_tracelens.readers.support.log_aliases import (
    DURATION_NOT_A_NUMBER,
    NEGATIVE_DURATION,
    UNREADABLE_TIME,
    Candidate,
    Plan,
)
from ml_tracelens.schema import ERROR_LEVELS, LOG_SCHEMA, normalize_logs

#: The raw frames' column of line numbers. No data column can take this name: data columns are
#: named by ``column_name``, which never leaves a NUL in a name.
LINE = "\x00line"


def column_name(path: Sequence[str]) -> str:
    """The column of a flattened key: its dotted path, a NUL in it spelled ``\\u0000`` (as
    JSON writes it), so a key can never be mistaken for the line column."""
    name = ".".join(path)
    return name.replace("\x00", "\\u0000") if "\x00" in name else name


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _parse(
    frame: pl.LazyFrame,
    candidate: Candidate,
    internal: Mapping[str, str],
    raw: pl.DataFrame,
    out: str,
    canonical: Mapping[tuple[str, str], bool],
) -> pl.LazyFrame:
    """Add column ``out``: the candidate's value parsed, null where it does not parse.

    ``canonical``: the results of ``_column_checks``; a column that passes one is parsed by a
    cheaper expression giving the same values.
    """
    source = internal[candidate.key]
    text = pl.col(source)

    def holds(test: Callable[[pl.Expr], pl.Expr]) -> bool:
        return canonical.get((source, test.__name__), False)

    match candidate.parse:
        case "time":
            if holds(v.utc_layout):
                return v.parse_utc_layout(frame, source, out)
            return v.parse_time(frame, source, out)
        case "duration":
            # Unit text is rare in bulk: skip its (costly) expressions when no value has letters.
            column = raw.get_column(source)
            units = bool(column.str.contains(r"[^0-9. ]").any())
            compound = units and bool(column.str.contains(r"[a-zA-Zµμ][0-9.]").any())
            return v.parse_duration(
                frame, source, out, candidate.unit_ns, units=units, compound=compound
            )
        case "level":
            expr = text if holds(v.canonical_levels) else v.normalize_level(text)
        case "message":
            expr = text
        case "trace":
            expr = text if holds(v.canonical_trace_ids) else v.hex_trace_id(text)
        case "non_hex_trace":
            all_hex = holds(v.canonical_trace_ids)
            expr = pl.lit(None, dtype=pl.String) if all_hex else v.non_hex_trace_id(text)
        case "span":
            expr = text if holds(v.canonical_span_ids) else v.span_id(text)
        case "error":
            expr = v.error_text(text)
            if candidate.type_key is not None and candidate.type_key in internal:
                expr = v.typed_error(expr, pl.col(internal[candidate.type_key]))
        case _:
            expr = v.plain_text(text)
    return frame.with_columns(expr.alias(out))


#: The id fields of a log row, which ``normalize_logs`` normalizes unless they are checked here.
_ID_FIELDS = ("trace_id", "span_id", "parent_span_id")
#: Whole-column checks by parse kind: a column passing one skips that parse's per-row rules.
_COLUMN_CHECKS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "time": v.utc_layout,
    "level": v.canonical_levels,
    "trace": v.canonical_trace_ids,
    "non_hex_trace": v.canonical_trace_ids,
    "span": v.canonical_span_ids,
}


def _column_checks(
    raw: pl.DataFrame, plan_: Plan, internal: Mapping[str, str]
) -> dict[tuple[str, str], bool]:
    """(column, check name) -> whether the column passes, for the checks its candidates have;
    all in one query, so polars runs them side by side."""
    wanted: dict[tuple[str, str], pl.Expr] = {}
    for candidates in plan_.fields.values():
        for candidate in candidates:
            test = _COLUMN_CHECKS.get(candidate.parse)
            if test is not None and candidate.key in internal:
                source = internal[candidate.key]
                wanted[(source, test.__name__)] = test(pl.col(source))
    if not wanted:
        return {}
    passed = raw.select(expr.alias(f"\x00{i}") for i, expr in enumerate(wanted.values())).row(0)
    return {key: bool(ok) for key, ok in zip(wanted, passed, strict=True)}


#: The per-row flags ``map_logs`` returns, and how ``to_logs`` counts them.
UNREAD_COUNTS = {
    "time": "unreadable time values (kept in attributes)",
    "duration": "unreadable duration values (kept in attributes)",
}


def to_logs(
    raw: pl.DataFrame,
    *,
    source_name: str,
    plan_: Plan,
    plain_values: bool = False,
    extra: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Flattened text columns (+ the line column ``LINE``) -> canonical log rows, and counts of unreadable values.

    ``plain_values``: the caller knows no value holds a character JSON escapes (quote,
    backslash, control characters), so the values are not searched for one. ``extra``: the
    keys of the rows that are not columns, as (``row``, ``name``, ``text``) triples
    (``log_keys``); they go to ``attributes`` and signal errors as columns would.

    Row by row: nothing here depends on other rows, so chunks and parse paths can be mapped
    separately and concatenated with identical results.
    """
    logs, flags = map_logs(
        raw, source_name=source_name, plan_=plan_, plain_values=plain_values, extra=extra
    )
    counts = {what: int(flags.get_column(field).sum()) for field, what in UNREAD_COUNTS.items()}
    return logs, {what: n for what, n in counts.items() if n}


def map_logs(
    raw: pl.DataFrame,
    *,
    source_name: str | pl.Series,
    plan_: Plan,
    plain_values: bool = False,
    extra: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``to_logs`` with the flags of unreadable values per row (boolean columns ``time`` and
    ``duration``) instead of their counts; ``source_name`` may give each row's input name."""
    columns = sorted(c for c in raw.columns if c != LINE)
    # Keys become positional names: a key like "*" or "^a$" must never reach pl.col as a pattern.
    internal = {name: f"\x01{index}" for index, name in enumerate(columns)}
    raw = raw.rename(internal)
    if isinstance(source_name, pl.Series):
        prefix = pl.col("\x02source") + ":"
        raw = raw.with_columns(source_name.alias("\x02source"))
    else:
        prefix = pl.lit(f"{source_name}:")
    work = raw.lazy()
    # field -> ordered sources: (column holding the parsed value, key it consumes when it wins)
    sources: dict[str, list[tuple[str, str | None]]] = {}
    after_trace: list[tuple[str, str | None]] = []  # correlation sources ranked below a trace id
    canonical = _column_checks(raw, plan_, internal)
    # Id fields whose every source column passed its check: normalize_logs need not look again.
    checked_ids = set(_ID_FIELDS)
    for field, candidates in plan_.fields.items():
        for index, candidate in enumerate(c for c in candidates if c.key in internal):
            temp = f"\x00{field}\x00{index}"
            work = _parse(work, candidate, internal, raw, temp, canonical)
            test = _COLUMN_CHECKS.get(candidate.parse)
            passed = test is not None and canonical.get((internal[candidate.key], test.__name__))
            if field in _ID_FIELDS and not passed:
                checked_ids.discard(field)
            key = candidate.key if candidate.consumed else None
            if candidate.parse in ("non_hex_trace", "last_resort"):
                after_trace.append((temp, key))
            else:
                sources.setdefault(field, []).append((temp, key))
    # Correlation: request-id keys, then the hex trace id, then a non-hex trace-key value, then
    # the last-resort keys.
    if "trace_id" in sources:
        trace = pl.coalesce(pl.col(temp) for temp, _ in sources["trace_id"]).alias("\x00trace")
        work = work.with_columns(trace)
        after_trace.insert(0, ("\x00trace", None))
    if after_trace:
        sources["correlation_id"] = [*sources.get("correlation_id", []), *after_trace]

    values: dict[str, pl.Expr] = {}
    consumed: dict[str, list[pl.Expr]] = {}
    for field, found in sources.items():
        taken = pl.lit(False)
        for temp, key in found:
            if key is not None:
                consumed.setdefault(key, []).append(pl.col(temp).is_not_null() & ~taken)
            taken = taken | pl.col(temp).is_not_null()
        values[field] = pl.coalesce([pl.col(temp) for temp, _ in found])

    def value(field: str, dtype: pl.DataType | DataTypeClass) -> pl.Expr:
        return values.get(field, pl.lit(None, dtype=dtype))

    def unread(field: str) -> pl.Expr:
        """A key of ``field`` has a value, and none was read."""
        if field not in sources:
            return pl.lit(False)
        present = (pl.col(internal[key]).is_not_null() for _, key in sources[field] if key)
        return pl.any_horizontal(present) & values[field].is_null()

    # The text the duration was not read from: the first duration key the line has.
    duration_keys = [internal[key] for _, key in sources.get("duration", ()) if key]
    duration_text = pl.coalesce(duration_keys) if duration_keys else pl.lit(None, pl.String)
    work = work.with_columns(
        unread(field).alias(f"\x00unread\x00{field}") for field in ("time", "duration")
    )
    unread_time, unread_duration = (pl.col(f"\x00unread\x00{f}") for f in ("time", "duration"))
    level = value("level", pl.String)
    signals = [level.is_in(ERROR_LEVELS).fill_null(False)]
    signals += [v.signals_error(pl.col(internal[c])) for c in _under(columns, plan_.error_keys)]
    signals += [
        v.server_error_status(pl.col(internal[k])) for k in plan_.status_keys if k in internal
    ]
    if extra is not None:
        errors = _extra_errors(extra, plan_)
        if errors is not None:
            work = work.with_row_index("\x02row").join(
                errors, left_on="\x02row", right_on="row", how="left", maintain_order="left"
            )
            signals.append(pl.col("\x02error").fill_null(False))
    work = work.with_columns(pl.any_horizontal(signals).alias("\x00error"))
    error = pl.col("\x00error")
    frame = work.select(
        time_ns=value("time", pl.Int64),
        level=level,
        message=value("message", pl.String),
        trace_id=value("trace_id", pl.String),
        span_id=value("span_id", pl.String),
        parent_span_id=value("parent_span_id", pl.String),
        correlation_id=value("correlation_id", pl.String),
        service=value("service", pl.String),
        stage=value("stage", pl.String),
        duration_ns=value("duration", pl.Int64),
        error_message=pl.coalesce(
            value("error", pl.String), pl.when(error).then(value("message", pl.String))
        ),
        error=error,
        **_attribute_columns(raw, columns, internal, consumed, plain_values, extra is not None),
        unread_reason=pl.when(unread_time)
        .then(pl.lit(UNREADABLE_TIME))
        # The text is looked at only where a duration went unread: a regex per line costs.
        .when(v.negative_number(pl.when(unread_duration).then(duration_text)))
        .then(pl.lit(NEGATIVE_DURATION))
        .when(unread_duration)
        .then(pl.lit(DURATION_NOT_A_NUMBER)),
        source=prefix + pl.col(LINE).cast(pl.String),
        **{
            f"\x00unread {field}": flag
            for field, flag in (("time", unread_time), ("duration", unread_duration))
        },
    ).collect()
    if extra is not None:
        frame = _with_extra_attributes(frame, extra)
    flags = frame.select(pl.col(f"\x00unread {field}").alias(field) for field in UNREAD_COUNTS)
    logs = normalize_logs(
        frame.select(pl.col(n).cast(t) for n, t in LOG_SCHEMA.items()), canonical_ids=checked_ids
    )
    return logs, flags


def _under(columns: list[str], keys: frozenset[str]) -> list[str]:
    """The columns that are one of ``keys`` or a key inside an object under one of them."""
    return [c for c in columns if not keys.isdisjoint(_spellings(c))]


def keys_held(columns: Iterable[str], keys: frozenset[str]) -> set[str]:
    """Which of ``keys`` flattened ``columns`` hold, as a value or as an object (``key.*``)."""
    held: set[str] = set()
    if keys:
        for column in columns:
            held.update(keys.intersection(_spellings(column)))
    return held


def _spellings(column: str) -> list[str]:
    """A flattened key and the keys of the objects it is inside: a.b.c -> a.b.c, a, a.b."""
    return [column, *(column[:i] for i, c in enumerate(column) if c == ".")]


def _attribute_columns(
    raw: pl.DataFrame,
    columns: list[str],
    internal: Mapping[str, str],
    consumed: Mapping[str, list[pl.Expr]],
    plain_values: bool,
    with_extra: bool,
) -> dict[str, pl.Expr]:
    """``attributes``: JSON object text of the values no canonical field consumed, keys sorted,
    nulls omitted. ``with_extra``: instead, each column's fragment (``"key":"value"``, null when
    not kept) as a column named ``\x03`` + its key, for ``_with_extra_attributes``."""
    fragments = []
    for name in columns:
        column = pl.col(internal[name])
        keep = column.is_not_null()
        if name in consumed:
            keep = keep & ~pl.any_horizontal(consumed[name])
        escape = not plain_values and bool(
            raw.get_column(internal[name]).str.contains(_NEEDS_ESCAPE).any()
        )
        prefix = orjson.dumps(name).decode() + ":"
        fragment = pl.when(keep).then(pl.lit(prefix) + _quoted(column, escape=escape))
        fragments.append(fragment.alias(f"\x03{name}"))
    if with_extra:
        return {f"\x03{name}": f for name, f in zip(columns, fragments, strict=True)}
    if not fragments:
        return {"attributes": pl.lit("{}")}
    body = pl.concat_str(fragments, separator=",", ignore_nulls=True)
    return {"attributes": pl.lit("{") + body.fill_null("") + pl.lit("}")}


def _quoted(text: pl.Expr, *, escape: bool) -> pl.Expr:
    """Text as a JSON string; ``escape``: some value may hold a character JSON escapes."""
    if escape:
        # A one-field struct's JSON is {"v":<escaped string>}: cut the value out of it.
        return pl.struct(text.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
    return '"' + text + '"'  # what the JSON encoder writes when nothing needs escaping


def _extra_errors(extra: pl.DataFrame, plan_: Plan) -> pl.LazyFrame | None:
    """(``row``, ``\x02error``): whether a row's triples under an error key (the key or any
    ``KEY.*``) signal an error, as their columns would; None when no triple is under one."""
    name = pl.col("name")
    under = pl.any_horizontal(
        name.is_in(sorted(plan_.error_keys)),
        *(name.str.starts_with(key + ".") for key in sorted(plan_.error_keys)),
    )
    flagged = extra.filter(under)
    if not flagged.height:
        return None
    return (
        flagged.lazy().group_by("row").agg(v.signals_error(pl.col("text")).any().alias("\x02error"))
    )


def _json_string(text: pl.Expr) -> pl.Expr:
    """Text as a JSON string, escaped only where a value needs it (the same text either way)."""
    needs = text.str.contains(_NEEDS_ESCAPE)
    return pl.when(needs).then(_quoted(text, escape=True)).otherwise(_quoted(text, escape=False))


def _with_extra_attributes(frame: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (with a ``\x03KEY`` fragment column per key column) with ``attributes`` made
    from those fragments and the triples' together, keys sorted as ``_attribute_columns``
    sorts them (polars orders text by its UTF-8 bytes, which is code point order, as Python
    does; its JSON strings are orjson's, byte for byte)."""
    fragment_columns = [c for c in frame.columns if c.startswith("\x03")]
    schema = {"row": pl.UInt32, "name": pl.String, "fragment": pl.String}
    own = (
        frame.lazy()
        .select(fragment_columns)
        .with_row_index("row")
        .unpivot(on=fragment_columns, index="row", variable_name="name", value_name="fragment")
        .drop_nulls("fragment")
        .select(pl.col("row"), pl.col("name").str.slice(1), pl.col("fragment"))
        if fragment_columns
        else pl.LazyFrame(schema=schema)
    )
    theirs = extra.lazy().select(
        "row",
        "name",
        fragment=_json_string(pl.col("name")) + ":" + _json_string(pl.col("text")),
    )
    bodies = (
        pl.concat([own, theirs], how="vertical")
        .sort("row", "name")
        .group_by("row", maintain_order=True)
        .agg(pl.col("fragment").str.join(","))
    )
    attributes = "{" + pl.col("fragment").fill_null("") + "}"
    return (
        frame.lazy()
        .drop(fragment_columns)
        .with_row_index("row")
        .join(bodies, on="row", how="left", maintain_order="left")
        .with_columns(attributes=attributes)
        .drop("row", "fragment")
        .collect()
    )
