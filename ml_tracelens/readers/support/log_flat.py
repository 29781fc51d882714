"""Flattening JSON log documents into text, one piece of code for every parse path, so that
the fast path, the line-by-line path and batched reading give the same table.

Values are spelled as polars' NDJSON reader spells them as strings (``render``, ``plain_float``,
``float_text``: shortest round-trip digits, positional notation). Nested keys become dotted
names, and where two spellings of one key meet (``{"a.b": 1, "a": {"b": 2}}``) the one with
fewer path segments wins: ``flat_columns`` merges column-wise (both parse paths), ``flat_row``
line by line, for blocks whose keys do not fit as columns (``log_keys``) and for many small
inputs mapped together (``log_batch``); the keys that are not columns then travel as
(row, key, text) triples (``spill``, ``frames``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import polars as pl

from ml_tracelens.readers.support.log_fields import LINE, column_name
from ml_tracelens.readers.support.log_keys import fits


@dataclass
class Flat:
    """Documents flattened one by one: per row, its keys' values as text (nulls and empty
    objects leave nothing), and the count of values lost to colliding spellings."""

    rows: list[dict[str, str]]
    collisions: list[int]


def flatten(documents: list[dict[str, object]]) -> Flat:
    """Each document's flattened keys and values (``flat_row``)."""
    rows: list[dict[str, str]] = []
    collisions: list[int] = []
    for document in documents:
        row, lost = flat_row(document)
        rows.append(row)
        collisions.append(lost)
    return Flat(rows, collisions)


def flat_row(document: dict[str, object]) -> tuple[dict[str, str], int]:
    """A document's flattened keys and values as text, merged as ``flat_columns``
    merges columns: of two spellings of one key (``{"a.b": 1, "a": {"b": 2}}``) the one with
    fewer path segments wins, ties by path order; and how many values lost so."""
    if dict not in set(map(type, document.values())):
        # Flat already (the usual line): no spelling can collide.
        flat = {
            key: item if type(item) is str else render(item)
            for key, item in document.items()
            if item is not None
        }
        if any("\x00" in key for key in flat):
            flat = {column_name((key,)): item for key, item in flat.items()}
        return flat, 0
    row: dict[str, str] = {}
    paths: dict[str, tuple[str, ...]] = {}
    lost = 0
    stack: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), document)]
    while stack:
        prefix, value = stack.pop()
        for key, item in value.items():
            path = (*prefix, key)
            kind = type(item)
            if kind is dict:
                stack.append((path, item))
                continue
            if item is None:
                continue
            name = column_name(path)
            held = paths.get(name)
            if held is not None:
                lost += 1
                if (len(held), held) < (len(path), path):
                    continue
            paths[name] = path
            row[name] = item if kind is str else render(item)
    return row, lost


def spill(
    documents: list[dict[str, object]], keep: frozenset[str]
) -> tuple[dict[str, pl.Series], pl.DataFrame, int]:
    """Documents -> text columns of the ``keep`` keys they hold, triples (``row``, ``name``,
    ``text``) of their other keys, and the count of colliding values. Consumes ``documents``
    (each is dropped once flattened, so the parsed lines and the triples are not all held at
    once)."""
    count = len(documents)
    lost = 0

    def rows() -> Iterator[dict[str, str]]:
        nonlocal lost
        for index in range(count):
            row, collided = flat_row(documents[index])
            documents[index] = _GONE
            lost += collided
            yield row

    columns, triples = _distribute(rows(), count, keep)
    return columns, triples, lost


def frames(
    flat: Flat, *, size: int, keep: frozenset[str]
) -> tuple[dict[str, pl.Series], pl.DataFrame | None]:
    """Text columns of the flattened rows, and the triples (``row``, ``name``, ``text``) of the
    keys that are not columns (None when every key fits as a column; see the module doc).
    ``keep``: the keys that are columns whatever the budget (``mapped_keys``)."""
    rows = flat.rows
    names: set[str] = set().union(*rows) if rows else set()
    if not fits(len(names), len(rows), size):
        return _distribute(iter(rows), len(rows), keep, copy=True)
    columns = {
        name: pl.Series(name, [row.get(name) for row in rows], dtype=pl.String) for name in names
    }
    return columns, None


