"""A reference for `tracelens latency` on a trace-bucketed dataset, computed apart from its
out-of-core path: DuckDB aggregates the whole dataset (counts, mean, linear percentiles, max,
errors per stage, and the request summary), and each bucket's spans, which hold whole traces,
are analysed alone by ``core.analyze`` for self time and critical-path time, summed here.
Prints the largest relative difference from `tracelens latency DATASET --format json`.

    python benchmarks/reference_latency.py DATASET [--ours LATENCY.json] [--json OUT]

Without ``--ours`` it runs tracelens itself. Needs DuckDB (benchmarks/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from spark_check import differences

from ml_tracelens.core import analyze
from ml_tracelens.schema import SPAN_SCHEMA

PERCENTILES = (50, 90, 95, 99)


def duckdb_stages(files: str) -> dict[str, dict[str, Any]]:
    connection = duckdb.connect()
    connection.execute(
        "SET threads = 2; SET memory_limit = '2GB'; SET preserve_insertion_order = false"
    )
    listed = ", ".join(f"{p / 100}" for p in PERCENTILES)
    rows = connection.execute(
        f"""
        SELECT name, count(duration_ns), avg(duration_ns / 1e6),
               quantile_cont(duration_ns / 1e6, [{listed}]), max(duration_ns) / 1e6,
               count_if(status = 'error'), count(*)
        FROM read_parquet('{files}') GROUP BY name
        """
    ).fetchall()
    out = {}
    for name, count, mean, quantiles, longest, errors, spans in rows:
        out[name] = {
            "count": count,
            "mean_ms": mean,
            **{f"p{p}_ms": q for p, q in zip(PERCENTILES, quantiles, strict=True)},
            "max_ms": longest,
            "errors": errors,
            "error_rate": errors / spans,
        }
    return out


def duckdb_requests(files: str) -> dict[str, Any]:
    """A request is its root span; in error when the root is, or, for a root without a
    status of its own, when any span of its trace is (algorithms.md)."""
    connection = duckdb.connect()
    connection.execute(
        "SET threads = 2; SET memory_limit = '2GB'; SET preserve_insertion_order = false"
    )
    listed = ", ".join(f"{p / 100}" for p in PERCENTILES)
    count, mean, quantiles, longest, errors = connection.execute(
        f"""
        WITH spans AS (SELECT * FROM read_parquet('{files}')),
        traces AS (SELECT trace_id, bool_or(status = 'error') AS any_error
                   FROM spans GROUP BY trace_id),
        roots AS (
            SELECT s.duration_ns,
                   CASE WHEN s.status = 'unset' THEN t.any_error ELSE s.status = 'error' END
                       AS failed
            FROM spans s JOIN traces t USING (trace_id) WHERE s.parent_id IS NULL)
        SELECT count(*), avg(duration_ns / 1e6), quantile_cont(duration_ns / 1e6, [{listed}]),
               max(duration_ns) / 1e6, count_if(failed) FROM roots
        """
    ).fetchone()
    return {
        "count": count,
        "mean_ms": mean,
        **{f"p{p}_ms": q for p, q in zip(PERCENTILES, quantiles, strict=True)},
        "max_ms": longest,
        "errors": errors,
        "error_rate": errors / count,
    }


def per_bucket_times(dataset: Path) -> tuple[dict[str, dict[str, int]], int]:
    """Per stage, the sum and count of self times and the sum of critical-path times, and the
    durations of the tree tops, each bucket analysed alone."""
    sums: dict[str, dict[str, int]] = {}
    tops = 0
    buckets = sorted(dataset.glob("date=*/bucket=*"))
    for index, bucket in enumerate(buckets):
        frame = pl.read_parquet(sorted(bucket.glob("*.parquet")), columns=list(SPAN_SCHEMA))
        analysed = analyze(frame.cast(dict(SPAN_SCHEMA))).spans
        grouped = analysed.group_by("name").agg(
            self_sum=pl.col("self_ns").sum(),
            self_count=pl.col("self_ns").count(),
            cp_sum=pl.col("cp_ns").fill_null(0).sum(),
        )
        for row in grouped.iter_rows(named=True):
            into = sums.setdefault(row["name"], {"self_sum": 0, "self_count": 0, "cp_sum": 0})
            for key in into:
                into[key] += row[key]
        tops += int(
            analysed.filter(pl.col("is_root") | pl.col("is_orphan"))
            .get_column("duration_ns")
            .clip(lower_bound=0)
            .sum()
        )
        print(f"\r  bucket {index + 1}/{len(buckets)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return sums, tops


def reference(dataset: Path) -> dict[str, Any]:
    files = str(dataset / "date=*" / "bucket=*" / "*.parquet")
    stages = duckdb_stages(files)
    times, tops = per_bucket_times(dataset)
    for name, row in stages.items():
        summed = times[name]
        row["self_mean_ms"] = (
            summed["self_sum"] / summed["self_count"] / 1e6 if summed["self_count"] else None
        )
        row["cp_share"] = summed["cp_sum"] / tops
    return {"requests": duckdb_requests(files), "rows": stages}


def ours(dataset: Path, given: Path | None) -> dict[str, Any]:
    if given is not None:
        document = json.loads(given.read_text())
    else:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ml_tracelens",
                "latency",
                str(dataset),
                "--format",
                "json",
                "-q",
            ],
            capture_output=True,
            check=True,
        )
        document = json.loads(run.stdout)
    rows = {
        row["stage"]: {k: v for k, v in row.items() if k not in ("stage", "distribution")}
        for row in document["rows"]
    }
    return {"requests": document["requests"], "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--ours", type=Path, help="tracelens latency --format json output")
    parser.add_argument("--json", type=Path, help="write the reference here")
    args = parser.parse_args()
    start = time.perf_counter()
    theirs = reference(args.dataset)
    print(f"reference in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(theirs, indent=2))
    mine = ours(args.dataset, args.ours)
    worst = max(differences(mine, theirs), key=lambda item: item[1])
    print(f"largest relative difference: {worst[1]:.3g} at {worst[0] or '(top)'}")
    return 0 if worst[1] <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
