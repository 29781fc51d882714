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

What is compared (`tracelens models`): pairs of model-record frames (model_records.py), built by
``version_pairs`` (consecutive versions in natural order, or the ``--compare`` pair) or
``window_pairs`` (consecutive non-empty ``--window`` periods); ``drift_entries`` computes the PSI
of the prediction, the confidence and each feature for every pair.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from ml_tracelens.core.stats import quantile
from ml_tracelens.durations import length_ns
from ml_tracelens.exceptions import UsageError
from ml_tracelens.reports.model_records import versions_in
from ml_tracelens.reports.summary import iso_time

#: Share used for an empty bin, so ln(a / e) stays finite.
EPSILON = 1e-4
#: Quantile bins of a numeric reference.
NUMERIC_BINS = 10
STABLE_BELOW = 0.1
MAJOR_ABOVE = 0.25
#: (label of the reference side, its model records, label of the compared side, its records)
Pair = tuple[str, pl.DataFrame, str, pl.DataFrame]


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


# ---------------------------------------------------------------- what is compared


def parse_window(text: str) -> int:
    """``10m`` -> nanoseconds (units ms, s, m, h, d)."""
    length = length_ns(text)
    if length is None or length <= 0:
        raise UsageError(f"{text!r}: expected a length such as 30s, 10m or 1h", option="window")
    return round(length)


def parse_compare(text: str) -> tuple[str, str]:
    """``v1,v2`` -> ("v1", "v2")."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise UsageError(f"{text!r}: expected two different versions, e.g. v1,v2", option="compare")
    return parts[0], parts[1]


def drift_entries(
    pairs: Iterable[Pair], features: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """PSI of prediction, confidence and each feature for every (from, to) pair; and warnings
    for fields that could not be compared or were compared on small samples."""
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    fields = [("prediction", categorical_psi_bins), ("confidence", numeric_psi_bins)]
    fields += [(feature, numeric_psi_bins) for feature in features]
    for label_from, before, label_to, after in pairs:
        for name, psi in fields:
            reference = before.get_column(name).drop_nulls()
            current = after.get_column(name).drop_nulls()
            if reference.is_empty() and current.is_empty():
                continue
            if reference.is_empty() or current.is_empty():
                side = label_from if reference.is_empty() else label_to
                warnings.append(f"{name} drift {label_from} -> {label_to}: no values in {side}")
                continue
            value, bins = psi(reference, current)
            entries.append(
                {
                    "field": name,
                    "from": label_from,
                    "to": label_to,
                    "psi": value,
                    "reading": reading(value),
                    "n_from": reference.len(),
                    "n_to": current.len(),
                }
            )
            limit = noise_limit(bins, reference.len(), current.len())
            if STABLE_BELOW <= value < limit:
                warnings.append(
                    f"{name} drift {label_from} -> {label_to}: PSI {value:.3f} could be sampling "
                    f"noise: unchanged data of {reference.len():,} and {current.len():,} values "
                    f"reaches up to about {limit:.3f} (99th percentile); more data, or a longer "
                    "--window, narrows it"
                )
    return entries, warnings


def version_pairs(frame: pl.DataFrame, compare: tuple[str, str] | None) -> list[Pair]:
    """(from, records, to, records) per compared pair of versions."""
    versions = [v for v in versions_in(frame) if v is not None]
    if compare is not None:
        missing = [v for v in compare if v not in versions]
        if missing:
            raise UsageError(
                f"model version {missing[0]!r} is not in the data "
                f"(versions: {', '.join(versions) or 'none'})",
                option="compare",
            )
        chosen = [compare]
    else:
        chosen = list(itertools.pairwise(versions))
    by_version = frame.filter(pl.col("model_version").is_not_null()).partition_by(
        "model_version", as_dict=True
    )
    return [(a, by_version[(a,)], b, by_version[(b,)]) for a, b in chosen]


def window_frame(frame: pl.DataFrame, window_ns: int) -> pl.DataFrame:
    """Records with a timestamp, with ``window`` (the period's ISO start) and ``_start``."""
    start = (pl.col("time_ns") // window_ns) * window_ns
    timed = frame.filter(pl.col("time_ns").is_not_null()).with_columns(_start=start)
    labels = {s: iso_time(s) for s in timed.get_column("_start").unique().to_list()}
    return timed.with_columns(
        window=pl.col("_start").replace_strict(labels, return_dtype=pl.String)
    )


def window_pairs(timed: pl.DataFrame) -> list[Pair]:
    parts = timed.sort("_start").partition_by("_start", maintain_order=True)
    labels = [str(p.get_column("window").first()) for p in parts]  # never null: all are timed
    return [(labels[i - 1], parts[i - 1], labels[i], parts[i]) for i in range(1, len(parts))]
