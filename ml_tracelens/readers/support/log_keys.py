"""How many columns a block of JSON log lines may become, and what happens to keys beyond them.

Both parse paths of ``json_logs`` make one text column per distinct flattened key of a block.
A column costs every row of the block (a null is a 16-byte view in polars, however short the
line) and a set of expressions in the mapping (``log_fields.to_logs``: ~0.25 ms a column), so
lines that each bring keys of their own would cost far more than their bytes: 100 lines of
1,000 distinct keys (1.6 MB) took 3.4 GB and 30 s. A block therefore keeps its keys as columns
only while

- it has at most ``MAX_COLUMNS`` distinct keys, and
- its rows times its keys stay within ``max_cells(size)``: a null cell per 4 bytes of text, so
  the columns hold at most about 4 times the text (a key and its value take at least 5 bytes,
  so any block whose lines share their keys passes), plus ``MIN_CELLS`` for small blocks.

Past either, the block is read line by line (``log_flat``): the keys the mapping reads (the
``Plan``'s candidate keys: time, ids, level, ... and the status keys) stay columns, and every
other key becomes a (row, key, text) triple that ``to_logs`` turns into the same attributes
JSON and error signal. Nothing is dropped: the table is the one the columns would give.

A line with more keys than ``TRACELENS_MAX_KEYS_PER_LINE`` (``limits.py``) is skipped before
parsing; the budget above bounds the keys of many lines together.
"""

from __future__ import annotations

from ml_tracelens.readers.support import log_aliases

#: Distinct keys a block may turn into columns.
MAX_COLUMNS = 1_000
#: Text bytes per cell (row x key) a block's columns may take, and cells always allowed.
BYTES_PER_CELL = 4
MIN_CELLS = 65_536


def max_cells(size: int) -> int:
    """Cells (rows x distinct keys) allowed for a block of ``size`` bytes of text."""
    return size // BYTES_PER_CELL + MIN_CELLS


def column_budget(rows: int, size: int) -> int:
    """How many distinct keys ``rows`` rows of ``size`` bytes of text may have as columns."""
    return min(MAX_COLUMNS, max_cells(size) // max(rows, 1))


def fits(keys: int, rows: int, size: int) -> bool:
    """Whether ``keys`` distinct keys over ``rows`` rows of ``size`` bytes may be columns."""
    return keys <= column_budget(rows, size)


def mapped_keys(plan: log_aliases.Plan) -> frozenset[str]:
    """The flattened keys ``to_logs`` reads as columns: every candidate of a canonical field
    (and its error type key) and the HTTP status keys. Keys under an error key signal an error
    through any ``KEY.*`` key, so they are read from the triples as well."""
    keys = set(plan.status_keys)
    for candidates in plan.fields.values():
        for candidate in candidates:
            keys.add(candidate.key)
            if candidate.type_key:
                keys.add(candidate.type_key)
    return frozenset(keys)
