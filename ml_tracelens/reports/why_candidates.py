"""The candidates of ``tracelens why``: every unit's (attribute, value) pairs, as integer ids.

A unit (a request, or a span of one stage) has an (attribute, value) when any of its member
spans has it. Candidates are the span and resource attributes and the built-in ``service``,
``stage`` and ``status``. A million spans hold far fewer distinct attribute texts, so each text
is parsed once (the common layouts by one pattern over all texts, the rest by a JSON parser)
and only integers are joined. Attributes whose every value is a number (more than
``TOP_VALUES`` of them) are numeric; of the others, the ``TOP_VALUES`` most common values are
candidates one by one and the rest are pooled as ``OTHER``; identifier-like attributes (nearly
a value per unit) are no candidates. Token counts are also banded (``TOKEN_BANDS``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import orjson
import polars as pl

from ml_tracelens.schema import attributes_dict

#: Values of a categorical attribute tested one by one; the rest are pooled as OTHER.
TOP_VALUES = 10
OTHER = "(other)"
#: The candidates every span has, by their name in the report: the span column they come from.
BUILTIN = {"service": "service", "stage": "name", "status": "status"}


@dataclass(frozen=True)
class Candidates:
    """What the units have: ``facts`` (``_unit``, ``pair``) unique, for the categorical
    candidates with the rare values pooled; ``pairs`` (``pair``, ``attribute``, ``value``) what
    each pair id stands for; ``numeric`` (``_unit``, ``attribute``, ``number``), a unit's
    largest value of each numeric attribute."""

    facts: pl.DataFrame
    pairs: pl.DataFrame
    numeric: pl.DataFrame


def candidates(members: pl.DataFrame, *, skip_status: bool) -> Candidates:
    """Every unit's (attribute, value) pairs, as integer ids.

    A million spans hold far fewer distinct attribute texts (and a handful of resources and
    stage names), so each text is parsed once: the spans carry a dictionary code of their text,
    and only (unit, code) and (code, attribute, value) are joined, on integers."""
    sources: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    for name, column in BUILTIN.items():
        if skip_status and name == "status":
            continue
        units, texts = _coded(members, pl.col(column).cast(pl.String))
        sources.append((units, texts.select("code", attribute=pl.lit(name), value="_text")))
    # Without the attribute columns (a library caller's load(attributes=False)) there are only
    # the built-in candidates.
    for column in ("attributes", "resource"):
        if column in members.columns:
            units, texts = _coded(members, pl.col(column))
            parsed = _parsed(texts).with_columns(
                # An attribute named like a built-in candidate keeps its own name apart.
                attribute=pl.when(pl.col("attribute").is_in(list(BUILTIN)))
                .then("attr." + pl.col("attribute"))
                .otherwise("attribute")
            )
            sources.append((units, parsed))
    dictionaries = pl.concat(
        [d.with_columns(source=pl.lit(i, pl.UInt32)) for i, (_, d) in enumerate(sources)]
    )
    dictionaries = dictionaries.filter(pl.col("attribute") != "service.name")
    pairs = (
        dictionaries.select("attribute", "value")
        .unique()
        .sort("attribute", "value")
        .with_row_index("pair")
    )
    codes = dictionaries.join(pairs, on=["attribute", "value"]).select("source", "code", "pair")
    facts = _distinct(
        pl.concat(
            [
                units.join(codes.filter(pl.col("source") == i), on="code").select("_unit", "pair")
                for i, (units, _) in enumerate(sources)
            ]
        )
    )
    return _classified(facts, pairs)


def _distinct(facts: pl.DataFrame) -> pl.DataFrame:
    """Unique (``_unit``, ``pair``) rows: hashed as one 64-bit key, twice as fast as two."""
    key = pl.col("_unit").cast(pl.UInt64) * _SHIFT + pl.col("pair").cast(pl.UInt64)
    return facts.select(_key=key.unique()).select(
        _unit=(pl.col("_key") // _SHIFT).cast(pl.UInt32),
        pair=(pl.col("_key") % _SHIFT).cast(pl.UInt32),
    )


_SHIFT = 1 << 32


def _coded(members: pl.DataFrame, text: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(``_unit``, ``code``) unique and (``code``, ``_text``) distinct, for a text column of
    the member spans (nulls left out)."""
    coded = (
        members.select("_unit", _text=text.cast(pl.Categorical))
        .drop_nulls("_text")
        .with_columns(code=pl.col("_text").to_physical())
    )
    units = coded.select("_unit", "code").unique()
    texts = coded.unique("code").select("code", pl.col("_text").cast(pl.String))
    return units, texts


