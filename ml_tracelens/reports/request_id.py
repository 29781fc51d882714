"""Which trace does a user's id name? Resolution for `tracelens show ID`.

An ID is, tried in this order:

1. a trace id, exactly (any case; unpadded Jaeger/Zipkin ids compare equal after the same
   left-padding the readers apply);
2. a correlation id: the value of a request-id-like attribute on a span (``request.id``,
   ``request_id``, ``correlation_id``, ``http.request_id``, ``x-request-id`` by default), or the
   ``correlation_id`` of a log line (whose trace is its ``trace_id``, or for log-only requests the
   correlation id itself, as log_spans.py names derived traces);
3. a prefix of at least 6 hex digits of exactly one trace id (leading zeros optional).

Every step is a vectorised polars filter over the whole dump, so resolving an id in a dump of a
million spans costs a few column scans. Attribute values are looked up only in spans whose JSON
attribute text contains the id at all (a substring scan), so JSON is parsed for a handful of rows.
Nothing found raises NotFound with the closest ids (difflib); an id naming several traces raises
NotFound listing them. Both print as one line and exit 2.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from ml_tracelens.exceptions import NotFound, UsageError, quoted
from ml_tracelens.schema import attribute, distinct_resources, normalize_id, with_attribute_columns

#: Span attributes whose values are request (correlation) ids.
DEFAULT_ID_ATTRS = ("request.id", "request_id", "correlation_id", "http.request_id", "x-request-id")
MIN_PREFIX = 6
#: How many candidates an ambiguity message lists before "and N more".
_LIST_AT_MOST = 8
#: Upper bound of ids compared by difflib when nothing matched (it is O(n) Python work).
_CLOSEST_POOL = 200_000
#: How many of the best-ranked candidates difflib compares in the end.
_DIFFLIB_POOL = 500
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Resolution:
    trace_id: str
    #: "trace_id", "correlation_id" or "prefix"
    matched_by: str


def resolve_id(
    ident: str,
    *,
    spans: pl.DataFrame | pl.LazyFrame,
    logs: pl.DataFrame | pl.LazyFrame,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
) -> Resolution:
    """The one trace ``ident`` names in ``spans`` (canonical columns), else NotFound.

    Lazy frames (a cache entry on disk) are read one column at a time, as each step needs.
    """
    text = ident.strip()
    if not text:
        raise UsageError("the id is empty: pass a trace id, a prefix of one, or a request id")
    trace_ids = _column(spans, "trace_id").drop_nulls().unique()

    exact = trace_ids.filter(trace_ids.is_in([text, _normalized(text)]))
    if exact.is_empty():
        exact = trace_ids.filter(trace_ids.str.to_lowercase() == text.lower())
    if exact.len() == 1:
        return Resolution(exact.item(), "trace_id")
    if exact.len() > 1:
        raise NotFound(_ambiguous(text, "trace id (ignoring case)", exact, spans))

    correlated = correlated_traces(text, spans=spans, logs=logs, id_attrs=id_attrs)
    known = correlated.filter(correlated.is_in(trace_ids.implode()))
    if known.len() == 1:
        return Resolution(known.item(), "correlation_id")
    if known.len() > 1:
        raise NotFound(_ambiguous(text, "request id", known, spans))

    lowered = text.lower()
    if len(lowered) >= MIN_PREFIX and _HEX.fullmatch(lowered):
        hit = trace_ids.str.starts_with(lowered)
        unpadded = lowered.lstrip("0")
        if unpadded == lowered:  # the user dropped leading zeros that the readers padded in
            hit = hit | trace_ids.str.strip_chars_start("0").str.starts_with(lowered)
        prefixed = trace_ids.filter(hit)
        if prefixed.len() == 1:
            return Resolution(prefixed.item(), "prefix")
        if prefixed.len() > 1:
            raise NotFound(_ambiguous(text, "trace id prefix", prefixed, spans))

    if not correlated.is_empty():
        raise NotFound(_only_in_logs(text, correlated, logs))
    if _HEX.fullmatch(lowered) and len(lowered) < MIN_PREFIX:
        raise NotFound(
            f"{quoted(text)} is too short for a trace id prefix: prefixes need at least "
            f"{MIN_PREFIX} hex digits"
        )
    raise NotFound(_unknown(text, trace_ids, spans, logs, id_attrs))


def _only_in_logs(text: str, traces: pl.Series, logs: pl.DataFrame | pl.LazyFrame) -> str:
    """Why an id that only log records carry has nothing to show, and what might fix it."""
    records = (
        logs.lazy()
        .filter((pl.col("correlation_id") == text) | (pl.col("trace_id") == text))
        .select(
            staged=pl.col("stage").is_not_null().sum(),
            timed=(pl.col("stage").is_not_null() & pl.col("duration_ns").is_not_null()).sum(),
            reason=pl.col("unread_reason").drop_nulls().first(),
            records=pl.len(),
        )
        .collect()
        .row(0, named=True)
    )
    message = (
        f"no spans for {quoted(text)}: it appears only in {_n(records['records'], 'log record')} "
        f"(trace {traces.item(0)}), and `show` draws spans"
    )
    if records["reason"] is not None or records["timed"]:
        why = f" ({records['reason']})" if records["reason"] is not None else ""
        message += (
            f"; those records name stages but were not made spans{why}: `tracelens summary` "
            "counts the lines by reason"
        )
    elif records["staged"]:
        message += (
            "; those records name stages but no duration: map their duration key with "
            "--field duration=KEY"
        )
    return message


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def correlated_traces(
    text: str,
    *,
    spans: pl.DataFrame | pl.LazyFrame,
    logs: pl.DataFrame | pl.LazyFrame,
    id_attrs: Sequence[str] = DEFAULT_ID_ATTRS,
) -> pl.Series:
    """Trace ids of spans whose id attributes equal ``text`` and of log lines correlated by it."""
    found = [pl.Series("trace_id", [], dtype=pl.String)]
    if id_attrs:
        # Substring scan first: only rows containing the JSON-escaped id are parsed.
        needle = orjson.dumps(text).decode()[1:-1]
        frame = spans.lazy()
        mentions = pl.col("attributes").str.contains(needle, literal=True)
        columns = ["trace_id", "attributes"]
        if "resource" in frame.collect_schema().names():
            columns.append("resource")
            held = _resources_mentioning(frame, needle)
            if held:
                mentions = mentions | pl.col("resource").is_in(held)
        # Two eager steps on purpose: one lazy query would fuse the filters and parse every row.
        candidates = frame.select(columns).filter(mentions).collect()
        ids = {f"_id{i}": key for i, key in enumerate(id_attrs)}
        candidates = with_attribute_columns(candidates, ids)
        matched = pl.any_horizontal(pl.col(name) == text for name in ids).fill_null(False)
        found.append(candidates.filter(matched).get_column("trace_id"))
    if isinstance(logs, pl.LazyFrame) or logs.height:
        found.append(
            logs.lazy()
            .filter(pl.col("correlation_id") == text)
            .select(pl.coalesce("trace_id", "correlation_id").alias("trace_id"))
            .collect()
            .get_column("trace_id")
        )
    return pl.concat(found).drop_nulls().unique().sort()


def correlation_values(
    spans: pl.DataFrame, id_attrs: Sequence[str] = DEFAULT_ID_ATTRS
) -> pl.DataFrame:
    """(trace_id, correlation_id, start_ns) for every span carrying one of the id attributes.

    The first key of ``id_attrs`` present on a span wins.
    """
    values = [attribute_values(spans, key) for key in id_attrs]
    rows = (
        pl.concat(values)
        if values
        else pl.DataFrame(schema={"_row": pl.UInt32, "value": pl.String})
    )
    first = rows.group_by("_row", maintain_order=True).first()
    return (
        spans.select("trace_id", "start_ns")
        .with_row_index("_row")
        .join(first, on="_row", how="inner")
        .sort("_row")
        .select("trace_id", pl.col("value").alias("correlation_id"), "start_ns")
    )


def attribute_values(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """(_row, value) for the rows of ``frame`` where attribute ``key`` is present, as text.

    Cheap on big frames: only rows whose attribute text mentions the quoted key are looked at,
    and the common OTLP list shape (``{"key": K, "value": {"stringValue": V}}``) is read with a
    regex; JSON path matching (slow on list-shaped attributes) runs only where the regex cannot
    answer. Each step is eager so polars cannot fuse the cheap filter into the costly parsing.
    """
    quoted = orjson.dumps(key).decode()
    mentions = frame.select("attributes").with_row_index("_row")
    mentions = mentions.filter(pl.col("attributes").str.contains(quoted, literal=True))
    if mentions.is_empty():
        return _resource_values(frame, key, answered=mentions.select("_row"))
    pattern = (
        r'"key"\s*:\s*'
        + re.escape(quoted)
        + r'\s*,\s*"value"\s*:\s*\{\s*"(?:stringValue|intValue)"\s*:\s*"?([^"\\{}\[\]]*?)"?\s*\}'
    )
    fast = mentions.with_columns(
        value=pl.when(pl.col("attributes").str.starts_with("["))
        .then(pl.col("attributes").str.extract(pattern))
        .otherwise(None)
    )
    answered = fast.filter(pl.col("value").is_not_null()).select("_row", "value")
    rest = fast.filter(pl.col("value").is_null())
    parsed = rest.select("_row", attribute(key).alias("value")).filter(
        pl.col("value").is_not_null()
    )
    own = pl.concat([answered, parsed])
    return pl.concat([own, _resource_values(frame, key, answered=own)]).sort("_row")


def _resource_values(frame: pl.DataFrame, key: str, *, answered: pl.DataFrame) -> pl.DataFrame:
    """(_row, value) of ``key`` from the resource of the rows not ``answered`` by their own
    attributes (span attributes win)."""
    empty = pl.DataFrame(schema={"_row": pl.UInt32, "value": pl.String})
    resources = distinct_resources(frame)
    if resources is None:
        return empty
    quoted = orjson.dumps(key).decode()
    held = resources.filter(pl.col("_text").str.contains(quoted, literal=True))
    held = held.select("resource", value=attribute(key, "_text")).drop_nulls("value")
    if held.is_empty():
        return empty
    rows = frame.select("resource").with_row_index("_row")
    rows = rows.join(held, on="resource", how="inner").join(answered, on="_row", how="anti")
    return rows.select("_row", "value")


def _resources_mentioning(frame: pl.LazyFrame, needle: str) -> list[str]:
    """The distinct resources (JSON text) of ``frame`` that contain ``needle``."""
    resources = distinct_resources(frame.select(pl.col("resource").unique()).collect())
    if resources is None:
        return []
    held = resources.filter(pl.col("_text").str.contains(needle, literal=True))
    return held.get_column("_text").to_list()


def _column(frame: pl.DataFrame | pl.LazyFrame, name: str) -> pl.Series:
    return frame.lazy().select(name).collect().get_column(name)


def _normalized(text: str) -> str:
    value = pl.select(pl.lit(text, dtype=pl.String).alias("id")).select(normalize_id("id")).item()
    return value if value is not None else text


def _ambiguous(
    text: str, what: str, trace_ids: pl.Series, spans: pl.DataFrame | pl.LazyFrame
) -> str:
    ids = trace_ids.sort()
    described = _describe(ids.head(_LIST_AT_MOST), spans)
    more = ids.len() - _LIST_AT_MOST
    tail = f"; and {more:,} more" if more > 0 else ""
    return (
        f"{quoted(text)} matches {ids.len():,} traces as a {what}: {'; '.join(described)}{tail}. "
        "Pass the full trace id"
    )


def _describe(trace_ids: pl.Series, spans: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """``id (stage on service, start)`` for a few traces, from each trace's earliest top span."""
    from ml_tracelens.reports.context import iso_time

    tops = (
        spans.lazy()
        .filter(pl.col("trace_id").is_in(trace_ids.implode()))
        .sort(pl.col("parent_id").is_not_null(), "start_ns", nulls_last=True, maintain_order=True)
        .group_by("trace_id", maintain_order=True)
        .first()
        .select("trace_id", "name", "service", "start_ns")
        .collect()
    )
    info = {row[0]: row[1:] for row in tops.iter_rows()}
    out = []
    for tid in trace_ids.to_list():
        name, service, start = info.get(tid, (None, None, None))
        out.append(f"{tid} ({name or '?'} on {service or '?'}, {iso_time(start) or 'no time'})")
    return out


