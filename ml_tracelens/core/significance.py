"""Tests of significance shared by the reports: bootstrap p-values and the Benjamini–Hochberg
correction for the many comparisons one run makes (algorithms.md, "Attribution").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


#: Tables whose probability is within this relative distance of the observed one count as "as
#: extreme" (R's fisher.test): floating error must not drop a tied table from the p-value.
FISHER_RELATIVE_TOLERANCE = 1e-7
#: A tail's remaining mass below this share of what is summed cannot change a float p-value.
_NEGLIGIBLE = 1e-18


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value of the 2x2 table ``[[a, b], [c, d]]`` (algorithms.md,
    "Attribution"): the sum of the hypergeometric probabilities P(x) of every table with the same
    margins and P(x) <= P(a) (relative tolerance 1e-7), capped at 1.

    Each tail is summed outward from its inner end with the ratio of neighbouring terms and
    stops once the rest cannot matter: the distribution is log-concave, so past the mode the
    ratio only falls and the rest of a tail is bounded by a geometric series. A table of a
    million requests takes a few thousand steps instead of one per possible x, so the exact
    test stays practical at any size and no normal approximation is needed."""
    if min(a, b, c, d) < 0:
        raise ValueError(f"a 2x2 table holds counts, not {(a, b, c, d)}")
    row, col, total = a + b, a + c, a + b + c + d
    low, high = max(0, row + col - total), min(row, col)
    if low == high:
        return 1.0

    def log_pmf(x: int) -> float:
        # R's dhyper (Loader's binomial terms): lgamma differences lose 1e-9 at a million.
        share = row / total
        return (
            _log_binomial(x, col, share)
            + _log_binomial(row - x, total - col, share)
            - _log_binomial(row, total, share)
        )

    def ratio_up(x: int) -> float:  # P(x + 1) / P(x)
        return (row - x) * (col - x) / ((x + 1) * (total - row - col + x + 1))

    def ratio_down(x: int) -> float:  # P(x - 1) / P(x)
        return x * (total - row - col + x) / ((row - x + 1) * (col - x + 1))

    mode = (row + 1) * (col + 1) // (total + 2)
    observed = log_pmf(a)
    limit = observed + math.log1p(FISHER_RELATIVE_TOLERANCE)
    if log_pmf(mode) <= limit:  # the observed table is (tied with) the most likely one
        return 1.0
    # Terms are scaled by P(a): none overflows, and the observed table contributes 1.
    if a < mode:
        own = _tail_sum(a, low, ratio_down, 1.0)
        start = _first_at_most(limit, mode, high, log_pmf)
        other = (
            0.0
            if start is None
            else _tail_sum(start, high, ratio_up, math.exp(log_pmf(start) - observed))
        )
    else:
        own = _tail_sum(a, high, ratio_up, 1.0)
        start = _first_at_most(limit, mode, low, log_pmf)
        other = (
            0.0
            if start is None
            else _tail_sum(start, low, ratio_down, math.exp(log_pmf(start) - observed))
        )
    return min(1.0, math.exp(observed + math.log(own + other)))


def _log_binomial(x: int, n: int, p: float) -> float:
    """log of the binomial probability of ``x`` in ``n`` at ``p``, accurate to a few ulps at
    any ``n`` (C. Loader, "Fast and accurate computation of binomial probabilities", 2000; as
    R's dbinom_raw): Stirling's error terms and the deviance ``bd0`` instead of log-gamma
    differences, whose rounding grows with ``n``."""
    q = 1 - p
    if p == 0:
        return 0.0 if x == 0 else -math.inf
    if q == 0:
        return 0.0 if x == n else -math.inf
    if x == 0:
        return 0.0 if n == 0 else (-_bd0(n, n * q) - n * p if p < 0.1 else n * math.log(q))
    if x == n:
        return -_bd0(n, n * p) - n * q if q < 0.1 else n * math.log(p)
    log_c = _stirling_error(n) - _stirling_error(x) - _stirling_error(n - x)
    log_c -= _bd0(x, n * p) + _bd0(n - x, n * q)
    return log_c - 0.5 * (math.log(2 * math.pi) + math.log(x) + math.log1p(-x / n))


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _stirling_error(n: int) -> float:
    """log(n!) - log(sqrt(2 pi n) (n / e)^n)."""
    if n <= 15:
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - _LOG_SQRT_2PI
    nn = n * n
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, np: float) -> float:
    """x log(x / np) + np - x, without the cancellation when x is near np."""
    if abs(x - np) < 0.1 * (x + np):
        v = (x - np) / (x + np)
        s = (x - np) * v
        ej = 2 * x * v
        v *= v
        j = 1
        while True:
            ej *= v
            following = s + ej / (2 * j + 1)
            if following == s:
                return following
            s = following
            j += 1
    return x * math.log(x / np) + np - x


