"""The schema the fast path hands polars' NDJSON reader, sampled from a block's lines.

polars reads every value as text against a schema of String leaves; the schema comes from the
keys of a sample of the block (its first lines, then slices spread over it), merged into a tree.
A key the sample misses is not lost unnoticed: the fast path's key count (``log_evidence``)
then fails and the block is read line by line. Sampling turns the block away early when what
it sees would fail later anyway: list values, objects nested deeper than the limit, more
distinct keys than the column budget, a line with more keys than the per-line limit.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
from polars.datatypes import DataTypeClass

from ml_tracelens import limits
from ml_tracelens.readers.support.log_evidence import FastPathUnavailable
from ml_tracelens.readers.support.log_problems import WHITESPACE

#: Lines sampled for the schema: the first ones, then slices spread over the input.
SAMPLE_HEAD_LINES = 2_000
SAMPLE_SLICES = 256
SAMPLE_SLICE_LINES = 16
MAX_DEPTH = 32

Tree = dict[str, "Tree | None"]  # key -> nested object tree, or None for a value read as text


def _sample_lines(body: bytes) -> list[bytes]:
    lines = body[: _after_lines(body, 0, SAMPLE_HEAD_LINES)].split(b"\n")
    rest = _after_lines(body, 0, SAMPLE_HEAD_LINES)
    for index in range(SAMPLE_SLICES):
        offset = rest + (len(body) - rest) * index // SAMPLE_SLICES
        start = body.find(b"\n", offset) + 1 if offset else 0
        if start <= 0 or start >= len(body):
            continue
        lines += body[start : _after_lines(body, start, SAMPLE_SLICE_LINES)].split(b"\n")
    return lines


def _after_lines(body: bytes, start: int, count: int) -> int:
    position = start
    for _ in range(count):
        found = body.find(b"\n", position)
        if found < 0:
            return len(body)
        position = found + 1
    return position


def sample_tree(body: bytes, depth: int, budget: int | None = None) -> Tree:
    """The keys of the sampled lines as a tree; FastPathUnavailable past ``budget`` keys (the
    line path reads such blocks within its own budget) or on a sampled line over the keys
    limit (the line path skips it)."""
    tree: Tree = {}
    nodes = 0
    max_keys = limits.current().max_keys_per_line
    for line in _sample_lines(body):
        if not line.strip(WHITESPACE):
            continue
        if limits.too_many_keys(line, max_keys):
            raise FastPathUnavailable("a line with more keys than TRACELENS_MAX_KEYS_PER_LINE")
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the reader will fail on it and say so
        if type(document) is dict:
            nodes += _merge(tree, document, depth)
            if budget is not None and nodes > budget:
                raise FastPathUnavailable(f"more than {budget:,} distinct keys")
    return tree


def _merge(tree: Tree, document: dict[str, Any], limit: int) -> int:
    """Merge the keys of ``document`` into ``tree``; returns how many nodes were added."""
    added = 0
    stack: list[tuple[Tree, dict[str, Any], int]] = [(tree, document, 1)]
    while stack:
        node, value, depth = stack.pop()
        if depth > limit:
            raise FastPathUnavailable(f"objects nested deeper than {limit}")
        for key, item in value.items():
            if type(item) is list:
                # The checks after reading would turn the block away: do not read it.
                raise FastPathUnavailable("list values")
            if type(item) is dict:
                child = node.get(key)
                if not isinstance(child, dict):
                    added += key not in node
                    child = node[key] = {}  # an object wins over text: text lines fail the count
                stack.append((child, item, depth + 1))
            elif key not in node:
                node[key] = None
                added += 1
    return added


def schema_of(tree: Tree) -> pl.Schema:
    """Tree -> polars schema with String leaves, built bottom-up without recursion."""
    order: list[Tree] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(child for child in node.values() if isinstance(child, dict))
    dtypes: dict[int, pl.DataType] = {}
    for node in reversed(order):
        fields = {
            k: (dtypes[id(c)] if isinstance(c, dict) else pl.String()) for k, c in node.items()
        }
        dtypes[id(node)] = pl.Struct(fields)
    root = dtypes[id(tree)]
    assert isinstance(root, pl.Struct)
    return pl.Schema({field.name: field.dtype for field in root.fields})


def schema_nodes(schema: pl.Schema) -> tuple[list[pl.Expr], list[tuple[tuple[str, ...], pl.Expr]]]:
    """(struct nodes, (path, leaf) pairs) of a schema, columns by their positional names."""
    structs: list[pl.Expr] = []
    leaves: list[tuple[tuple[str, ...], pl.Expr]] = []
    stack: list[tuple[tuple[str, ...], pl.Expr, pl.DataType | DataTypeClass]] = [
        ((key,), pl.col(f"\x01{index}"), dtype) for index, (key, dtype) in enumerate(schema.items())
    ]
    while stack:
        path, expr, dtype = stack.pop()
        if isinstance(dtype, pl.Struct):
            structs.append(expr)
            names = [f"\x01{index}" for index in range(len(dtype.fields))]
            positional = expr.struct.rename_fields(names)
            stack.extend(
                ((*path, f.name), positional.struct.field(n), f.dtype)
                for n, f in zip(names, dtype.fields, strict=True)
            )
        else:
            leaves.append((path, expr))
    return structs, leaves
