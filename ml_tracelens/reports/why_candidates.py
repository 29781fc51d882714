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
from concurrent.futures import ThreadPoolExecutor
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
    # The attribute texts take most of the work, on one core (string scans): they are read on
    # a thread of their own while the other columns are (polars releases the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        attributes = (
            pool.submit(_attribute_source, members, "attributes")
            if "attributes" in members.columns
            else None
        )
        sources = [
            _builtin_source(members, name, column)
            for name, column in BUILTIN.items()
            if not (skip_status and name == "status")
        ]
        # Without the attribute columns (a library caller's load(attributes=False)) there are
        # only the built-in candidates.
        if "resource" in members.columns:
            sources.append(_attribute_source(members, "resource"))
        if attributes is not None:
            sources.append(attributes.result())
    attribute_sources = ("resource" in members.columns) + (attributes is not None)
    items = pl.concat(
        [p.items.with_columns(source=pl.lit(i, pl.UInt32)) for i, (_, p) in enumerate(sources)]
    ).filter(pl.col("attribute") != "service.name")
    # Pair ids in no particular order: every ranking and every output is sorted by text.
    grouped = items.group_by("attribute", "value").agg("source", "item").with_row_index("pair")
    pairs = grouped.select("pair", "attribute", "value")
    item_pairs = grouped.select("pair", "source", "item").explode("source", "item")
    held = [
        units.join(
            parsed.links.join(item_pairs.filter(pl.col("source") == i), on="item").select(
                "code", "pair"
            ),
            on="code",
        ).select("_unit", "pair")
        for i, (units, parsed) in enumerate(sources)
    ]
    # A built-in candidate's codes are its values, one pair each, and no other source has its
    # pairs: only the attribute columns' facts can repeat (two spans of a unit, or a key in
    # both the span's and the resource's attributes).
    builtins = len(sources) - attribute_sources
    repeating = [_distinct(pl.concat(held[builtins:]))] if attribute_sources else []
    facts = pl.concat([*held[:builtins], *repeating])
    return _classified(facts, pairs)


def _builtin_source(members: pl.DataFrame, name: str, column: str) -> tuple[pl.DataFrame, Parsed]:
    """(``_unit``, ``code``) and the items of a built-in candidate: a value per code."""
    units, texts = _coded(members, pl.col(column).cast(pl.String))
    links = texts.select("code", item=pl.col("code").cast(pl.UInt64))
    items = texts.select(item=pl.col("code").cast(pl.UInt64), attribute=pl.lit(name), value="_text")
    return units, Parsed(links=links, items=items)


def _attribute_source(members: pl.DataFrame, column: str) -> tuple[pl.DataFrame, Parsed]:
    """(``_unit``, ``code``) and the items of a column of attribute texts."""
    units, texts = _coded(members, pl.col(column))
    parsed = _parsed(texts)
    # An attribute named like a built-in candidate keeps its own name apart.
    named = parsed.items.with_columns(
        attribute=pl.when(pl.col("attribute").is_in(list(BUILTIN)))
        .then("attr." + pl.col("attribute"))
        .otherwise("attribute")
    )
    return units, Parsed(links=parsed.links, items=named)


