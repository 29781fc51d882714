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


#: A categorical attribute of at most this many values (and no numeric one) is counted from a
#: bit per value in 64-bit words per unit, not from (unit, value) rows: a stage, a service or a
#: resource attribute is held by most units, so its rows would be most of the facts.
MASK_VALUES = 64
#: The words a unit's bits take at most; attributes of fewer values are given bits first.
MASK_WORDS = 4


@dataclass(frozen=True)
class Candidates:
    """What the units have: ``pairs`` (``pair``, ``attribute``, ``value``), each categorical
    candidate tested (the rare values of an attribute pooled as ``OTHER``), held by units as
    rows or as bits. ``facts`` (``_unit``, ``pair``) unique: the rows. ``flags`` (``_unit``,
    ``_w0``...): the bits a unit holds (of its member spans' values), and ``masks`` (``pair``,
    ``_w0``...): the bits that give a unit each pair (any one of them); ``words``, the bits
    of every unit (row ``u`` is unit ``u``, tested or not). ``numeric`` (``_unit``,
    ``attribute``, ``number``): a unit's largest value of each numeric attribute."""

    pairs: pl.DataFrame
    facts: pl.DataFrame
    flags: pl.DataFrame
    masks: pl.DataFrame
    words: pl.DataFrame
    numeric: pl.DataFrame

    def counts(self, selected: pl.Series) -> pl.DataFrame:
        """(``pair``, ``selection_count``, ``baseline_count``) of every tested pair: how many of
        the ``selected`` units (a flag per unit id, by position) and of the others have it."""
        facts = self.facts
        counted = [
            facts.with_columns(_selected=selected.gather(facts.get_column("_unit")))
            .group_by("pair")
            .agg(
                selection_count=pl.col("_selected").sum().cast(pl.Int64),
                baseline_count=(~pl.col("_selected")).sum().cast(pl.Int64),
            )
        ]
        if not self.masks.is_empty():
            in_selection = selected.gather(self.flags.get_column("_unit"))
            holds = [_holds(words) for words in self._words()]
            sums = self.flags.with_columns(_selected=in_selection).select(
                *(h.and_(pl.col("_selected")).sum().alias(f"s{i}") for i, h in enumerate(holds)),
                *(h.sum().alias(f"t{i}") for i, h in enumerate(holds)),
            )
            chosen, total = sums.row(0)[: len(holds)], sums.row(0)[len(holds) :]
            counted.append(
                pl.DataFrame(
                    {
                        "pair": self.masks.get_column("pair"),
                        "selection_count": chosen,
                        "baseline_count": [t - c for t, c in zip(total, chosen, strict=True)],
                    },
                    schema=counted[0].schema,
                )
            )
        return pl.concat(counted)

    def having(self, pair: int, unit_count: int) -> pl.Expr:
        """Whether each unit has ``pair``: over the columns of ``words`` for a pair counted by
        bits, else a flag per unit id (of ``unit_count``)."""
        bits = self.masks.filter(pl.col("pair") == pair)
        if bits.height:
            return _holds(bits.drop("pair").row(0))
        units = self.facts.filter(pl.col("pair") == pair).get_column("_unit")
        return pl.lit(filled(False, unit_count, pl.Boolean).scatter(units, True))

    def _words(self) -> list[tuple[int, ...]]:
        return self.masks.drop("pair").rows()


def _holds(words: tuple[int, ...]) -> pl.Expr:
    """Whether a unit's flags hold any of the bits of ``words``."""
    return pl.any_horizontal(
        (pl.col(_word(k)) & pl.lit(word, pl.UInt64)) != 0 for k, word in enumerate(words) if word
    )


def _word(index: int) -> str:
    return f"_w{index}"


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
    repeating = [_distinct(pl.concat(held[builtins:]))] if len(sources) > builtins else []
    return Holdings(
        pairs=pairs_table.join(bits, on="pair", how="left"),
        words=words,
        facts=pl.concat([*held[:builtins], *repeating]),
    )


