"""Population stability index (PSI): how far a distribution moved from a reference.

Definition used by `tracelens models` (and the ``psi.FIELD`` budgets of `tracelens check`):

- Bins come from the reference (the ``from`` side: the earlier model version, the baseline dump,
  the earlier window). A numeric field gets 10 quantile bins of the reference: edges at the
  reference's 10th, 20th, ..., 90th percentiles (linear interpolation between closest ranks, as
  everywhere in tracelens), bins closed on the right ``(e[k-1], e[k]]`` with open ends, repeated
  edges merged (a reference with many equal values gives fewer bins). A categorical field (the
  prediction) gets one bin per class seen on either side, so a class the reference never
  predicted counts as drift.
- e = share of the reference in a bin, a = share of the compared side. A share of 0 is replaced
  by ``EPSILON`` = 0.0001 (no renormalisation), so an empty bin adds a large but finite term.
- PSI = Σ (a − e) · ln(a / e) over the bins.

Reading: < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 major (the usual credit-scoring thresholds).
Null values are left out of both sides.

PSI is the symmetric (Jeffreys) divergence, so on two samples of one unchanged distribution it is
about a chi-square with B − 1 degrees of freedom scaled by 1/n_from + 1/n_to (B bins). Sampling
alone gives (B − 1)(1/n_from + 1/n_to) on average: 0.18 with 10 bins and 100 values a side,
already "moderate". ``noise_limit`` is the 99th percentile of that (Wilson–Hilferty's cube-root
approximation of the chi-square quantile); callers warn when a reading other than stable stays
below it, i.e. could be sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from ml_tracelens.core.stats import quantile

#: Share used for an empty bin, so ln(a / e) stays finite.
EPSILON = 1e-4
#: Quantile bins of a numeric reference.
NUMERIC_BINS = 10
STABLE_BELOW = 0.1
MAJOR_ABOVE = 0.25


def reading(psi: float) -> str:
    """stable (< 0.1), moderate (0.1 to 0.25) or major (> 0.25)."""
    if psi < STABLE_BELOW:
        return "stable"
    if psi <= MAJOR_ABOVE:
        return "moderate"
    return "major"


def psi_from_shares(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Σ (a − e) · ln(a / e), zero shares replaced by EPSILON."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = e or EPSILON, a or EPSILON
        total += (a - e) * math.log(a / e)
    return total


def numeric_edges(reference: pl.Series, bins: int = NUMERIC_BINS) -> list[float]:
    """The distinct inner bin edges: the reference's 1/bins, 2/bins, ... quantiles."""
    values = reference.drop_nulls().cast(pl.Float64)
    edges = [quantile(values, k / bins) for k in range(1, bins)]
    return sorted({float(e) for e in edges if e is not None})


def psi_numeric(reference: pl.Series, current: pl.Series, bins: int = NUMERIC_BINS) -> float:
    """PSI of a numeric field over quantile bins of ``reference``; both sides need values."""
    return numeric_psi_bins(reference, current, bins)[0]


def psi_categorical(reference: pl.Series, current: pl.Series) -> float:
    """PSI of a categorical field, one bin per class seen on either side."""
    return categorical_psi_bins(reference, current)[0]


#: z of the 99th percentile of the standard normal.
_Z99 = 2.3263


def noise_limit(bins: int, n_from: int, n_to: int) -> float:
    """The PSI that unchanged data of these sizes stays below 99 times in 100 (about)."""
    dof = max(bins - 1, 1)
    spread = 2 / (9 * dof)
    chi2_99 = dof * (1 - spread + _Z99 * math.sqrt(spread)) ** 3
    return chi2_99 * (1 / n_from + 1 / n_to)


def numeric_psi_bins(
    reference: pl.Series, current: pl.Series, bins: int = NUMERIC_BINS
) -> tuple[float, int]:
    """(PSI, number of bins used) of a numeric field."""
    ref = reference.drop_nulls().cast(pl.Float64)
    cur = current.drop_nulls().cast(pl.Float64)
    if ref.is_empty() or cur.is_empty():
        raise ValueError("PSI needs values on both sides")
    edges = pl.Series(numeric_edges(ref, bins), dtype=pl.Float64)
    count = edges.len() + 1
    # side="left": the number of edges strictly below a value, i.e. right-closed bins.
    expected = _shares(edges.search_sorted(ref, side="left"), count)
    actual = _shares(edges.search_sorted(cur, side="left"), count)
    return psi_from_shares(expected, actual), count


def categorical_psi_bins(reference: pl.Series, current: pl.Series) -> tuple[float, int]:
    """(PSI, number of classes) of a categorical field."""
    ref = reference.drop_nulls().cast(pl.String)
    cur = current.drop_nulls().cast(pl.String)
    if ref.is_empty() or cur.is_empty():
        raise ValueError("PSI needs values on both sides")
    ref_counts = dict(ref.value_counts().iter_rows())
    cur_counts = dict(cur.value_counts().iter_rows())
    classes = sorted(set(ref_counts) | set(cur_counts))
    expected = [ref_counts.get(c, 0) / ref.len() for c in classes]
    actual = [cur_counts.get(c, 0) / cur.len() for c in classes]
    return psi_from_shares(expected, actual), len(classes)


def _shares(bin_index: pl.Series, count: int) -> list[float]:
    counts = [0] * count
    for index, n in bin_index.value_counts().iter_rows():
        counts[index] = n
    total = bin_index.len()
    return [n / total for n in counts]
