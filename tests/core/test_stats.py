"""Percentiles: one rule (algorithms.md), as a polars expression and in exact arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core.stats import exact_percentiles, quantile


def test_a_percentile_interpolates_linearly_between_the_closest_ranks() -> None:
    # n = 4: p50 is rank 1.5 (25), p90 rank 2.7 (30 + 0.7 * 10), p99 rank 2.97 (39.7).
    values = pl.Series("v", [40, None, 10, 30, 20], dtype=pl.Int64)
    assert exact_percentiles(values, (0, 50, 90, 99, 100)) == {
        0: 10,
        50: 25,
        90: 37,
        99: Fraction(397, 10),
        100: 40,
    }
    assert quantile(values, 0.9) == pytest.approx(37)


def test_no_values_have_no_percentiles() -> None:
    assert exact_percentiles(pl.Series("v", [None], dtype=pl.Int64), (50,)) == {}
    assert quantile(pl.Series("v", [], dtype=pl.Int64), 0.5) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=60))
def test_exact_percentiles_are_the_polars_and_numpy_ones_without_rounding(
    values: list[int],
) -> None:
    series = pl.Series("v", values, dtype=pl.Int64)
    percents = (0, 1, 10, 25, 50, 75, 90, 95, 99, 100)
    exact = exact_percentiles(series, percents)
    floats = series.to_frame().select(
        quantile(pl.col("v"), p / 100).alias(str(p)) for p in percents
    )
    for p in percents:
        assert float(exact[p]) == pytest.approx(np.percentile(values, p), rel=1e-9, abs=1e-6)
        assert float(exact[p]) == pytest.approx(floats.item(0, str(p)), rel=1e-9, abs=1e-6)
