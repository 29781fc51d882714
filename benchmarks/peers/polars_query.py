"""Peer: the polars query a user of tracelens' own stack would write, and so its floor.

polars' NDJSON reader is told the types of only the fields the numbers need (a log line's
``stage``, ``duration_ms`` and ``level``; a span's name, start, end and status code), then one
group-by computes, per stage: count, p50/p95/p99 of the duration in milliseconds (linear
interpolation, numpy's default) and the error rate. No span tree, no self time or critical
path, no check that the reader lost nothing, no cache: the least that tracelens, which reads
with the same library, could spend on a first ``latency``.

    python benchmarks/peers/polars_query.py otlp FILE.jsonl
    python benchmarks/peers/polars_query.py logs FILE.jsonl

Prints ``{"rows": [{"stage", "count", "p50_ms", "p95_ms", "p99_ms", "errors", "error_rate"}]}``.
"""

from __future__ import annotations

import sys

import orjson
import polars as pl

QUANTILES = (0.5, 0.95, 0.99)

LOG_SCHEMA = {"stage": pl.String, "duration_ms": pl.Float64, "level": pl.String}

SPAN = pl.Struct(
    {
        "name": pl.String,
        "startTimeUnixNano": pl.String,
        "endTimeUnixNano": pl.String,
        "status": pl.Struct({"code": pl.Int64}),
    }
)
OTLP_SCHEMA = {
    "resourceSpans": pl.List(
        pl.Struct({"scopeSpans": pl.List(pl.Struct({"spans": pl.List(SPAN)}))})
    )
}


def log_stages(path: str) -> pl.LazyFrame:
    return (
        pl.scan_ndjson(path, schema=LOG_SCHEMA)
        .filter(pl.col("stage").is_not_null() & pl.col("duration_ms").is_not_null())
        .select(
            "stage",
            "duration_ms",
            is_error=(pl.col("level") == "error").fill_null(False),
        )
    )


def otlp_stages(path: str) -> pl.LazyFrame:
    spans = (
        pl.scan_ndjson(path, schema=OTLP_SCHEMA)
        .select(pl.col("resourceSpans").explode().struct.field("scopeSpans"))
        .select(pl.col("scopeSpans").explode().struct.field("spans"))
        .select(pl.col("spans").explode())
        .unnest("spans")
    )
    start = pl.col("startTimeUnixNano").cast(pl.Int64)
    end = pl.col("endTimeUnixNano").cast(pl.Int64)
    return spans.select(
        stage="name",
        duration_ms=(end - start) / 1e6,
        is_error=(pl.col("status").struct.field("code") == 2).fill_null(False),
    )


def per_stage(kind: str, path: str) -> list[dict[str, object]]:
    stages = otlp_stages(path) if kind == "otlp" else log_stages(path)
    duration = pl.col("duration_ms")
    table = (
        stages.group_by("stage")
        .agg(
            count=pl.len(),
            **{f"p{round(q * 100)}_ms": duration.quantile(q, "linear") for q in QUANTILES},
            errors=pl.col("is_error").sum(),
        )
        .with_columns(error_rate=pl.col("errors") / pl.col("count"))
        .sort("stage")
        .collect()
    )
    return table.to_dicts()


def main(argv: list[str]) -> None:
    kind, path = argv
    sys.stdout.buffer.write(
        orjson.dumps({"rows": per_stage(kind, path)}, option=orjson.OPT_INDENT_2) + b"\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
