"""The stages an LLM span's attributes describe, as child spans: ``queue``, ``prefill`` and
``decode`` laid out in time under the span, so they take part in self time, the critical path
and every span report like spans the dump held (``--no-derived-stages`` turns them off)."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

#: the derived stages and the canonical time each lasts, in their order in time
STAGES = (("queue", "queue_ns"), ("prefill", "prefill_ns"), ("decode", "decode_ns"))
#: the attributes of a derived stage span (``tracelens.derived``, as log-derived spans have)
DERIVED_STAGE_MARK = '{"tracelens.derived":"llm"}'


def derived_stages(
    spans: pl.DataFrame, llm: pl.DataFrame, *, schema: Mapping[str, pl.DataType] | pl.Schema
) -> pl.DataFrame:
    """Child spans ``queue``, ``prefill``, ``decode`` of the LLM spans that carry those times and
    have no child overlapping them: laid out from the span's start one after the other, each
    clipped to the span's end; zero-length stages and untimed parents get none.
    ``schema``: the frame's columns (canonical ones and any extra the caller keeps)."""
    times = [name for _, name in STAGES]
    carriers = llm.filter(
        pl.any_horizontal(pl.col(t).is_not_null() for t in times)
        & pl.col("start_ns").is_not_null()
        & pl.col("end_ns").is_not_null()
        & (pl.col("end_ns") > pl.col("start_ns"))
    )
    if carriers.is_empty():
        return pl.DataFrame(schema=schema)
    start = pl.col("start_ns")
    offsets = {}
    running: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for stage, column in STAGES:
        length = pl.col(column).fill_null(0)
        offsets[stage] = (running, running + length)
        running = running + length
    laid = carriers.select(
        "trace_id",
        "span_id",
        "service",
        "start_ns",
        "end_ns",
        _layout_end=pl.min_horizontal(start + running, pl.col("end_ns")),
        **{f"_{s}_from": start + a for s, (a, _) in offsets.items()},
        **{f"_{s}_to": start + b for s, (_, b) in offsets.items()},
        **{f"_{s}_has": pl.col(c).is_not_null() for s, c in STAGES},
    )
    # A span whose own children already cover the time keeps them: no second breakdown.
    children = spans.select(
        "trace_id", _parent="parent_id", _child_start="start_ns", _child_end="end_ns"
    ).join(laid.select("trace_id", _parent="span_id"), on=["trace_id", "_parent"], how="semi")
    overlapped = (
        laid.join(children, left_on=["trace_id", "span_id"], right_on=["trace_id", "_parent"])
        .filter(
            (pl.col("_child_start") < pl.col("_layout_end"))
            & (pl.col("_child_end") > pl.col("start_ns"))
        )
        .select("trace_id", "span_id")
        .unique()
    )
    laid = laid.join(overlapped, on=["trace_id", "span_id"], how="anti")
    source = spans.select("trace_id", "span_id", *(c for c in ("source",) if c in schema))
    laid = laid.join(source.unique(["trace_id", "span_id"]), on=["trace_id", "span_id"], how="left")
    parts = []
    for stage, _ in STAGES:
        begin = pl.min_horizontal(pl.col(f"_{stage}_from"), pl.col("end_ns"))
        end = pl.min_horizontal(pl.col(f"_{stage}_to"), pl.col("end_ns"))
        part = laid.filter(pl.col(f"_{stage}_has") & (end > begin)).select(
            trace_id="trace_id",
            span_id=pl.col("span_id") + pl.lit(f"/{stage}"),
            parent_id="span_id",
            service="service",
            name=pl.lit(stage),
            kind=pl.lit("internal"),
            start_ns=begin,
            end_ns=end,
            duration_ns=end - begin,
            status=pl.lit("unset"),
            attributes=pl.lit(DERIVED_STAGE_MARK),
            **({"source": pl.col("source")} if "source" in laid.columns else {}),
        )
        parts.append(part)
    made = pl.concat(parts, how="vertical")
    columns = [
        made.get_column(name).cast(dtype)
        if name in made.columns
        else pl.Series(name, [None] * made.height, dtype=dtype)
        for name, dtype in schema.items()
    ]
    return pl.DataFrame(columns)
