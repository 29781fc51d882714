"""LLM serving: one alias table from the attribute spellings of vLLM, the OpenTelemetry GenAI
semantic conventions, OpenInference and JSON log lines to canonical columns, the metric
definitions of algorithms.md ("LLM serving metrics"), and the client/server pairing.

Canonical columns (first alias present on a span wins, in the order of ``ALIASES``):

    model          gen_ai.response.model, gen_ai.request.model, llm.model_name, model_name, model
    operation      gen_ai.operation.name
    provider       gen_ai.provider.name, gen_ai.system, llm.provider, llm.system
    input_tokens   gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens, llm.token_count.prompt,
                   prompt_tokens, input_tokens
    output_tokens  gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens,
                   llm.token_count.completion, completion_tokens, output_tokens
    cached_tokens  gen_ai.usage.cache_read.input_tokens, cached_tokens
    total_tokens   llm.token_count.total, total_tokens
    queue_ns       gen_ai.latency.time_in_queue (s), queue_ms
    ttft_ns        gen_ai.latency.time_to_first_token (s), ttft_ms
    prefill_ns     gen_ai.latency.time_in_model_prefill (s), prefill_ms
    decode_ns      gen_ai.latency.time_in_model_decode (s), decode_ms
    e2e_ns         gen_ai.latency.e2e (s), e2e_ms
    finish_reason  gen_ai.response.finish_reasons (the first of the list), finish_reason

A span is an LLM request span when it carries any of these keys except the generic ``model``,
``model_name`` and ``finish_reason`` (a classifier's ``model`` attribute does not make an LLM).
A value that is not a number where one is expected (or a negative one) is left out and counted.

Metrics per request: ``e2e`` = e2e_ns when present, else the span's duration; ``tpot`` =
(e2e - ttft) / (output_tokens - 1) for requests with at least 2 output tokens; ``output_tps`` =
output_tokens / e2e (per second).

Pairing: when LLM spans of one trace are ancestor and descendant (an app's ``chat`` client span
calling the serving engine's ``llm_request`` server span), they describe one request. The
deepest span is the request: its values first, the nearest LLM ancestor's where it has none
(but e2e: the deepest span's attribute, else its duration); that ancestor's e2e becomes
``client_e2e_ns``; the ancestor is not counted on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from ml_tracelens.durations import NS_PER_MS, NS_PER_S
from ml_tracelens.schema import distinct_resources

#: canonical column -> attribute keys in order of precedence, each with its time unit in ns
#: (0: not a time)
ALIASES: dict[str, tuple[tuple[str, int], ...]] = {
    "model": (
        ("gen_ai.response.model", 0),
        ("gen_ai.request.model", 0),
        ("llm.model_name", 0),
        ("model_name", 0),
        ("model", 0),
    ),
    "operation": (("gen_ai.operation.name", 0),),
    "provider": (
        ("gen_ai.provider.name", 0),
        ("gen_ai.system", 0),
        ("llm.provider", 0),
        ("llm.system", 0),
    ),
    "input_tokens": (
        ("gen_ai.usage.input_tokens", 0),
        ("gen_ai.usage.prompt_tokens", 0),
        ("llm.token_count.prompt", 0),
        ("prompt_tokens", 0),
        ("input_tokens", 0),
    ),
    "output_tokens": (
        ("gen_ai.usage.output_tokens", 0),
        ("gen_ai.usage.completion_tokens", 0),
        ("llm.token_count.completion", 0),
        ("completion_tokens", 0),
        ("output_tokens", 0),
    ),
    "cached_tokens": (
        ("gen_ai.usage.cache_read.input_tokens", 0),
        ("cached_tokens", 0),
    ),
    "total_tokens": (("llm.token_count.total", 0), ("total_tokens", 0)),
    "queue_ns": (("gen_ai.latency.time_in_queue", NS_PER_S), ("queue_ms", NS_PER_MS)),
    "ttft_ns": (("gen_ai.latency.time_to_first_token", NS_PER_S), ("ttft_ms", NS_PER_MS)),
    "prefill_ns": (("gen_ai.latency.time_in_model_prefill", NS_PER_S), ("prefill_ms", NS_PER_MS)),
    "decode_ns": (("gen_ai.latency.time_in_model_decode", NS_PER_S), ("decode_ms", NS_PER_MS)),
    "e2e_ns": (("gen_ai.latency.e2e", NS_PER_S), ("e2e_ms", NS_PER_MS)),
    "finish_reason": (("gen_ai.response.finish_reasons", 0), ("finish_reason", 0)),
}
TEXT_FIELDS = ("model", "operation", "provider", "finish_reason")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "total_tokens")
TIME_FIELDS = ("queue_ns", "ttft_ns", "prefill_ns", "decode_ns", "e2e_ns")
#: keys that alone do not make a span an LLM request span
GENERIC_KEYS = frozenset({"model", "model_name", "finish_reason"})
MARKER_KEYS = tuple(
    key for spellings in ALIASES.values() for key, _ in spellings if key not in GENERIC_KEYS
)
#: ``--field llm.NAME=KEY`` names: the fields a user may point at a key of their own
FIELD_PREFIX = "llm."
FIELD_NAMES = {
    **{name: name for name in (*TEXT_FIELDS, *TOKEN_FIELDS)},
    **{name.removesuffix("_ns"): name for name in TIME_FIELDS},
}
#: canonical column -> (key, ns per unit) pairs, as ``ALIASES``
Aliases = dict[str, tuple[tuple[str, int], ...]]


def with_overrides(overrides: dict[str, tuple[str, int]] | None) -> Aliases:
    """``ALIASES`` with the user's key (``--field llm.ttft=first_token_ms``) replacing the
    built-in keys of each overridden canonical column."""
    aliases = dict(ALIASES)
    for column, spelling in (overrides or {}).items():
        aliases[column] = (spelling,)
    return aliases


_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "kind",
    "status",
    "start_ns",
    "end_ns",
    "duration_ns",
)


@dataclass(frozen=True)
class LlmSpans:
    """The LLM request spans of a frame with their canonical columns."""

    frame: pl.DataFrame
    #: canonical column -> the keys that held values, in alias order
    found: dict[str, list[str]] = field(default_factory=dict)
    #: canonical column -> values present but not usable (not a number, negative)
    unusable: dict[str, int] = field(default_factory=dict)


#: Pieces every marker key contains (quoted as a key is): a first, cheap pass over all spans.
#: Four literal searches take 80 ms over 1M spans; one Aho-Corasick ``contains_any`` of the
#: 30 quoted keys takes 560 ms, and JSON paths far more.
_NEEDLES = ('"gen_ai.', '"llm.', '_tokens"', '_ms"')


def mentions_llm(attributes: pl.Expr, extra_keys: tuple[str, ...] = ()) -> pl.Expr:
    """Whether a span's attribute text may name an LLM marker key (no JSON is parsed; a few
    false positives are sorted out by ``llm_spans``); ``extra_keys``: the user's own keys."""
    needles = (*_NEEDLES, *(f'"{key}"' for key in extra_keys))
    return pl.any_horizontal(attributes.str.contains(n, literal=True) for n in needles)


