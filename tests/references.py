"""Plain readings of tracelens' rules, sharing no code with it, for tests to compare it with."""

from __future__ import annotations


def brute_force_parents(intervals: list[tuple[int, int]], eps: int) -> list[int | None]:
    """Index of each interval's parent by the rule as written: the smallest interval that is
    longer, or as long and earlier, and contains it within eps; of equally long ones the
    latest line (so equal intervals chain in line order)."""
    found: list[int | None] = []
    for x, (xs, xe) in enumerate(intervals):
        best: tuple[int, int] | None = None
        for p, (ps, pe) in enumerate(intervals):
            longer = (pe - ps) > (xe - xs) or ((pe - ps) == (xe - xs) and p < x)
            if p != x and longer and ps - eps <= xs and xe <= pe + eps:
                key = (pe - ps, -p)
                best = key if best is None or key < best else best
        found.append(None if best is None else -best[1])
    return found