def _unknown(
    text: str,
    trace_ids: pl.Series,
    spans: pl.DataFrame | pl.LazyFrame,
    logs: pl.DataFrame | pl.LazyFrame,
    id_attrs: Sequence[str],
) -> str:
    frame = spans.lazy()
    columns = ["trace_id", "start_ns", "attributes"]
    columns += ["resource"] if "resource" in frame.collect_schema().names() else []
    head = frame.select(columns).head(_CLOSEST_POOL)
    correlations = correlation_values(head.collect(), id_attrs)
    log_ids = logs.lazy().select("correlation_id").head(_CLOSEST_POOL).collect()
    pool = pl.concat(
        [
            trace_ids.head(_CLOSEST_POOL),
            correlations.get_column("correlation_id").unique(),
            log_ids.get_column("correlation_id").drop_nulls().unique(),
        ]
    ).unique()
    closest = _closest(text, pool)
    hint = f"closest: {', '.join(closest)}" if closest else "list ids with `tracelens traces`"
    return f"no trace or request id {quoted(text)} in the input; {hint}"


def _closest(text: str, pool: pl.Series, n: int = 3) -> list[str]:
    """The ``n`` ids most like ``text`` (difflib ratio >= 0.5), case-insensitively.

    difflib costs Python work per candidate, so candidates are first ranked in polars by how many
    of the id's 3-grams they contain, and only the best few hundred are compared.
    """
    lowered = text.lower()
    candidates = pool.str.to_lowercase()
    grams = sorted({lowered[i : i + 3] for i in range(max(1, len(lowered) - 2))})[:64]
    if len(pool) > _DIFFLIB_POOL and grams:
        score = pl.sum_horizontal([candidates.str.contains(g, literal=True) for g in grams])
        ranked = pl.DataFrame({"id": pool, "score": pl.select(score).to_series()})
        pool = ranked.sort("score", descending=True).head(_DIFFLIB_POOL).get_column("id")
        candidates = pool.str.to_lowercase()
    by_lower = dict(zip(candidates.to_list(), pool.to_list(), strict=True))
    matches = difflib.get_close_matches(lowered, list(by_lower), n=n, cutoff=0.5)
    return [by_lower[m] for m in matches]