def llm_spans(
    spans: pl.DataFrame, *, keep: tuple[str, ...] = (), aliases: Aliases | None = None
) -> LlmSpans:
    """The spans carrying LLM attributes, with the span columns, ``keep`` and the canonical
    columns of ``aliases`` (``ALIASES`` by default; text, tokens as Float64, times as Int64
    ns)."""
    aliases = aliases or ALIASES
    if "attributes" not in spans.columns or spans.is_empty():
        return LlmSpans(frame=_empty(keep))
    own = tuple(
        key
        for name, spellings in aliases.items()
        if spellings != ALIASES[name]
        for key, _ in spellings
    )
    candidates = spans.filter(mentions_llm(pl.col("attributes"), own))
    if candidates.is_empty():
        return LlmSpans(frame=_empty(keep))
    lookups = {
        f"_{name}_{index}": key
        for name, spellings in aliases.items()
        for index, (key, _) in enumerate(spellings)
    }
    wanted = [c for c in (*_SPAN_COLUMNS, *keep, "attributes", "resource") if c in spans.columns]
    frame = attribute_values(candidates.select(list(dict.fromkeys(wanted))), lookups)
    marker = pl.any_horizontal(
        pl.col(f"_{name}_{index}").is_not_null()
        for name, spellings in aliases.items()
        for index, (key, _) in enumerate(spellings)
        if key not in GENERIC_KEYS or spellings != ALIASES[name]
    )
    frame = frame.filter(marker)
    found: dict[str, list[str]] = {}
    unusable: dict[str, int] = {}
    present = frame.select(pl.col(c).is_not_null().any() for c in lookups).row(0, named=True)
    values: dict[str, pl.Expr] = {}
    for name, spellings in aliases.items():
        found[name] = [key for i, (key, _) in enumerate(spellings) if present[f"_{name}_{i}"]]
        parsed = [_parsed(name, f"_{name}_{i}", unit) for i, (_, unit) in enumerate(spellings)]
        values[name] = pl.coalesce(parsed)
        if name not in TEXT_FIELDS:
            texts = pl.coalesce(pl.col(f"_{name}_{i}") for i in range(len(spellings)))
            values[f"_bad_{name}"] = texts.is_not_null() & values[name].is_null()
    frame = frame.with_columns(**values)
    bad = frame.select(pl.col(f"_bad_{n}").sum() for n in aliases if n not in TEXT_FIELDS)
    for column, count in bad.row(0, named=True).items():
        if count:
            unusable[column.removeprefix("_bad_")] = int(count)
    frame = frame.drop(*lookups, *(c for c in frame.columns if c.startswith("_bad_")))
    return LlmSpans(
        frame=frame.drop("resource", strict=False),
        found={k: v for k, v in found.items() if v},
        unusable=unusable,
    )