_GONE: dict[str, Any] = {}
#: Triples gathered in Python lists before they become polars columns (compact, off the heap).
_TRIPLES_PER_PIECE = 1_000_000


def _distribute(
    rows: Iterator[dict[str, str]], count: int, keep: frozenset[str], *, copy: bool = False
) -> tuple[dict[str, pl.Series], pl.DataFrame]:
    """Rows -> columns of the ``keep`` keys and triples of the others (rows are emptied of the
    ``keep`` keys unless ``copy``)."""
    kept: dict[str, list[str | None]] = {}
    per_row: list[int] = []
    names: list[str] = []
    texts: list[str] = []
    pieces: list[pl.DataFrame] = []
    for index, row in enumerate(rows):
        held = row.keys() & keep
        if held:
            if copy:
                row = dict(row)
            for name in held:
                if name not in kept:
                    kept[name] = [None] * count
                kept[name][index] = row.pop(name)
        per_row.append(len(row))
        names.extend(row)
        texts.extend(row.values())
        if len(names) >= _TRIPLES_PER_PIECE:
            pieces.append(_piece(names, texts))
            names, texts = [], []
    pieces.append(_piece(names, texts))
    numbers = (
        pl.DataFrame({"row": pl.int_range(count, dtype=pl.UInt32, eager=True), "n": per_row})
        .filter(pl.col("n") > 0)
        .select(pl.col("row").repeat_by("n"))
        .explode("row")
    )
    triples = pl.concat([numbers, pl.concat(pieces, how="vertical")], how="horizontal")
    columns = {name: pl.Series(name, values, dtype=pl.String) for name, values in kept.items()}
    return columns, triples


def _piece(names: list[str], texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"name": pl.Series(names, dtype=pl.String), "text": pl.Series(texts, dtype=pl.String)}
    )


def render(value: object) -> str:
    """A JSON scalar as text, the way polars' reader turns it into a string column."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return plain_float(value)
    return orjson.dumps(value).decode()  # lists (the fast path never sees them)


def plain_float(value: float) -> str:
    """Shortest round-trip digits in positional notation, no trailing zeros: 1e-07 -> 0.0000001."""
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def float_text(values: pl.Series) -> pl.Series:
    """Float64 -> text exactly as ``plain_float`` spells each value, a whole column at once."""
    # polars prints repr's shortest digits (ties to even, as repr); only exponent forms differ.
    text = values.cast(pl.String)
    exponent = text.str.contains("e", literal=True).fill_null(False)
    text = text.str.strip_suffix(".0")
    if exponent.any():
        where = exponent.arg_true()
        text = text.scatter(where, [plain_float(values[i]) for i in where.to_list()])
    return text


def flat_columns(
    frame: pl.DataFrame, leaves: list[tuple[tuple[str, ...], pl.Expr]]
) -> tuple[pl.DataFrame, int]:
    """Leaves -> one text column per dotted key (plus the line column ``LINE``), and the count of values lost
    where two spellings of one key meet (``{"a.b": 1, "a": {"b": 2}}``): the one with fewer path
    segments wins, ties by path order. Both parse paths merge here, so they agree."""
    by_name: dict[str, list[tuple[tuple[str, ...], pl.Expr]]] = {}
    for path, expr in leaves:
        by_name.setdefault(column_name(path), []).append((path, expr))
    columns = []
    losers = []
    for name, spellings in by_name.items():
        spellings.sort(key=lambda item: (len(item[0]), item[0]))
        exprs = [expr for _, expr in spellings]
        columns.append(pl.coalesce(exprs).alias(name) if len(exprs) > 1 else exprs[0].alias(name))
        if len(exprs) > 1:
            present = pl.sum_horizontal(e.is_not_null().cast(pl.Int64) for e in exprs)
            losers.append((present - 1).clip(lower_bound=0).sum())
    raw = frame.select(*columns, LINE)
    # Keys polars was told about but no line has: dropping them changes nothing downstream.
    empty = [c for c in raw.columns if raw.get_column(c).null_count() == raw.height]
    raw = raw.drop(empty)
    collisions = int(frame.select(pl.sum_horizontal(losers)).item()) if losers else 0
    return raw, collisions