def _distinct(facts: pl.DataFrame, second: str = "pair") -> pl.DataFrame:
    """Unique (``_unit``, ``second``) rows of two UInt32 columns: hashed as one 64-bit key,
    three times as fast as two."""
    key = pl.col("_unit").cast(pl.UInt64) * _SHIFT + pl.col(second).cast(pl.UInt64)
    return facts.select(_key=key.unique()).select(
        _unit=(pl.col("_key") // _SHIFT).cast(pl.UInt32),
        **{second: (pl.col("_key") % _SHIFT).cast(pl.UInt32)},
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
    units = _distinct(coded.select("_unit", "code"), "code")
    # The first row of each code, found on the integers alone; only those texts are copied.
    first = coded.select("code").with_row_index("_row").unique("code").get_column("_row")
    texts = coded.gather(first).select("code", pl.col("_text").cast(pl.String))
    return units, texts


# A JSON string; an attribute of an OTLP KeyValue list with a scalar value; an object member
# with a scalar value. Groups: the key, then the value (a JSON string or a bare token).
_STRING = r'"(?:[^"\\]|\\.)*"'
_SCALAR_VALUE = (
    r'"value"\s*:\s*\{\s*"(?:stringValue|intValue|doubleValue|boolValue)"\s*:\s*('
    + _STRING
    + r"|[^,}\s]+)\s*\}"
)
_LIST_PAIR = r'\{\s*"key"\s*:\s*(' + _STRING + r")\s*,\s*" + _SCALAR_VALUE + r"\s*\}"
_OBJECT_PAIR = "(" + _STRING + r")\s*:\s*(" + _STRING + r"|-?[0-9][0-9.eE+-]*|true|false)"
# A compact KeyValue list (what exporters write) is cut into its pairs at this text, which valid
# JSON never holds inside a string (a quote there would be escaped, or close the string before
# a bare word). What lies between two cuts is one ``"KEY","value":{...}``, or the text is read
# another way.
_COMPACT_START, _COMPACT_END, _COMPACT_CUT = '[{"key":', "}]", '},{"key":'
_COMPACT_PIECE = "^(" + _STRING + r")\s*,\s*" + _SCALAR_VALUE + "$"


@dataclass(frozen=True)
class Parsed:
    """The scalar attributes of a column's texts: ``links`` (``code``, ``item``) which texts
    hold which items, and ``items`` (``item``, ``attribute``, ``value``), each distinct
    attribute-value spelling once, values as text (numbers and booleans as JSON writes them)."""

    links: pl.DataFrame
    items: pl.DataFrame


def _parsed(texts: pl.DataFrame) -> Parsed:
    """The scalar attributes of each JSON text (``code``, ``_text``); nested values are no
    candidates.

    Compact KeyValue lists are cut into pairs and each distinct pair read once; other common
    layouts are read with one pattern each over all texts at once; a text the patterns might
    misread (nested values, a list whose pairs do not all match) is parsed. Items keep the
    reading they came from in their top bits, so the readings' ids never meet."""
    texts = texts.filter(~pl.col("_text").is_in(["{}", "[]", ""]))
    compact, rest = _compact_lists(texts)
    found, fallback = _pattern_pairs(rest)
    raw = [compact, found]
    rows = [
        (code, key, value)
        for code, text in fallback.select("code", "_text").iter_rows()
        for key, value in _scalars(text)
    ]
    schema = {"code": pl.UInt32, "attribute": pl.String, "value": pl.String}
    parsed = pl.DataFrame(rows, schema=schema, orient="row")
    parsed_items = parsed.select("attribute", "value").unique().with_row_index("item")
    read = pl.concat(
        [
            part.items.select(
                pl.col("item").cast(pl.UInt64) + (reading << 32), "attribute", "value"
            )
            for reading, part in enumerate(raw)
        ]
    )
    escaped = pl.col("attribute").str.contains("\\", literal=True) | pl.col("value").str.contains(
        "\\", literal=True
    )
    quoted = pl.col("value").str.starts_with('"')
    plain = read.filter(~escaped).select(
        "item",
        attribute=pl.col("attribute").str.slice(1, pl.col("attribute").str.len_chars() - 2),
        value=pl.when(quoted)
        .then(pl.col("value").str.slice(1, pl.col("value").str.len_chars() - 2))
        .otherwise("value"),
    )
    unescaped = pl.DataFrame(
        [
            (item, orjson.loads(key), orjson.loads(value) if value.startswith('"') else value)
            for item, key, value in read.filter(escaped).iter_rows()
        ],
        schema={"item": pl.UInt64, "attribute": pl.String, "value": pl.String},
        orient="row",
    )
    python = len(raw) << 32
    return Parsed(
        links=pl.concat(
            [
                *(
                    part.links.select("code", pl.col("item").cast(pl.UInt64) + (reading << 32))
                    for reading, part in enumerate(raw)
                ),
                parsed.join(parsed_items, on=["attribute", "value"]).select(
                    "code", pl.col("item").cast(pl.UInt64) + python
                ),
            ]
        ),
        items=pl.concat(
            [
                plain,
                unescaped,
                parsed_items.select(pl.col("item").cast(pl.UInt64) + python, "attribute", "value"),
            ]
        ),
    )


def _compact_lists(texts: pl.DataFrame) -> tuple[Parsed, pl.DataFrame]:
    """The items (raw: keys and string values quoted, as JSON spells them) of the compact
    KeyValue lists whose every pair is a scalar one, and the texts left for the other
    readings."""
    text = pl.col("_text")
    inner = text.str.slice(
        len(_COMPACT_START), text.str.len_bytes() - len(_COMPACT_START) - len(_COMPACT_END)
    )
    compact = text.str.starts_with(_COMPACT_START) & text.str.ends_with(_COMPACT_END)
    pieces = (
        texts.filter(compact)
        .select("code", _piece=inner.str.split(_COMPACT_CUT))
        .explode("_piece")
        .with_columns(item=pl.col("_piece").cast(pl.Categorical).to_physical())
    )
    # A handful of distinct pairs repeat over all texts: each is matched once.
    items = (
        pieces.unique("item")
        .select("item", _groups=pl.col("_piece").str.extract_groups(_COMPACT_PIECE))
        .unnest("_groups")
        .rename({"1": "attribute", "2": "value"})
    )
    misread = (
        pieces.join(items.filter(pl.col("attribute").is_null()), on="item", how="semi")
        .get_column("code")
        .implode()
    )
    return (
        Parsed(
            links=pieces.filter(~pl.col("code").is_in(misread)).select("code", "item"),
            items=items.filter(pl.col("attribute").is_not_null()),
        ),
        texts.filter(~compact | pl.col("code").is_in(misread)),
    )


def _pattern_pairs(texts: pl.DataFrame) -> tuple[Parsed, pl.DataFrame]:
    """The items (raw) of the texts one pattern reads whole (a KeyValue list of scalar pairs,
    an object without nesting), and the texts left to parse."""
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
    texts = texts.with_columns(_list=is_list, _simple=simple)
    matches = []
    for listed, pattern in ((True, _LIST_PAIR), (False, _OBJECT_PAIR)):
        matches.append(
            texts.filter(pl.col("_simple") & (pl.col("_list") == listed))
            .select("code", _match=text.str.extract_all(pattern), _pattern=pl.lit(pattern))
            .explode("_match")
            .drop_nulls("_match")
        )
    found = pl.concat(matches)
    distinct = found.select("_match", "_pattern").unique().with_row_index("item")
    items = pl.concat(
        [
            distinct.filter(pl.col("_pattern") == pattern).select(
                "item", _groups=pl.col("_match").str.extract_groups(pattern)
            )
            for pattern in (_LIST_PAIR, _OBJECT_PAIR)
        ]
    ).unnest("_groups")
    return (
        Parsed(
            links=found.join(distinct, on=["_match", "_pattern"]).select("code", "item"),
            items=items.rename({"1": "attribute", "2": "value"}),
        ),
        texts.filter(~pl.col("_simple")),
    )


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