_STRING = r'"(?:[^"\\]|\\.)*"'
#: a value as written in the attribute JSON: a string, a bare scalar, or the start of a list
#: (an OTLP ``arrayValue`` or a JSON array) up to its first string, which is all that is used
_VALUE = (
    rf'{_STRING}|[-\w.+]+|\{{\s*"values"\s*:\s*\[\s*\{{\s*"stringValue"\s*:\s*{_STRING}'
    rf"|\[\s*{_STRING}|\[[^\]\[{{}}]*\]"
)


#: the key of a match of the list (OTLP KeyValue) form, and of the object form, up to its value
_LIST_KEY = r'^"([^"]*)"\s*,\s*"value"\s*:\s*\{\s*"\w+"\s*:\s*'
_OBJECT_KEY = r'^"([^"]*)"\s*:\s*'


def attribute_values(frame: pl.DataFrame, columns: Mapping[str, str]) -> pl.DataFrame:
    """``frame`` plus one text column per ``{name: attribute key}`` (null where absent), from
    ``attributes`` (both forms of schema.py), else the span's ``resource``.

    One regular-expression pass over the text for all keys: per key, JSON paths cost 5 µs a
    span (over 60,000 OTLP spans, 0.31 s each, 10 s for the ~30 keys of ``ALIASES``), this
    pass 0.35 s in all. String values are JSON-unescaped; a list value keeps its start up to
    its first string (``first_reason`` reads it). Unlike a JSON path, a key inside a nested
    object value matches too: readers flatten nested objects into dotted keys, so the flat
    form is what they write.
    """
    if not columns:
        return frame
    keys = sorted(set(columns.values()), key=len, reverse=True)
    names = "|".join(re.escape(k) for k in keys)
    # Starting at the key's name (not at '"key":'), the engine's literal search finds only the
    # keys wanted: 0.1 s instead of 0.3 over 60,000 OTLP spans.
    as_list = rf'"({names})"\s*,\s*"value"\s*:\s*\{{\s*"\w+"\s*:\s*({_VALUE})'
    as_object = rf'"({names})"\s*:\s*({_VALUE})'
    indexed = frame.with_row_index("_attr_row")
    found = _pairs(indexed.select("_attr_row", _text=pl.col("attributes")), as_list, as_object)
    resources = distinct_resources(frame)
    if resources is not None:
        held = _pairs(
            resources.select(pl.col("resource").alias("_res"), "_text"), as_list, as_object
        )
        from_resource = (
            indexed.select("_attr_row", _res=pl.col("resource"))
            .join(held, on="_res", how="inner")
            .drop("_res")
            .join(found.select("_attr_row", "_key"), on=["_attr_row", "_key"], how="anti")
        )
        found = pl.concat([found, from_resource.select(found.columns)], how="vertical")
    wide = (
        found.group_by("_attr_row", "_key")
        .agg(pl.col("_value").first())
        .pivot(on="_key", index="_attr_row", values="_value")
        if found.height
        else pl.DataFrame(schema={"_attr_row": pl.UInt32})
    )
    out = indexed.join(wide, on="_attr_row", how="left", maintain_order="left")
    return out.select(
        *frame.columns,
        **{
            name: (pl.col(key) if key in wide.columns else pl.lit(None, pl.String))
            for name, key in columns.items()
        },
    )