# A JSON string; an attribute of an OTLP KeyValue list with a scalar value; an object member
# with a scalar value. Groups: the key, then the value (a JSON string or a bare token).
_STRING = r'"(?:[^"\\]|\\.)*"'
_LIST_PAIR = (
    r'\{\s*"key"\s*:\s*(' + _STRING + r')\s*,\s*"value"\s*:\s*\{\s*"(?:stringValue|intValue|'
    r'doubleValue|boolValue)"\s*:\s*(' + _STRING + r"|[^,}\s]+)\s*\}\s*\}"
)
_OBJECT_PAIR = "(" + _STRING + r")\s*:\s*(" + _STRING + r"|-?[0-9][0-9.eE+-]*|true|false)"


def _parsed(texts: pl.DataFrame) -> pl.DataFrame:
    """(``code``, ``attribute``, ``value``) of every scalar attribute of each JSON text, as
    text (numbers and booleans as JSON writes them); nested values are no candidates.

    The common layouts are read with one pattern each over all texts at once; a text the
    pattern might misread (nested values, a list whose pairs do not all match) is parsed."""
    text = pl.col("_text")
    is_list = text.str.starts_with("[")
    simple = (
        pl.when(is_list)
        .then(
            ~text.str.contains("arrayValue|kvlistValue|bytesValue")
            & (text.str.count_matches(_LIST_PAIR) == text.str.count_matches(r'"key"\s*:'))
        )
        .otherwise(text.str.count_matches(r"[\[{]") <= 1)
    )
    texts = texts.filter(~text.is_in(["{}", "[]", ""])).with_columns(_list=is_list, _simple=simple)
    parts = []
    for listed, pattern in ((True, _LIST_PAIR), (False, _OBJECT_PAIR)):
        matches = (
            texts.filter(pl.col("_simple") & (pl.col("_list") == listed))
            .select("code", _match=text.str.extract_all(pattern))
            .explode("_match")
            .drop_nulls("_match")
        )
        groups = (
            matches.select(pl.col("_match").unique())
            .with_columns(_groups=pl.col("_match").str.extract_groups(pattern))
            .unnest("_groups")
            .rename({"1": "attribute", "2": "value"})
        )
        parts.append(matches.join(groups, on="_match").select("code", "attribute", "value"))
    raw = pl.concat(parts)
    escaped = pl.col("attribute").str.contains("\\", literal=True) | pl.col("value").str.contains(
        "\\", literal=True
    )
    quoted = pl.col("value").str.starts_with('"')
    plain = raw.filter(~escaped).select(
        "code",
        attribute=pl.col("attribute").str.slice(1, pl.col("attribute").str.len_chars() - 2),
        value=pl.when(quoted)
        .then(pl.col("value").str.slice(1, pl.col("value").str.len_chars() - 2))
        .otherwise("value"),
    )
    rows = [
        (code, orjson.loads(key), orjson.loads(value) if value.startswith('"') else value)
        for code, key, value in raw.filter(escaped).iter_rows()
    ]
    for code, item in texts.filter(~pl.col("_simple")).select("code", "_text").iter_rows():
        rows.extend((code, key, value) for key, value in _scalars(item))
    schema = {"code": pl.UInt32, "attribute": pl.String, "value": pl.String}
    return pl.concat([plain, pl.DataFrame(rows, schema=schema, orient="row")])


def _scalars(text: str) -> list[tuple[str, str]]:
    """The scalar attributes of one JSON text, values as JSON writes them (strings bare);
    nothing for text that is not attributes."""
    try:
        found = attributes_dict(text)
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    return [
        (key, value if isinstance(value, str) else orjson.dumps(value).decode())
        for key, value in found.items()
        if isinstance(value, str | int | float | bool)
    ]


