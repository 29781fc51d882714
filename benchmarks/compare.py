"""Agreement checks: tracelens' per-stage numbers against each peer and the generator's truth.

Counts, error counts and error rates must be equal exactly; p50/p95/p99 within 1e-6 relative
(all three tools use linear interpolation between closest ranks, but sum in different orders).
Rows are matched by stage name. A stage only one side has is a mismatch, except tracelens'
derived ``request`` root on log input (one per request, built from the stage lines; the peers
have no such notion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EXACT = ("count", "errors", "error_rate")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
REL_TOLERANCE = 1e-6
DERIVED_STAGES = ("request",)


@dataclass(frozen=True)
class Mismatch:
    stage: str
    field: str
    tracelens: Any
    other: Any

    @property
    def rel_diff(self) -> float | None:
        if isinstance(self.tracelens, int | float) and isinstance(self.other, int | float):
            scale = max(abs(self.tracelens), abs(self.other))
            return abs(self.tracelens - self.other) / scale if scale else 0.0
        return None


def by_stage(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(row["stage"]): row for row in rows}


def compare_rows(
    tracelens: Iterable[Mapping[str, Any]],
    peer: Iterable[Mapping[str, Any]],
    *,
    ignore_extra: Iterable[str] = (),
) -> list[Mismatch]:
    ours, theirs = by_stage(tracelens), by_stage(peer)
    ignored = set(ignore_extra)
    problems: list[Mismatch] = []
    for stage in sorted(set(ours) | set(theirs)):
        if stage not in theirs:
            if stage not in ignored:
                problems.append(Mismatch(stage, "(stage)", "present", "absent"))
            continue
        if stage not in ours:
            problems.append(Mismatch(stage, "(stage)", "absent", "present"))
            continue
        a, b = ours[stage], theirs[stage]
        for key in EXACT:
            if a.get(key) != b.get(key):
                problems.append(Mismatch(stage, key, a.get(key), b.get(key)))
        for key in PERCENTILES:
            x, y = a.get(key), b.get(key)
            if x is None or y is None:
                if x is not y:
                    problems.append(Mismatch(stage, key, x, y))
                continue
            if abs(x - y) > REL_TOLERANCE * max(abs(x), abs(y)):
                problems.append(Mismatch(stage, key, x, y))
    return problems


def compare_truth(
    tracelens: Iterable[Mapping[str, Any]],
    stages: Mapping[str, Mapping[str, int]],
    *,
    ignore_extra: Iterable[str] = (),
) -> list[Mismatch]:
    """Counts and error counts per stage against what the generator wrote."""
    truth = [
        {"stage": name, "count": item["count"], "errors": item["errors"]}
        for name, item in stages.items()
    ]
    ours = [{k: row.get(k) for k in ("stage", "count", "errors")} for row in tracelens]
    problems = compare_rows(ours, truth, ignore_extra=ignore_extra)
    # compare_rows also checks error_rate and percentiles: both absent here, so they agree.
    return problems


def mismatch_table(problems: list[Mismatch], other: str) -> str:
    lines = [
        f"| stage | field | tracelens | {other} | rel diff |",
        "|---|---|---|---|---|",
    ]
    for p in problems:
        rel = p.rel_diff
        lines.append(
            f"| {p.stage} | {p.field} | {p.tracelens} | {p.other} | "
            f"{'' if rel is None else f'{rel:.2e}'} |"
        )
    return "\n".join(lines)