def _pairs(texts: pl.DataFrame, as_list: str, as_object: str) -> pl.DataFrame:
    """(the other column of ``texts``, _key, _value) for every key/value pair found."""
    index = texts.columns[0]
    parts = []
    # A match is short and its shape known: cheap anchored patterns split it (re-running the
    # whole pattern with its groups on each of 450,000 matches took 0.55 s of 0.95).
    for pattern, key_part in ((as_list, _LIST_KEY), (as_object, _OBJECT_KEY)):
        matches = (
            texts.select(index, _match=pl.col("_text").str.extract_all(pattern))
            .explode("_match")
            .drop_nulls("_match")
        )
        parts.append(
            matches.select(
                index,
                _key=pl.col("_match").str.extract(key_part, 1),
                _raw=pl.col("_match").str.replace(key_part, ""),
            )
        )
    pairs = pl.concat(parts, how="vertical")
    raw = pl.col("_raw")
    plain = raw.str.slice(1, raw.str.len_chars() - 2)
    escaped = pairs.filter(raw.str.starts_with('"') & raw.str.contains("\\", literal=True))
    decoded = escaped.select(
        index,
        "_key",
        "_raw",
        _decoded=pl.concat_str(pl.lit("["), raw, pl.lit("]"))
        .str.json_decode(pl.List(pl.String))
        .list.first(),
    )
    pairs = pairs.join(decoded, on=[index, "_key", "_raw"], how="left")
    return pairs.select(
        index,
        "_key",
        _value=pl.when(raw.str.starts_with('"'))
        .then(pl.coalesce("_decoded", plain))
        .otherwise(raw),
    )


def _parsed(name: str, column: str, unit_ns: int) -> pl.Expr:
    text = pl.col(column)
    if name == "finish_reason":
        return first_reason(text)
    if name in TEXT_FIELDS:
        return pl.when(text.str.len_bytes() > 0).then(text)
    number = text.str.strip_chars().cast(pl.Float64, strict=False)
    usable = number.is_finite() & (number >= 0)
    if name in TOKEN_FIELDS:
        return pl.when(usable).then(number)
    # Through float: vLLM writes seconds as doubles; whole nanoseconds are all a span holds.
    scaled = number * unit_ns
    return pl.when(usable & (scaled < 2**62)).then(scaled.round().cast(pl.Int64))


def first_reason(text: pl.Expr) -> pl.Expr:
    """The first finish reason of a list attribute: an OTLP array (``{"values":[...]}``), a JSON
    list (``["stop"]``) or a plain string."""
    otlp = text.str.extract(r'"stringValue"\s*:\s*"((?:[^"\\]|\\.)*)"', 1)
    listed = text.str.extract(r'^\s*\[\s*"((?:[^"\\]|\\.)*)"', 1)
    plain = pl.when(text.str.len_bytes() > 0).then(text)
    return (
        pl.when(text.str.starts_with("{"))
        .then(otlp)
        .when(text.str.starts_with("["))
        .then(listed)
        .otherwise(plain)
    )


def _empty(keep: tuple[str, ...]) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {c: pl.String() for c in (*_SPAN_COLUMNS, *keep)}
    for column in ("start_ns", "end_ns", "duration_ns"):
        schema[column] = pl.Int64()
    schema.update({name: pl.String() for name in TEXT_FIELDS})
    schema.update({name: pl.Float64() for name in TOKEN_FIELDS})
    schema.update({name: pl.Int64() for name in TIME_FIELDS})
    return pl.DataFrame(schema=schema)