def candidates(holdings: Holdings, in_test: pl.Series, *, skip_status: bool) -> Candidates:
    """The candidates of the units ``in_test`` (a flag per unit id, by position); without the
    built-in ``status`` with ``skip_status`` (the selection is made of it)."""
    # Pair ids stay dense (the lookups by position need them so): a value left out is one no
    # fact and no bit counts.
    pairs = holdings.pairs
    counting = pairs.filter(pl.col("attribute") != "status") if skip_status else pairs
    counted = filled(False, pairs.height, pl.Boolean).scatter(counting.get_column("pair"), True)
    facts = holdings.facts.filter(
        in_test.gather(holdings.facts.get_column("_unit"))
        & counted.gather(holdings.facts.get_column("pair"))
    )
    flags = (
        holdings.words.with_row_index("_unit").filter(in_test)
        if holdings.words.width
        else pl.DataFrame(schema={"_unit": pl.UInt32})
    )
    bits = counting.filter(pl.col("bit").is_not_null()).select("pair", "word", "bit")
    return _classified(
        facts, pairs.select("pair", "attribute", "value", "number"), flags, bits, holdings.words
    )


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
        return _distinct(coded, "code").join(holding, on="code").select("_unit", "pair")

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


def _distinct(facts: pl.DataFrame, second: str = "pair") -> pl.DataFrame:
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
    frame = pl.DataFrame({"_unit": units, **{_word(k): w for k, w in enumerate(member_words)}})
    per_unit = frame.group_by("_unit").agg(pl.col(_word(k)).bitwise_or() for k in range(words))
    return pl.DataFrame(
        {
            _word(k): filled(0, unit_count, pl.UInt64).scatter(
                per_unit.get_column("_unit"), per_unit.get_column(_word(k))
            )
            for k in range(words)
        }
    )


def _classified(
    facts: pl.DataFrame,
    pairs: pl.DataFrame,
    flags: pl.DataFrame,
    bits: pl.DataFrame,
    words: pl.DataFrame,
) -> Candidates:
    """Numeric attributes apart (every value a number, more than ``TOP_VALUES`` of them),
    identifiers left out (about one unit per value: no value can be tested), and the values of
    the rest beyond their ``TOP_VALUES`` most common pooled as OTHER; the values counted by
    bits (``bits``, held per tested unit in ``flags``, per unit in ``words``) stay bits, OTHER
    the union of its values'."""
    from_rows = facts.group_by("pair").agg(units=pl.len())
    from_bits = flags.select(
        (((pl.col(_word(word)) & pl.lit(bit, pl.UInt64)) != 0).sum().alias(str(pair)))
        for pair, word, bit in bits.iter_rows()
    )
    held = pl.concat(
        [
            from_rows,
            pl.DataFrame(
                {
                    "pair": bits.get_column("pair"),
                    "units": from_bits.row(0) if from_bits.width else [],
                },
                schema=from_rows.schema,
            ),
        ]
    )
    info = pairs.join(held.filter(pl.col("units") > 0), on="pair")
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
        pairs=pl.concat([dictionary, band_pairs]),
        facts=pl.concat([pooled, bands]),
        flags=flags,
        masks=_masks(bits, pooling, words=flags.width - 1),
        words=words,
        numeric=numeric,
    )


def _masks(bits: pl.DataFrame, pooling: pl.DataFrame, *, words: int) -> pl.DataFrame:
    """(``pair``, ``_w0``...): the bits of each tested pair counted by bits, an OTHER's the
    union of its values' (``pooling``: ``pair``, ``pooled``, a tested pair per value)."""
    union: dict[int, list[int]] = {}
    for pooled, word, bit in bits.join(pooling, on="pair").select("pooled", "word", "bit").rows():
        union.setdefault(pooled, [0] * words)[word] |= bit
    schema = {"pair": pl.UInt32, **{_word(k): pl.UInt64 for k in range(words)}}
    return pl.DataFrame(
        [(pair, *mask) for pair, mask in sorted(union.items())], schema=schema, orient="row"
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
