"""What `tracelens models` compares for drift: pairs of model-record frames (model_records.py),
built by ``version_pairs`` (consecutive versions in natural order, or the ``--compare`` pair) or
``window_pairs`` (consecutive non-empty ``--window`` periods); ``drift_entries`` computes the PSI
(``core.psi``, where it is defined) of the prediction, the confidence and each feature for every
pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import polars as pl

from ml_tracelens.core.psi import (
    STABLE_BELOW,
    categorical_psi_bins,
    noise_limit,
    numeric_psi_bins,
    reading,
)
from ml_tracelens.durations import length_ns
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.reports.context import iso_time
from ml_tracelens.reports.model_records import versions_in
from ml_tracelens.reports.result import JsonValue

#: (label of the reference side, its model records, label of the compared side, its records)
Pair = tuple[str, pl.DataFrame, str, pl.DataFrame]


def parse_window(text: str) -> int:
    """``10m`` -> nanoseconds (units ms, s, m, h, d)."""
    length = length_ns(text)
    if length is None or length <= 0:
        raise UsageError(
            f"{quoted(text)}: expected a length such as 30s, 10m or 1h", option="window"
        )
    return round(length)


def parse_compare(text: str) -> tuple[str, str]:
    """``v1,v2`` -> ("v1", "v2")."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise UsageError(
            f"{quoted(text)}: expected two different versions, e.g. v1,v2", option="compare"
        )
    return parts[0], parts[1]


def drift_entries(
    pairs: Iterable[Pair], features: Sequence[str]
) -> tuple[list[dict[str, JsonValue]], list[str]]:
    """PSI of prediction, confidence and each feature for every (from, to) pair; and warnings
    for fields that could not be compared or were compared on small samples."""
    entries: list[dict[str, JsonValue]] = []
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
                f"model version {quoted(missing[0])} is not in the data "
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