def with_metrics(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the per-request metrics: ``e2e_req_ns`` (e2e_ns, else the duration), ``tpot_ns``
    (Float64) and ``output_tps``."""
    e2e = pl.coalesce(pl.col("e2e_ns"), pl.col("duration_ns"))
    out = pl.col("output_tokens")
    tpot = (e2e - pl.col("ttft_ns")).cast(pl.Float64) / (out - 1)
    seconds = e2e.cast(pl.Float64) / NS_PER_S
    return frame.with_columns(e2e_req_ns=e2e).with_columns(
        tpot_ns=pl.when((out >= 2) & pl.col("ttft_ns").is_not_null()).then(tpot),
        output_tps=pl.when(e2e > 0).then(out / seconds),
    )


def requests(llm: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
    """One row per LLM request: the LLM spans without an LLM descendant, with their metrics,
    values missing on them taken from their nearest LLM ancestor, that ancestor's e2e as
    ``client_e2e_ns``, ``error`` (either span in error) and ``paired``.

    ``spans`` is every span of the dump (ids and parents), for the ancestry of LLM spans.
    """
    llm = with_metrics(llm)
    nearest = nearest_llm_ancestors(llm, spans)
    ancestors = nearest.select(trace_id="trace_id", span_id="_ancestor").unique()
    own = llm.join(ancestors, on=["trace_id", "span_id"], how="anti")
    # Everything but e2e may come from the client span: the server's e2e is its own attribute,
    # else its own duration, never the client's (which is client_e2e).
    inherited = [c for c in (*TEXT_FIELDS, *TOKEN_FIELDS, *TIME_FIELDS) if c != "e2e_ns"]
    upper = llm.select(
        "trace_id",
        _ancestor="span_id",
        _client_e2e=pl.col("e2e_req_ns"),
        _client_error=pl.col("status") == "error",
        **{f"_up_{c}": pl.col(c) for c in inherited},
    )
    joined = own.join(nearest, on=["trace_id", "span_id"], how="left").join(
        upper, on=["trace_id", "_ancestor"], how="left"
    )
    filled = joined.with_columns(
        **{c: pl.coalesce(pl.col(c), pl.col(f"_up_{c}")) for c in inherited}
    )
    # Recompute the metrics when an input came from the ancestor (tokens on the client only).
    filled = with_metrics(filled.drop("e2e_req_ns", "tpot_ns", "output_tps"))
    return filled.with_columns(
        client_e2e_ns=pl.col("_client_e2e"),
        paired=pl.col("_ancestor").is_not_null(),
        error=(pl.col("status") == "error") | pl.col("_client_error").fill_null(False),
    ).drop(pl.selectors.starts_with("_"))


def nearest_llm_ancestors(llm: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
    """(trace_id, span_id, _ancestor): each LLM span that has an LLM ancestor, and the nearest
    one. Walks up one level per step for all spans at once, only in traces with several LLM
    spans; bounded by the number of spans, so a corrupt parent cycle cannot loop forever."""
    schema = {"trace_id": pl.String, "span_id": pl.String, "_ancestor": pl.String}
    several = llm.group_by("trace_id").len().filter(pl.col("len") > 1).select("trace_id")
    if several.is_empty():
        return pl.DataFrame(schema=schema)
    keys = llm.join(several, on="trace_id", how="semi").select("trace_id", "span_id")
    parents = spans.join(several, on="trace_id", how="semi").select(
        "trace_id", _at="span_id", _next="parent_id"
    )
    parents = parents.unique(subset=["trace_id", "_at"], keep="first")
    marked = keys.select("trace_id", _at="span_id", _is_llm=pl.lit(True))
    frontier = keys.join(
        parents.rename({"_next": "_up"}),
        left_on=["trace_id", "span_id"],
        right_on=["trace_id", "_at"],
    ).select("trace_id", "span_id", _at="_up")
    found: list[pl.DataFrame] = []
    for _ in range(parents.height + 1):
        frontier = frontier.filter(pl.col("_at").is_not_null())
        if frontier.is_empty():
            break
        frontier = frontier.join(marked, on=["trace_id", "_at"], how="left")
        hits = frontier.filter(pl.col("_is_llm").fill_null(False))
        if hits.height:
            found.append(hits.select("trace_id", "span_id", _ancestor="_at"))
        frontier = (
            frontier.filter(~pl.col("_is_llm").fill_null(False))
            .join(parents, on=["trace_id", "_at"], how="inner")
            .select("trace_id", "span_id", _at="_next")
        )
    if not found:
        return pl.DataFrame(schema=schema)
    return pl.concat(found, how="vertical").cast(schema)  # type: ignore[arg-type]
