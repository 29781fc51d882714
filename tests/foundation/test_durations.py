"""Durations as people read them: three significant digits, a unit that fits, one rounding.

Each expected text is written out by hand from the decimal value (half to even on the last
digit kept), not computed with the formatter's own arithmetic.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml_tracelens.durations import format_duration, length_ns

CASES = [
    # (milliseconds, shown)
    (0, "0ms"),
    (0.000001, "1.00ns"),  # one nanosecond
    (0.0000015, "1.50ns"),
    (0.000123, "123ns"),
    (0.0009994, "999ns"),
    (0.0009995, "1.00µs"),  # 999.5ns rounds up to the next unit
    (0.010, "10.0µs"),
    (0.015, "15.0µs"),  # 15µs and 10µs no longer both print as 0.01
    (0.035, "35.0µs"),
    (0.025, "25.0µs"),  # the old 2-decimal formatting printed 0.02 ...
    (0.055, "55.0µs"),  # ... and 0.06: float artefacts, now gone
    (0.02505, "25.0µs"),  # a tie: half to even keeps the 0
    (0.02515, "25.2µs"),  # a tie: half to even makes the 1 a 2
    (0.9994, "999µs"),
    (0.9995, "1.00ms"),  # 999.5µs: the tie goes to the even 1000, written as 1.00ms
    (1.0, "1.00ms"),
    (1.425, "1.42ms"),  # the decimal 1.425, not the float just below it: half to even
    (1.435, "1.44ms"),
    (1.4285, "1.43ms"),
    (9.995, "10.0ms"),  # rounding carries into a new digit: still three of them
    (99.95, "100ms"),
    (251.4, "251ms"),
    (999.4, "999ms"),
    (999.5, "1.00s"),
    (2510, "2.51s"),
    (59_940, "59.9s"),
    (59_950, "1m00s"),  # 59.95s rounds to 60.0s: written as a minute
    (60_000, "1m00s"),
    (192_000, "3m12s"),
    (192_500, "3m12s"),  # whole seconds, half to even
    (193_500, "3m14s"),
    (3_599_400, "59m59s"),
    (3_599_500, "1h00m"),
    (7_500_000, "2h05m"),
    (90_000_000, "25h00m"),
    (-0.5, "-500µs"),  # a negative tail delta keeps its sign
    (-2510, "-2.51s"),
]


@pytest.mark.parametrize(("milliseconds", "shown"), CASES)
def test_durations_have_three_significant_digits_and_a_unit_that_fits(
    milliseconds: float, shown: str
) -> None:
    assert format_duration(milliseconds) == shown


def test_a_missing_duration_is_a_dash() -> None:
    assert format_duration(None) == "-"


def test_integers_and_decimals_read_as_the_same_floats() -> None:
    assert format_duration(12) == format_duration(12.0) == "12.0ms"
    assert format_duration(Decimal("0.0125")) == "12.5µs"


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("250ms", 250_000_000),
        ("30s", 30_000_000_000),
        (" 1.5h ", 5_400_000_000_000),
        ("10 m", 600_000_000_000),
        ("2d", 172_800_000_000_000),
        ("0s", 0),
    ],
)
def test_a_length_of_time_given_as_an_option_is_read_in_nanoseconds(
    text: str, nanoseconds: int
) -> None:
    assert length_ns(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "10", "ms", "1e3s", ".5s", "-5s", "10 minutes", "5us"])
def test_anything_else_is_not_a_length_of_time(text: str) -> None:
    assert length_ns(text) is None