def _tail_sum(start: int, end: int, ratio: Callable[[int], float], first: float) -> float:
    """The sum of the terms from ``start`` to ``end`` (either direction), the first being
    ``first`` and each next one the previous times ``ratio(x)``; ``start`` is on the far side of
    the mode from the centre, so the ratios fall below 1 and only fall further."""
    step = 1 if end >= start else -1
    total, term, x = first, first, start
    while x != end:
        r = ratio(x)
        term *= r
        x += step
        total += term
        if term == 0.0 or (r < 1 and term * r / (1 - r) <= _NEGLIGIBLE * total):
            break
    return total


def _first_at_most(
    limit: float, mode: int, end: int, log_pmf: Callable[[int], float]
) -> int | None:
    """The x nearest the mode, between ``mode`` and ``end``, whose log P(x) <= ``limit`` (P
    falls monotonically from the mode to ``end``); None when even P(end) is above it."""
    if log_pmf(end) > limit:
        return None
    inside, outside = mode, end  # log_pmf(inside) > limit >= log_pmf(outside)
    while abs(outside - inside) > 1:
        middle = (inside + outside) // 2
        if log_pmf(middle) <= limit:
            outside = middle
        else:
            inside = middle
    return outside


def mann_whitney(frame: pl.DataFrame, *, by: str, value: str, flag: str) -> pl.DataFrame:
    """Two-sided Mann–Whitney U test per ``by`` group of ``frame``: the ``value``s of the rows
    whose boolean ``flag`` is true against those where it is false. The normal approximation
    with the tie correction and the 0.5 continuity correction (scipy's ``method="asymptotic"``),
    which is what matters at the sizes of a dump; one rank pass over all groups at once.

    Returns ``by``, ``n_in``, ``n_out``, ``u`` (U of the flagged rows) and ``p_value`` (null
    when a side is empty or every value is tied)."""
    ranked = frame.filter(pl.col(value).is_not_null()).with_columns(
        _rank=pl.col(value).rank("average").over(by)
    )
    ties = (
        ranked.group_by(by, value)
        .agg(_t=pl.len().cast(pl.Float64))
        .group_by(by)
        .agg(_ties=(pl.col("_t") ** 3 - pl.col("_t")).sum())
    )
    n_in, n_out = pl.col("n_in").cast(pl.Float64), pl.col("n_out").cast(pl.Float64)
    total = n_in + n_out
    variance = n_in * n_out / 12 * ((total + 1) - pl.col("_ties") / (total * (total - 1)))
    stats = (
        ranked.group_by(by)
        .agg(
            n_in=pl.col(flag).sum().cast(pl.Int64),
            n_out=(~pl.col(flag)).sum().cast(pl.Int64),
            _ranks_in=pl.col("_rank").filter(pl.col(flag)).sum(),
        )
        .join(ties, on=by, how="left")
        .with_columns(u=pl.col("_ranks_in") - n_in * (n_in + 1) / 2)
        .with_columns(
            _z=((pl.col("u") - n_in * n_out / 2).abs() - 0.5).clip(lower_bound=0) / variance.sqrt()
        )
    )
    valid = (pl.col("n_in") > 0) & (pl.col("n_out") > 0) & (variance > 0)
    p_values = [
        None if z is None or not ok else min(1.0, math.erfc(z / math.sqrt(2)))
        for z, ok in zip(
            stats.get_column("_z").to_list(),
            stats.select(valid).to_series().to_list(),
            strict=True,
        )
    ]
    return stats.select(by, "n_in", "n_out", "u").with_columns(
        p_value=pl.Series(p_values, dtype=pl.Float64)
    )
