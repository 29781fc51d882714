"""What `tracelens why` knows of every unit before anything is selected: its duration and
error, its critical-path time per stage, and what it holds (``why_holdings.Holdings``).

Selecting, testing and ranking read only this, so the index of a dump's requests (every span
of each, no condition) is kept with its cache entry (``DERIVED``): a second `why` on the same
dump, whatever it selects, reads a few tables of one row per request instead of the spans.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import polars as pl

from ml_tracelens.core import Analysis, Derived
from ml_tracelens.core.attribute_pairs import PARSER_VERSION, AttributePairs, attribute_pairs
from ml_tracelens.reports import why_holdings
from ml_tracelens.reports.why_shifts import StageTimes
from ml_tracelens.reports.why_units import matching_units, stage_times, units_of

Scope = Literal["request", "root"]

#: Changes whenever what the tables hold or how they are laid out changes: tables kept by
#: another version are made again.
VERSION = 1


@dataclass(frozen=True)
class WhyIndex:
    """``units`` (``_unit``, ``duration_ns``, ``_error``, and ``_where`` / ``_baseline_where``:
    whether a member span meets that condition), a row per unit in id order; ``times``, their
    critical-path time per stage; ``holdings``, what each holds."""

    units: pl.DataFrame
    times: StageTimes
    holdings: why_holdings.Holdings

    def tables(self) -> dict[str, pl.DataFrame]:
        """The index as tables (``from_tables`` reads them back)."""
        per_unit = pl.concat(
            [
                self.units.select("duration_ns", "_error", _timed=self.times.timed),
                *(f for f in (self.times.matrix, self.holdings.words) if f.width),
            ],
            how="horizontal",
        )
        return {
            "units": per_unit,
            "stages": pl.DataFrame({"stage": self.times.stages}, schema={"stage": pl.String}),
            "pairs": self.holdings.pairs,
            "facts": self.holdings.facts,
        }

    @classmethod
    def from_tables(cls, tables: dict[str, pl.DataFrame]) -> WhyIndex:
        per_unit = tables["units"]
        return cls(
            units=per_unit.select("duration_ns", "_error").with_row_index("_unit"),
            times=StageTimes(
                stages=tables["stages"].get_column("stage").to_list(),
                matrix=per_unit.select(pl.col(r"^_s\d+$")),
                timed=per_unit.get_column("_timed"),
            ),
            holdings=why_holdings.Holdings(
                pairs=tables["pairs"],
                words=per_unit.select(pl.col(r"^_w\d+$")),
                facts=tables["facts"],
            ),
        )


def index(
    analysed: pl.DataFrame,
    *,
    pairs: AttributePairs | None,
    stage: str | None = None,
    scope: Scope = "request",
    conditions: dict[str, str] | None = None,
    errors: bool = True,
) -> WhyIndex:
    """The index of the units of ``analysed``: requests, or the spans of ``stage``; their
    candidates from every member span, or only the root's with ``scope="root"``; a flag per
    condition (``where``, ``baseline_where``: a ``--where`` text) that any member span meets;
    ``_error`` only with ``errors`` (it takes a pass over every trace). ``pairs``: the
    attribute pairs of ``analysed`` when they are at hand, else they are parsed here."""
    if pairs is None or not pairs.fits(analysed):
        pairs = attribute_pairs(analysed)
    analysed = analysed.with_columns(
        pairs.codes.get_column(c).alias(why_holdings.code_column(c)) for c in pairs.codes.columns
    )
    conditions = conditions or {}
    units, spans = units_of(analysed, stage=stage, conditions=conditions, errors=errors)
    members = spans.filter(pl.col("is_root")) if stage is None and scope == "root" else spans
    # The stage times need nothing the holdings do: they are summed on a thread meanwhile
    # (polars releases the GIL, and much of either part runs on one core).
    with ThreadPoolExecutor(max_workers=1) as pool:
        timing = pool.submit(stage_times, analysed, spans, units.height, stage)
        held = why_holdings.holdings(members, pairs, units.height)
        times = timing.result()
    flags = {f"_{option}": matching_units(units, spans, option) for option in conditions}
    return WhyIndex(
        units=units.select("_unit", "duration_ns", "_error", **flags), times=times, holdings=held
    )


def serves(*, stage: str | None, scope: str, where: str | None, baseline_where: str | None) -> bool:
    """Whether the index of a dump's requests (``DERIVED``: every span, no condition) answers
    a `why` with these options."""
    return stage is None and scope == "request" and where is None and baseline_where is None


def _derived_tables(analysis: Analysis) -> dict[str, pl.DataFrame] | None:
    if analysis.spans.is_empty():
        return None
    return index(analysis.spans, pairs=analysis.pairs).tables()


#: The index of a dump's requests (every span, no condition), kept with its cache entry. What
#: it holds depends on how attribute texts are read too: another parser makes it again.
DERIVED = Derived(name="why", version=VERSION * 1000 + PARSER_VERSION, make=_derived_tables)