def _classified(facts: pl.DataFrame, pairs: pl.DataFrame) -> Candidates:
    """Numeric attributes apart (every value a number, more than ``TOP_VALUES`` of them),
    identifiers left out (about one unit per value: no value can be tested), and the values of
    the rest beyond their ``TOP_VALUES`` most common pooled as OTHER."""
    held = facts.group_by("pair").agg(units=pl.len())
    info = pairs.join(held, on="pair").with_columns(
        number=pl.col("value").cast(pl.Float64, strict=False)
    )
    shape = info.group_by("attribute").agg(
        numeric=pl.col("number").is_not_null().all() & (pl.len() > TOP_VALUES),
        identifier=(pl.len() > TOP_VALUES) & (pl.len() * 2 > pl.col("units").sum()),
    )
    numeric_names = shape.filter(
        pl.col("numeric") & ~pl.col("attribute").is_in(list(BUILTIN))
    ).get_column("attribute")
    dropped = shape.filter(pl.col("identifier")).get_column("attribute")
    numeric_pairs = info.filter(pl.col("attribute").is_in(numeric_names.implode()))
    numeric = (
        facts.join(numeric_pairs.select("pair", "attribute", "number"), on="pair")
        .group_by("_unit", "attribute")
        .agg(number=pl.col("number").max())
    )
    kept = info.filter(
        ~pl.col("attribute").is_in(numeric_names.implode())
        & ~pl.col("attribute").is_in(dropped.implode())
    )
    ranked = kept.with_columns(
        _rank=pl.struct(-pl.col("units").cast(pl.Int64), "value").rank("ordinal").over("attribute")
    )
    others = (
        ranked.filter(pl.col("_rank") > TOP_VALUES)
        .select("attribute")
        .unique()
        .sort("attribute")
        .with_row_index("pooled", offset=pairs.height)
    )
    pooling = pl.concat(
        [
            ranked.filter(pl.col("_rank") <= TOP_VALUES).select("pair", pooled="pair"),
            ranked.filter(pl.col("_rank") > TOP_VALUES)
            .join(others, on="attribute")
            .select("pair", "pooled"),
        ]
    )
    dictionary = pl.concat(
        [
            ranked.filter(pl.col("_rank") <= TOP_VALUES).select("pair", "attribute", "value"),
            others.select(pair="pooled", attribute="attribute", value=pl.lit(OTHER)),
        ]
    )
    # Pair ids are dense (0 to pairs - 1): a lookup by position needs no hashing.
    lookup = (
        pl.DataFrame({"pair": pl.arange(0, pairs.height, dtype=pl.UInt32, eager=True)})
        .join(pooling, on="pair", how="left")
        .sort("pair")
        .get_column("pooled")
    )
    mapped = facts.with_columns(pooled=lookup.gather(facts.get_column("pair")))
    pooled = pl.concat(
        [
            # A top value stays one pair per unit; only pooling can make duplicates.
            mapped.filter(pl.col("pooled") == pl.col("pair")).select("_unit", "pair"),
            _distinct(
                mapped.filter(pl.col("pooled") != pl.col("pair")).select("_unit", pair="pooled")
            ),
        ]
    )
    bands, band_pairs = _token_bands(numeric, first_pair=pairs.height + others.height)
    return Candidates(
        facts=pl.concat([pooled, bands]),
        pairs=pl.concat([dictionary, band_pairs]),
        numeric=numeric,
    )


#: Token-count bands (powers of 4 from 64): long prompts or answers as a categorical value too.
TOKEN_BANDS = (64, 256, 1024, 4096)


def _token_bands(numeric: pl.DataFrame, *, first_pair: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A derived categorical candidate ``KEY band`` for each numeric attribute counting tokens
    (its key mentions "token"), e.g. ``gen_ai.usage.input_tokens band = 256-1023``: (facts,
    pairs) with pair ids from ``first_pair`` on."""
    number = pl.col("number")
    label: pl.Expr = pl.lit(f">={TOKEN_BANDS[-1]}")
    for low, high in reversed(list(itertools.pairwise(TOKEN_BANDS))):
        label = pl.when(number < high).then(pl.lit(f"{low}-{high - 1}")).otherwise(label)
    label = pl.when(number < TOKEN_BANDS[0]).then(pl.lit(f"<{TOKEN_BANDS[0]}")).otherwise(label)
    banded = numeric.filter(pl.col("attribute").str.contains("token")).select(
        "_unit", attribute=pl.col("attribute") + " band", value=label
    )
    pairs = (
        banded.select("attribute", "value")
        .unique()
        .sort("attribute", "value")
        .with_row_index("pair", offset=first_pair)
    )
    facts = banded.join(pairs, on=["attribute", "value"]).select("_unit", "pair")
    return facts, pairs.select("pair", "attribute", "value")


# ---------------------------------------------------------------- tests
