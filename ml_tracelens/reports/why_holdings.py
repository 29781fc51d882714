"""What each unit of ``tracelens why`` holds, whatever is selected: the (attribute, value)
pairs of its member spans, as integer ids.

A unit (a request, or a span of one stage) has an (attribute, value) when any of its member
spans has it: the span and resource attributes and the built-in ``service``, ``stage`` and
``status``. A million spans hold far fewer distinct attribute texts, so each text is parsed once
(``core.attribute_pairs``) and only integers are looked up. An attribute of few values
(``MASK_VALUES``) is a bit per value in 64-bit words per unit, so that counting its units is a
sum over one row per unit; the others are (unit, value) rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.attribute_pairs import COLUMNS, AttributePairs, Held
from ml_tracelens.core.tree import dense_codes, filled, int_max

#: Values of a categorical attribute tested one by one; the rest are pooled as OTHER.
TOP_VALUES = 10
#: The candidates every span has, by their name in the report: the span column they come from.
BUILTIN = {"service": "service", "stage": "name", "status": "status"}


#: A categorical attribute of at most this many values (and no numeric one) is counted from a
#: bit per value in 64-bit words per unit, not from (unit, value) rows: a stage, a service or a
#: resource attribute is held by most units, so its rows would be most of the facts.
MASK_VALUES = 64
#: The words a unit's bits take at most; attributes of fewer values are given bits first.
MASK_WORDS = 4


@dataclass(frozen=True)
class Holdings:
    """What each unit holds, whatever is selected: ``pairs`` (``pair``, ``attribute``,
    ``value``, ``number``, ``word``, ``bit``) every value some member span has, with its bit
    (null for a value counted by rows); ``words`` (``_w0``...; row ``u`` is unit ``u``) the
    bits each unit holds; ``facts`` (``_unit``, ``pair``) unique, the values counted by rows."""

    pairs: pl.DataFrame
    words: pl.DataFrame
    facts: pl.DataFrame


def holdings(members: pl.DataFrame, pairs: AttributePairs, unit_count: int) -> Holdings:
    """What each of ``unit_count`` units holds, from its member spans (tagged with ``_unit``).

    The member spans carry the code of their attribute texts (``code_column``), whose items
    were parsed once per distinct text (``pairs``), and a handful of resources and stage
    names: what a unit holds is looked up by position from its codes, never joined on text."""
    sources = [_builtin_source(members, name, column) for name, column in BUILTIN.items()]
    # Without the attribute columns (a library caller's load(attributes=False)) there are only
    # the built-in candidates.
    builtins = len(sources)
    sources += [
        _attribute_source(members, column, pairs.columns[column])
        for column in reversed(COLUMNS)
        if column in pairs.columns
    ]
    present = [source.present() for source in sources]
    items = pl.concat(
        [
            source.items.join(of_codes.select("item").unique(), on="item", how="semi").with_columns(
                source=pl.lit(i, pl.UInt32)
            )
            for i, (source, of_codes) in enumerate(zip(sources, present, strict=True))
        ]
    ).filter(pl.col("attribute") != "service.name")
    # Pair ids in no particular order: every ranking and every output is sorted by text.
    grouped = items.group_by("attribute", "value").agg("source", "item").with_row_index("pair")
    pairs_table = grouped.select("pair", "attribute", "value").with_columns(
        number=pl.col("value").cast(pl.Float64, strict=False)
    )
    item_pairs = grouped.select("pair", "source", "item").explode("source", "item")
    bits = _bits(pairs_table)
    masked = filled(False, pairs_table.height, pl.Boolean).scatter(bits.get_column("pair"), True)
    units = members.get_column("_unit")
    words = _words(units, unit_count, sources, present, item_pairs, bits)
    rows = item_pairs.filter(~masked.gather(item_pairs.get_column("pair")))
    held = [
        source.facts(units, of_codes, rows.filter(pl.col("source") == i))
        for i, (source, of_codes) in enumerate(zip(sources, present, strict=True))
    ]
    # A built-in candidate's codes are its values, one pair each, and no other source has its
    # pairs: only the attribute columns' facts can repeat (two spans of a unit, or a key in
    # both the span's and the resource's attributes).
    repeating = [distinct(pl.concat(held[builtins:]))] if len(sources) > builtins else []
    return Holdings(
        pairs=pairs_table.join(bits, on="pair", how="left"),
        words=words,
        facts=pl.concat([*held[:builtins], *repeating]),
    )


def holds(words: tuple[int, ...]) -> pl.Expr:
    """Whether a unit's flags hold any of the bits of ``words``."""
    return pl.any_horizontal(
        (pl.col(word_column(k)) & pl.lit(word, pl.UInt64)) != 0
        for k, word in enumerate(words)
        if word
    )


