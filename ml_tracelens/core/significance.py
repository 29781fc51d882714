"""Tests of significance shared by the reports: bootstrap p-values and the Benjamini–Hochberg
correction for the many comparisons one run makes (algorithms.md, "Attribution").
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: The smallest change (percent of the baseline) a diff gives a verdict, unless told otherwise.
DEFAULT_MIN_CHANGE_PCT = 5.0


def bootstrap_p_value(deltas: pl.Expr) -> pl.Expr:
    """Two-sided p-value that the true difference is 0, from B bootstrap differences: twice the
    share of replicates on the far side of 0, each side counted with the +1 of the observed
    sample ((k + 1) / (B + 1)), so it is never 0 and a difference seen in every replicate of
    1,000 gives p = 0.002. Capped at 1."""
    replicates = deltas.count()
    below = (deltas <= 0).sum() + 1
    above = (deltas >= 0).sum() + 1
    smaller = pl.min_horizontal(below, above).cast(pl.Float64)
    return pl.min_horizontal(pl.lit(1.0), 2 * smaller / (replicates + 1))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """q-values over m tests: sort p ascending, q_(i) = min over j >= i of m * p_(j) / j,
    capped at 1; returned in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, m * p_values[index] / rank)
        q[index] = min(1.0, running)
    return q
