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

import polars as pl

from ml_tracelens.core.attribute_pairs import COLUMNS, AttributePairs, Held, parse
from ml_tracelens.core.tree import dense_codes, filled, int_max

#: How the candidates read a column's distinct texts (the tests of the readings call it here).
_parsed = parse
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


def candidates(members: pl.DataFrame, *, skip_status: bool, pairs: AttributePairs) -> Candidates:
    """Every unit's (attribute, value) pairs, as integer ids.

    The member spans carry the code of their attribute texts (``code_column``), whose items
    were parsed once per distinct text (``pairs``), and a handful of resources and stage
    names: a unit's pairs are looked up by position from its codes, never joined on text."""
    sources = [
        _builtin_source(members, name, column)
        for name, column in BUILTIN.items()
        if not (skip_status and name == "status")
    ]
    # Without the attribute columns (a library caller's load(attributes=False)) there are only
    # the built-in candidates.
    builtins = len(sources)
    sources += [
        _attribute_source(members, column, pairs.columns[column])
        for column in reversed(COLUMNS)
        if column in pairs.columns
    ]
    items = pl.concat(
        [s.items.with_columns(source=pl.lit(i, pl.UInt32)) for i, s in enumerate(sources)]
    ).filter(pl.col("attribute") != "service.name")
    # Pair ids in no particular order: every ranking and every output is sorted by text.
    grouped = items.group_by("attribute", "value").agg("source", "item").with_row_index("pair")
    pairs_table = grouped.select("pair", "attribute", "value")
    item_pairs = grouped.select("pair", "source", "item").explode("source", "item")
    held = [
        source.facts(item_pairs.filter(pl.col("source") == i)) for i, source in enumerate(sources)
    ]
    # A built-in candidate's codes are its values, one pair each, and no other source has its
    # pairs: only the attribute columns' facts can repeat (two spans of a unit, or a key in
    # both the span's and the resource's attributes).
    repeating = [_distinct(pl.concat(held[builtins:]))] if len(sources) > builtins else []
    facts = pl.concat([*held[:builtins], *repeating])
    return _classified(facts, pairs_table)


def code_column(column: str) -> str:
    """The member column holding the codes of an attribute column's texts."""
    return f"_{column}_code"


@dataclass(frozen=True)
class _Source:
    """Where candidates come from: ``units`` (``_unit``, ``code``) unique, the ``items``
    (``item``, ``attribute``, ``value``), and which items each code holds: ``held`` (a list
    per code, by position), or for a built-in candidate the code's own item (the same id)."""

    units: pl.DataFrame
    items: pl.DataFrame
    held: pl.Series | None

    def facts(self, item_pairs: pl.DataFrame) -> pl.DataFrame:
        """(``_unit``, ``pair``) of the items that have a pair in ``item_pairs``."""
        item = item_pairs.get_column("item")
        size = int_max(self.items.get_column("item")) + 1
        pair_of_item = filled(None, size, pl.UInt32).scatter(item, item_pairs.get_column("pair"))
        if self.held is None:
            unit_items = self.units.rename({"code": "item"})
        else:
            unit_items = (
                self.units.select("_unit", item=self.held.gather(self.units.get_column("code")))
                .explode("item")
                .drop_nulls("item")
            )
        return unit_items.select(
            "_unit", pair=pair_of_item.gather(unit_items.get_column("item"))
        ).drop_nulls("pair")


def _builtin_source(members: pl.DataFrame, name: str, column: str) -> _Source:
    """A built-in candidate: a value per code."""
    units, texts = _coded(members, column)
    items = texts.select(item=pl.col("code"), attribute=pl.lit(name), value="_text")
    return _Source(units=units, items=items, held=None)


def _attribute_source(members: pl.DataFrame, column: str, parsed: Held) -> _Source:
    """A column of attribute texts: the items its codes hold."""
    coded = members.select("_unit", code=pl.col(code_column(column))).drop_nulls("code")
    # An attribute named like a built-in candidate keeps its own name apart.
    named = parsed.items.select(
        item=pl.int_range(0, pl.len(), dtype=pl.UInt32),
        attribute=pl.when(pl.col("attribute").is_in(list(BUILTIN)))
        .then("attr." + pl.col("attribute"))
        .otherwise("attribute"),
        value="value",
    )
    return _Source(units=_distinct(coded, "code"), items=named, held=parsed.held)


def _distinct(facts: pl.DataFrame, second: str = "pair") -> pl.DataFrame:
    """Unique (``_unit``, ``second``) rows of two UInt32 columns: hashed as one 64-bit key,
    three times as fast as two."""
    key = pl.col("_unit").cast(pl.UInt64) * _SHIFT + pl.col(second).cast(pl.UInt64)
    return facts.select(_key=key.unique()).select(
        _unit=(pl.col("_key") // _SHIFT).cast(pl.UInt32),
        **{second: (pl.col("_key") % _SHIFT).cast(pl.UInt32)},
    )


_SHIFT = 1 << 32


def _coded(members: pl.DataFrame, column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(``_unit``, ``code``) unique and (``code``, ``_text``) distinct, for a column of the
    member spans (nulls left out)."""
    values = members.get_column(column)
    codes, first = dense_codes(values)
    texts = pl.DataFrame(
        {"code": codes.gather(first), "_text": values.gather(first).cast(pl.String)}
    )
    coded = members.select("_unit", code=codes).drop_nulls("code")
    return _distinct(coded, "code"), texts


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
    numeric = _numeric(facts, info, numeric_names, pairs.height)
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


def _numeric(
    facts: pl.DataFrame, info: pl.DataFrame, names: pl.Series, pair_count: int
) -> pl.DataFrame:
    """(``_unit``, ``attribute``, ``number``): each unit's largest value of each numeric
    attribute (``names``), the facts' pairs (numbered from 0) looked up by position."""
    names = names.sort()
    of_numeric = info.filter(pl.col("attribute").is_in(names.implode())).with_columns(
        _attribute=pl.col("attribute").replace_strict(
            names, pl.arange(0, names.len(), dtype=pl.UInt32, eager=True), return_dtype=pl.UInt32
        )
    )
    numeric_pairs = of_numeric.get_column("pair")
    is_numeric = filled(False, pair_count, pl.Boolean).scatter(numeric_pairs, True)
    attribute = filled(None, pair_count, pl.UInt32).scatter(
        numeric_pairs, of_numeric.get_column("_attribute")
    )
    number = filled(None, pair_count, pl.Float64).scatter(
        numeric_pairs, of_numeric.get_column("number")
    )
    # Few facts are numeric ones: they are picked out first, and only theirs looked up.
    chosen = facts.filter(is_numeric.gather(facts.get_column("pair")))
    pair = chosen.get_column("pair")
    largest = (
        chosen.select("_unit", _attribute=attribute.gather(pair), number=number.gather(pair))
        .group_by("_unit", "_attribute")
        .agg(pl.col("number").max())
    )
    return largest.select(
        "_unit", attribute=names.gather(largest.get_column("_attribute")), number="number"
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
