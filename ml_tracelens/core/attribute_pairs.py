"""The scalar attribute pairs of a span frame's attribute columns (``attributes``,
``resource``): each span's text as a dense integer code, and the items each code holds.

A million spans hold far fewer distinct attribute texts (a few per request id at most, and a
handful of resources), so each distinct text is parsed once (the common layouts by one pattern
over all texts, the rest by a JSON parser) and the spans keep only its code. Codes and items
are numbered from 0, so that whoever needs the pairs of many spans looks them up by position
(a gather) instead of joining. The analysis cache keeps them with an entry (computed once per
dump), so the command that asks for them again parses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import polars as pl

from ml_tracelens.core.tree import dense_codes
from ml_tracelens.schema import attributes_dict

#: The span columns of attribute texts, in the order their codes are kept.
COLUMNS = ("attributes", "resource")
#: Changes whenever the pairs of a text or their layout change: pairs kept by an older version
#: are not used (the analysis cache stores it with the pairs).
PARSER_VERSION = 1


@dataclass(frozen=True)
class Parsed:
    """The scalar attributes of a column's texts: ``links`` (``code``, ``item``) which texts
    hold which items, and ``items`` (``item``, ``attribute``, ``value``), each distinct
    attribute-value spelling once, values as text (numbers and booleans as JSON writes them)."""

    links: pl.DataFrame
    items: pl.DataFrame


@dataclass(frozen=True)
class Held:
    """What the codes of one attribute column hold: ``items`` (``attribute``, ``value``; row
    ``i`` is item ``i``) and ``held`` (``List[UInt32]``; row ``c`` lists the items of code
    ``c``, empty for a text without scalar attributes)."""

    held: pl.Series
    items: pl.DataFrame


@dataclass(frozen=True)
class AttributePairs:
    """Per attribute column of a span frame: ``codes`` (one ``UInt32`` column per attribute
    column, a row per span in the frame's order, null where the span has no text) and what
    the codes hold (``columns``, by column name)."""

    codes: pl.DataFrame
    columns: dict[str, Held]

    def fits(self, spans: pl.DataFrame) -> bool:
        """Whether these are the pairs of a frame of this many spans (rows in its order)."""
        return self.codes.height == spans.height

    def packed(self) -> pl.DataFrame:
        """What the codes of each attribute column hold, as one table tagged with the column's
        index in ``COLUMNS``: a row per code (``held``: its items) then a row per item
        (``attribute``, ``value``), each in id order."""
        parts = []
        for index, column in enumerate(COLUMNS):
            found = self.columns.get(column)
            if found is None:
                continue
            tag = pl.lit(index, pl.UInt8).alias("column")
            parts += [
                found.held.to_frame("held").select(
                    tag,
                    pl.col("held").cast(pl.List(pl.UInt32)),
                    attribute=pl.lit(None, pl.String),
                    value=pl.lit(None, pl.String),
                ),
                found.items.select(
                    tag, held=pl.lit(None, pl.List(pl.UInt32)), attribute="attribute", value="value"
                ),
            ]
        schema = {
            "column": pl.UInt8(),
            "held": pl.List(pl.UInt32()),
            "attribute": pl.String(),
            "value": pl.String(),
        }
        return pl.concat(parts) if parts else pl.DataFrame(schema=schema)

    @classmethod
    def unpacked(cls, codes: pl.DataFrame, table: pl.DataFrame) -> AttributePairs:
        """The attribute pairs of the codes and the table ``packed`` gives."""
        columns = {}
        for index, column in enumerate(COLUMNS):
            if column not in codes.columns:
                continue
            of_column = table.filter(pl.col("column") == index)
            # An item always has an attribute; a code's row never has one.
            is_code = pl.col("attribute").is_null()
            columns[column] = Held(
                held=of_column.filter(is_code).get_column("held"),
                items=of_column.filter(~is_code).select("attribute", "value"),
            )
        return cls(codes=codes, columns=columns)


def attribute_pairs(spans: pl.DataFrame) -> AttributePairs:
    """The codes and parsed pairs of the attribute columns ``spans`` has."""
    codes: dict[str, pl.Series] = {}
    columns: dict[str, Held] = {}
    for column in COLUMNS:
        if column not in spans.columns:
            continue
        code, texts = coded(spans.get_column(column))
        codes[column] = code
        columns[column] = _held(parse(texts), texts.height)
    return AttributePairs(codes=pl.DataFrame(codes), columns=columns)


def coded(texts: pl.Series) -> tuple[pl.Series, pl.DataFrame]:
    """A column of texts as dense codes (``UInt32`` from 0 in order of first appearance, null
    for null) and (``code``, ``_text``) once per distinct text, in code order."""
    codes, first = dense_codes(texts)
    texts_of_codes = pl.DataFrame(
        {
            "code": pl.arange(0, first.len(), dtype=pl.UInt32, eager=True),
            "_text": texts.gather(first).cast(pl.String),
        }
    )
    return codes, texts_of_codes


def _held(parsed: Parsed, codes: int) -> Held:
    """``parsed`` with items numbered from 0 and each code's items in a list at its row."""
    items = parsed.items.with_row_index("_dense")
    links = parsed.links.join(items.select("item", "_dense"), on="item")
    held = (
        pl.DataFrame({"code": pl.arange(0, codes, dtype=pl.UInt32, eager=True)})
        .join(links.group_by("code").agg(pl.col("_dense").sort()), on="code", how="left")
        .sort("code")
        .select(pl.col("_dense").fill_null(pl.lit([], pl.List(pl.UInt32))))
        .to_series()
        .alias("held")
    )
    return Held(held=held, items=items.select("attribute", "value"))


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


def parse(texts: pl.DataFrame) -> Parsed:
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
        texts.filter(compact).select("code", _piece=inner.str.split(_COMPACT_CUT)).explode("_piece")
    )
    item, first = dense_codes(pieces.get_column("_piece"))
    pieces = pieces.with_columns(item=item)
    # The distinct pairs repeat over all texts: each is matched once.
    items = (
        pieces.gather(first)
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
