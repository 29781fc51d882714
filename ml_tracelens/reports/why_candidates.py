"""The candidates of ``tracelens why``: from what each unit holds (``why_holdings``), the
(attribute, value) pairs tested on the units of one run.

Attributes whose every value is a number (more than ``TOP_VALUES`` of them) are numeric; of the
others, the ``TOP_VALUES`` most common values are candidates one by one and the rest are pooled
as ``OTHER``; identifier-like attributes (nearly a value per unit) are no candidates. Token
counts are also banded (``TOKEN_BANDS``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.attribute_pairs import parse
from ml_tracelens.core.tree import filled
from ml_tracelens.reports.why_holdings import (
    BUILTIN,
    TOP_VALUES,
    Holdings,
    distinct,
    holds,
    word_column,
)

#: How the candidates read a column's distinct texts (the tests of the readings call it here).
_parsed = parse
#: What the values beyond the ``TOP_VALUES`` most common of an attribute are pooled as.
OTHER = "(other)"


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
            having = [holds(words) for words in self._words()]
            sums = self.flags.with_columns(_selected=in_selection).select(
                *(h.and_(pl.col("_selected")).sum().alias(f"s{i}") for i, h in enumerate(having)),
                *(h.sum().alias(f"t{i}") for i, h in enumerate(having)),
            )
            chosen, total = sums.row(0)[: len(having)], sums.row(0)[len(having) :]
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
            return holds(bits.drop("pair").row(0))
        units = self.facts.filter(pl.col("pair") == pair).get_column("_unit")
        return pl.lit(filled(False, unit_count, pl.Boolean).scatter(units, True))

    def _words(self) -> list[tuple[int, ...]]:
        return self.masks.drop("pair").rows()


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
        (((pl.col(word_column(word)) & pl.lit(bit, pl.UInt64)) != 0).sum().alias(str(pair)))
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
            distinct(
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
    schema = {"pair": pl.UInt32, **{word_column(k): pl.UInt64 for k in range(words)}}
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
