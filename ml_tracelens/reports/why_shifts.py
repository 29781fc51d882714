"""The critical-path side of ``tracelens why``: for each finding, the stage whose mean
critical-path time per unit grows most in the units with the finding against the others.

A unit has a categorical finding when it has the value, a numeric one when its value lies on the
selection's side of the midpoint between the two medians; with ``--stage`` (span units) the
times are those of the request each span belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ml_tracelens.core.tree import dense_codes, filled
from ml_tracelens.durations import NS_PER_MS
from ml_tracelens.reports import why_candidates
from ml_tracelens.reports.documents import StageShift, WhyRow


@dataclass(frozen=True)
class StageTimes:
    """Per unit (row = its ``_unit``) the critical-path time of each stage, ns: column
    ``_s{i}`` for ``stages[i]`` (named by index: a stage may be called anything); ``timed``:
    the units that have them (a span of a stage outside any request has none)."""

    stages: list[str]
    matrix: pl.DataFrame
    timed: pl.Series


def stage_times(spans: pl.DataFrame, unit_count: int) -> StageTimes:
    """The critical-path time per stage of each unit, from its spans (``_unit``, ``name``,
    ``cp_ns``)."""
    on_path = spans.select("_unit", "cp_ns", "name").filter(pl.col("cp_ns").fill_null(0) > 0)
    # Stage names are hashed once (as dense codes); the rest is done on integers.
    names = on_path.get_column("name")
    codes, first = dense_codes(names)
    # A null name is a stage too: it takes the code past every other.
    null_code = first.len()
    found = pl.DataFrame({"code": codes.gather(first), "name": names.gather(first).cast(pl.String)})
    if codes.null_count():
        found = pl.concat(
            [found, pl.DataFrame({"code": [null_code], "name": [None]}, schema=found.schema)]
        )
    found = found.sort("name", nulls_last=False)
    stages = found.get_column("name").to_list()
    count = len(stages)
    index = filled(None, null_code + 1, pl.UInt64).scatter(
        found.get_column("code"),
        pl.arange(0, count, dtype=pl.UInt64, eager=True),
    )
    # One key per (unit, stage): the sums land in a unit-major table, a column per stage.
    keyed = on_path.select(
        _key=pl.col("_unit").cast(pl.UInt64) * count
        + index.gather(codes.fill_null(null_code).cast(pl.UInt64)),
        cp_ns="cp_ns",
    )
    sums = keyed.group_by("_key").agg(pl.col("cp_ns").sum())
    table = filled(0, unit_count * count, pl.Int64).scatter(
        sums.get_column("_key"), sums.get_column("cp_ns")
    )
    columns = {
        f"_s{i}": table.gather(pl.arange(i, unit_count * count, count, eager=True))
        for i in range(count)
    }
    timed = filled(True, unit_count, pl.Boolean)
    return StageTimes(stages=stages, matrix=pl.DataFrame(columns), timed=timed)


def request_times(
    requests_units: pl.DataFrame, members: pl.DataFrame, spans: pl.DataFrame
) -> StageTimes:
    """Per span unit (``--stage``, ``spans`` with ``_unit``, ``trace_id``, ``top_id``) the
    stage times of the request it belongs to (the request units and their member spans)."""
    per_request = stage_times(members, requests_units.height)
    owner = (
        spans.select("_unit", "trace_id", "top_id")
        .join(
            requests_units.select("trace_id", _request="_unit", top_id="span_id"),
            on=["trace_id", "top_id"],
            how="left",
        )
        .sort("_unit")
        .get_column("_request")
    )
    return StageTimes(
        stages=per_request.stages,
        matrix=per_request.matrix.select(pl.all().gather(owner.fill_null(0))),
        timed=owner.is_not_null(),
    )


def add_stage_shifts(
    rows: list[WhyRow],
    candidates: why_candidates.Candidates,
    times: StageTimes,
    units: pl.Series,
) -> None:
    """Each row's ``stage_shift``: the stage whose mean critical-path time per unit grows most
    in the units with the finding against the other ``units`` (of those with stage times).

    A unit has a categorical finding when it has the value; a numeric one when its value lies
    on the selection's side of the midpoint of the two medians. Every sum is taken in one pass
    over the units (a column per stage, a flag per finding)."""
    unit_count = times.timed.len()
    having = _having(rows, candidates, unit_count)
    if not having or not times.stages:
        return
    tested = filled(False, unit_count, pl.Boolean).scatter(units, True) & times.timed
    frame = pl.concat(
        [f for f in (times.matrix, candidates.words) if f.width], how="horizontal"
    ).with_columns(_tested=tested)
    stage_columns = [f"_s{i}" for i in range(len(times.stages))]
    frame = frame.with_columns((h & pl.col("_tested")).alias(f"_h{i}") for i, h in having.items())
    sums = frame.select(
        pl.col("_tested").sum().alias("n"),
        *(pl.col(c).filter(pl.col("_tested")).sum().alias(f"t{c}") for c in stage_columns),
        *(pl.col(f"_h{i}").sum().alias(f"n{i}") for i in having),
        *(
            pl.col(c).filter(pl.col(f"_h{i}")).sum().alias(f"{i}{c}")
            for i in having
            for c in stage_columns
        ),
    ).row(0, named=True)
    n_units = sums["n"]
    totals = [sums[f"t{c}"] for c in stage_columns]
    for index in having:
        n_with = sums[f"n{index}"]
        if not n_with or n_with >= n_units:
            continue
        deltas = [
            (
                (sums[f"{index}{c}"] / n_with - (total - sums[f"{index}{c}"]) / (n_units - n_with))
                / NS_PER_MS,
                stage,
            )
            for c, stage, total in zip(stage_columns, times.stages, totals, strict=True)
        ]
        delta, stage = max(deltas, key=lambda d: (d[0], [-ord(ch) for ch in d[1]]))
        rows[index].stage_shift = StageShift(stage=stage, delta_ms=delta)


def _having(
    rows: list[WhyRow], candidates: why_candidates.Candidates, unit_count: int
) -> dict[int, pl.Expr]:
    """Per row (by its index), which units have its finding: an expression over the units'
    words, or a flag per unit id (of ``unit_count``)."""
    wanted = pl.DataFrame(
        [(i, r.attribute, r.value) for i, r in enumerate(rows) if r.value is not None],
        schema={"_row": pl.UInt32, "attribute": pl.String, "value": pl.String},
        orient="row",
    ).join(candidates.pairs, on=["attribute", "value"])
    having = {
        index: candidates.having(pair, unit_count)
        for index, pair in wanted.select("_row", "pair").iter_rows()
    }
    for index, row in enumerate(rows):
        low, high = row.baseline_median, row.selection_median
        if row.value is not None or low is None or high is None or low == high:
            continue
        number, midpoint = pl.col("number"), (low + high) / 2
        side = number > midpoint if high > low else number < midpoint
        units = candidates.numeric.filter((pl.col("attribute") == row.attribute) & side)
        having[index] = pl.lit(
            filled(False, unit_count, pl.Boolean).scatter(units.get_column("_unit"), True)
        )
    return dict(sorted(having.items()))