def word_column(index: int) -> str:
    return f"_w{index}"


def code_column(column: str) -> str:
    """The member column holding the codes of an attribute column's texts."""
    return f"_{column}_code"


@dataclass(frozen=True)
class _Source:
    """Where candidates come from: ``codes``, a code per member span (null for none); the
    ``items`` (``item``, ``attribute``, ``value``); and which items each code holds: ``held`` (a
    list per code, by position), or for a built-in candidate the code's own item (the same id)."""

    codes: pl.Series
    items: pl.DataFrame
    held: pl.Series | None

    def present(self) -> pl.DataFrame:
        """(``code``, ``item``): the items of each code some member span has, in code order."""
        if self.held is None:
            item = self.items.get_column("item")
            return pl.DataFrame({"code": item, "item": item})
        seen = filled(False, self.held.len(), pl.Boolean).scatter(self.codes.drop_nulls(), True)
        # Every code's items at once (a flat copy), then those of the codes seen: a tenth of the
        # time of taking the seen codes' lists first.
        every = self.held.to_frame("item").with_row_index("code").explode("item")
        return every.filter(seen.gather(every.get_column("code"))).drop_nulls("item")

    def facts(
        self, units: pl.Series, present: pl.DataFrame, item_pairs: pl.DataFrame
    ) -> pl.DataFrame:
        """(``_unit``, ``pair``) of the items that have a pair in ``item_pairs``, of the
        members (their ``units``); ``present``: the items of their codes."""
        schema = {"_unit": pl.UInt32, "pair": pl.UInt32}
        if item_pairs.is_empty():
            return pl.DataFrame(schema=schema)
        size = int_max(self.items.get_column("item")) + 1
        pair_of_item = filled(None, size, pl.UInt32).scatter(
            item_pairs.get_column("item"), item_pairs.get_column("pair")
        )
        # Only the members whose code holds such an item are made unique and expanded.
        holding = present.select(
            "code", pair=pair_of_item.gather(present.get_column("item"))
        ).drop_nulls("pair")
        wanted = filled(False, self.code_count(), pl.Boolean).scatter(
            holding.get_column("code"), True
        )
        coded = pl.DataFrame({"_unit": units, "code": self.codes}).filter(wanted.gather(self.codes))
        return distinct(coded, "code").join(holding, on="code").select("_unit", "pair")

    def code_count(self) -> int:
        return self.items.height if self.held is None else self.held.len()


def _builtin_source(members: pl.DataFrame, name: str, column: str) -> _Source:
    """A built-in candidate: a value per code."""
    values = members.get_column(column)
    codes, first = dense_codes(values)
    items = pl.DataFrame(
        {
            "item": pl.arange(0, first.len(), dtype=pl.UInt32, eager=True),
            "attribute": pl.repeat(name, first.len(), dtype=pl.String, eager=True),
            "value": values.gather(first).cast(pl.String),
        }
    )
    return _Source(codes=codes, items=items, held=None)


def _attribute_source(members: pl.DataFrame, column: str, parsed: Held) -> _Source:
    """A column of attribute texts: the items its codes hold."""
    # An attribute named like a built-in candidate keeps its own name apart.
    named = parsed.items.select(
        item=pl.int_range(0, pl.len(), dtype=pl.UInt32),
        attribute=pl.when(pl.col("attribute").is_in(list(BUILTIN)))
        .then("attr." + pl.col("attribute"))
        .otherwise("attribute"),
        value="value",
    )
    return _Source(codes=members.get_column(code_column(column)), items=named, held=parsed.held)


