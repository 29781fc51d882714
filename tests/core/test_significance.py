"""The tests of significance `why` ranks by: Fisher's exact test against exact rational sums and
scipy, Mann–Whitney U against scipy, Benjamini–Hochberg against a hand-computed example."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ml_tracelens.core.significance import benjamini_hochberg, fisher_exact, mann_whitney


def exact_fisher(a: int, b: int, c: int, d: int) -> Fraction:
    """The two-sided p-value as an exact rational sum over every table with the same margins
    (ties are exact here, so no tolerance is needed)."""
    row, col, total = a + b, a + c, a + b + c + d
    denominator = comb(total, row)
    probability = {
        x: Fraction(comb(col, x) * comb(total - col, row - x), denominator)
        for x in range(max(0, row + col - total), min(row, col) + 1)
    }
    return sum((p for p in probability.values() if p <= probability[a]), Fraction(0))


def test_the_algorithms_vector() -> None:
    # algorithms.md, "Attribution (why)": a = 8, b = 2, c = 2, d = 88 -> p = 1.0463e-8.
    exact = exact_fisher(8, 2, 2, 88)
    assert float(exact) == pytest.approx(1.0463e-8, rel=1e-4)
    assert fisher_exact(8, 2, 2, 88) == pytest.approx(float(exact), rel=1e-12, abs=0)


def test_hand_computed_small_tables() -> None:
    # [[1, 0], [0, 1]]: margins 1,1 / 1,1; the two tables have P = 1/2 each -> p = 1.
    assert fisher_exact(1, 0, 0, 1) == 1.0
    # [[3, 0], [0, 3]]: P(x) = C(3,x) C(3,3-x) / C(6,3) = 1, 9, 9, 1 over 20; P(3) = 1/20 and
    # only P(0) is as small -> p = 2/20.
    assert fisher_exact(3, 0, 0, 3) == pytest.approx(0.1, rel=1e-12)
    # A degenerate margin has one table only.
    assert fisher_exact(0, 0, 4, 7) == 1.0
    assert fisher_exact(5, 0, 9, 0) == 1.0
    with pytest.raises(ValueError, match="counts"):
        fisher_exact(-1, 2, 3, 4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=4, max_size=4))
def test_fisher_is_the_exact_rational_sum(table: list[int]) -> None:
    a, b, c, d = table
    assert fisher_exact(a, b, c, d) == pytest.approx(float(exact_fisher(a, b, c, d)), abs=1e-12)


def test_fisher_equals_scipy_to_1e_9_on_small_and_large_tables() -> None:
    rng = random.Random(20261205)
    for _ in range(2000):
        scale = rng.choice((5, 30, 300, 5000, 200_000))
        a, b, c, d = (rng.randint(0, scale) for _ in range(4))
        reference = stats.fisher_exact([[a, b], [c, d]], alternative="two-sided").pvalue
        assert abs(fisher_exact(a, b, c, d) - reference) <= 1e-9, (a, b, c, d)


def test_fisher_on_a_million_requests_is_cheap_and_right() -> None:
    # 5% of 1M requests carry a value, 41% of the 50,000 slowest: p underflows, as in scipy.
    assert fisher_exact(20_500, 29_500, 29_500, 920_500) == 0.0
    reference = stats.fisher_exact([[2_620, 47_380], [47_380, 902_620]]).pvalue
    assert fisher_exact(2_620, 47_380, 47_380, 902_620) == pytest.approx(reference, abs=1e-12)


def test_benjamini_hochberg_hand_computed() -> None:
    # m = 4, sorted p 0.001, 0.01, 0.02, 0.5: m p / rank = 0.004, 0.02, 0.0267, 0.5; the
    # running minimum from the top keeps them; returned in the order given.
    q = benjamini_hochberg([0.02, 0.001, 0.5, 0.01])
    assert q == pytest.approx([0.08 / 3, 0.004, 0.5, 0.02])
    # 0.04 at rank 2 of 2 (q 0.04) pulls rank 1 (2 * 0.039 = 0.078) down to 0.04.
    assert benjamini_hochberg([0.039, 0.04]) == pytest.approx([0.04, 0.04])


def _groups(seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for group in range(6):
        size = rng.randint(3, 400)
        shift = rng.choice((0.0, 0.2, 1.0))
        for _ in range(size):
            flagged = rng.random() < 0.3
            value = (
                float(rng.randint(0, 12))  # many ties
                if group % 2
                else rng.lognormvariate(0, 1) + (shift if flagged else 0.0)
            )
            rows.append((group, value, flagged))
    return pl.DataFrame(rows, schema=["g", "v", "s"], orient="row")


@pytest.mark.parametrize("seed", range(5))
def test_mann_whitney_equals_scipy(seed: int) -> None:
    frame = _groups(seed)
    result = mann_whitney(frame, by="g", value="v", flag="s")
    for group, n_in, n_out, u, p in result.iter_rows():
        part = frame.filter(pl.col("g") == group)
        inside = part.filter(pl.col("s")).get_column("v").to_list()
        outside = part.filter(~pl.col("s")).get_column("v").to_list()
        assert (n_in, n_out) == (len(inside), len(outside))
        if not inside or not outside:
            assert p is None
            continue
        reference = stats.mannwhitneyu(inside, outside, method="asymptotic")
        assert u == reference.statistic
        assert p == pytest.approx(reference.pvalue, abs=1e-12)


def test_mann_whitney_without_a_side_or_with_all_values_tied_has_no_p_value() -> None:
    frame = pl.DataFrame(
        {
            "g": [1, 1, 1, 2, 2, 2],
            "v": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0],
            "s": [True] * 3 + [True, False, False],
        }
    )
    result = mann_whitney(frame, by="g", value="v", flag="s").sort("g")
    assert result.get_column("p_value").to_list() == [None, None]