def distinct(facts: pl.DataFrame, second: str = "pair") -> pl.DataFrame:
    """Unique (``_unit``, ``second``) rows of two UInt32 columns: hashed as one 64-bit key,
    three times as fast as two."""
    key = pl.col("_unit").cast(pl.UInt64) * _SHIFT + pl.col(second).cast(pl.UInt64)
    return facts.select(_key=key.unique()).select(
        _unit=(pl.col("_key") // _SHIFT).cast(pl.UInt32),
        **{second: (pl.col("_key") % _SHIFT).cast(pl.UInt32)},
    )


_SHIFT = 1 << 32


def _bits(pairs: pl.DataFrame) -> pl.DataFrame:
    """(``pair``, ``word``, ``bit``): the bit of each value of the attributes counted by bits
    (at most ``MASK_VALUES`` values, not all numbers unless a built-in candidate; those of
    fewest values first, while ``MASK_WORDS`` words hold them)."""
    shape = (
        pairs.group_by("attribute")
        .agg(
            values=pl.len(),
            numeric=pl.col("number").is_not_null().all() & (pl.len() > TOP_VALUES),
        )
        .filter(
            (pl.col("values") <= MASK_VALUES)
            & (~pl.col("numeric") | pl.col("attribute").is_in(list(BUILTIN)))
        )
        .sort("values", "attribute")
        .filter(pl.col("values").cum_sum() <= MASK_WORDS * 64)
    )
    chosen = pairs.join(shape.select("attribute"), on="attribute").sort("attribute", "value")
    indexes = range(chosen.height)
    return pl.DataFrame(
        {
            "pair": chosen.get_column("pair"),
            "word": [i // 64 for i in indexes],
            "bit": [1 << (i % 64) for i in indexes],
        },
        schema={"pair": pl.UInt32, "word": pl.UInt32, "bit": pl.UInt64},
    )


def _words(
    units: pl.Series,
    unit_count: int,
    sources: list[_Source],
    present: list[pl.DataFrame],
    item_pairs: pl.DataFrame,
    bits: pl.DataFrame,
) -> pl.DataFrame:
    """(``_w0``...; row ``u`` is unit ``u``): per unit the bits (``bits``) of the values its
    member spans (their ``units``) hold, from each code's bits."""
    words = int_max(bits.get_column("word")) + 1 if not bits.is_empty() else 0
    if not words:
        return pl.DataFrame()
    member_words = [filled(0, units.len(), pl.UInt64) for _ in range(words)]
    for index, (source, of_codes) in enumerate(zip(sources, present, strict=True)):
        of_source = item_pairs.filter(pl.col("source") == index).join(bits, on="pair")
        item_count = int_max(source.items.get_column("item")) + 1
        for word in range(words):
            of_word = of_source.filter(pl.col("word") == word)
            if of_word.is_empty():
                continue
            bit_of_item = filled(0, item_count, pl.UInt64).scatter(
                of_word.get_column("item"), of_word.get_column("bit")
            )
            # ``present`` lists each code's items together, codes in order: grouped in one run.
            code_bits = (
                of_codes.select(
                    pl.col("code").set_sorted(), bit=bit_of_item.gather(of_codes.get_column("item"))
                )
                .filter(pl.col("bit") != 0)
                .group_by("code")
                .agg(pl.col("bit").bitwise_or())
            )
            by_code = filled(0, source.code_count(), pl.UInt64).scatter(
                code_bits.get_column("code"), code_bits.get_column("bit")
            )
            member_words[word] = member_words[word] | by_code.gather(source.codes).fill_null(0)
    frame = pl.DataFrame(
        {"_unit": units, **{word_column(k): w for k, w in enumerate(member_words)}}
    )
    per_unit = frame.group_by("_unit").agg(
        pl.col(word_column(k)).bitwise_or() for k in range(words)
    )
    return pl.DataFrame(
        {
            word_column(k): filled(0, unit_count, pl.UInt64).scatter(
                per_unit.get_column("_unit"), per_unit.get_column(word_column(k))
            )
            for k in range(words)
        }
    )
