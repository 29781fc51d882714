"""Peer: DuckDB SQL computing the same per-stage numbers from the same files.

OTLP lines are read with ``read_json`` and unnested resourceSpans -> scopeSpans -> spans; log
lines are read as one row each. Per stage: count, ``quantile_cont`` p50/p95/p99 of the duration
in milliseconds (linear interpolation, numpy's default) and the error rate.

By default the reader is told everything: ``format='newline_delimited'``, ``records=true`` and
the column types, naming only the fields the query uses. That is DuckDB at its best (about
400 MB/s on OTLP lines on two cores) and how a DuckDB user gets a stable schema out of OTLP
(auto-detection turns ``status`` into a MAP of JSON values because ``{}`` and
``{"message", "code"}`` disagree). Measured trap: ``columns=`` alone, without ``format`` and
``records``, still runs the sampling auto-detection and is 10-15x slower on these 140 kB lines.
``--auto`` uses ``read_ndjson_auto``, the query most users write first, for comparison.

    pip install duckdb   # benchmark-only; not a tracelens dependency
    python benchmarks/peers/duckdb_query.py otlp FILE.jsonl
    python benchmarks/peers/duckdb_query.py logs FILE.jsonl

Prints ``{"rows": [{"stage", "count", "p50_ms", "p95_ms", "p99_ms", "errors", "error_rate"}]}``.
"""

from __future__ import annotations

import argparse
import json
import sys

import duckdb

OTLP_COLUMNS = (
    "{'resourceSpans': 'STRUCT(scopeSpans STRUCT(spans STRUCT(name VARCHAR, "
    "startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR, status STRUCT(code INTEGER))[])[])[]'}"
)
LOG_COLUMNS = "{'stage': 'VARCHAR', 'duration_ms': 'DOUBLE', 'level': 'VARCHAR'}"

STAGE_STATS = """
SELECT stage,
       count(*) AS count,
       quantile_cont(duration_ms, [0.5, 0.95, 0.99]) AS q,
       count(*) FILTER (WHERE is_error) AS errors,
       count(*) FILTER (WHERE is_error) / count(*) AS error_rate
FROM stages
GROUP BY stage
ORDER BY stage
"""

OTLP_STAGES_EXPLICIT = """
CREATE VIEW stages AS
WITH resources AS (
    SELECT unnest(resourceSpans) AS rs
    FROM read_json($path, format = 'newline_delimited', records = true, columns = {columns},
                   maximum_object_size = 1073741824)
), scopes AS (
    SELECT unnest(rs.scopeSpans) AS ss FROM resources
), spans AS (
    SELECT unnest(ss.spans) AS s FROM scopes
)
SELECT s.name AS stage,
       (CAST(s.endTimeUnixNano AS BIGINT) - CAST(s.startTimeUnixNano AS BIGINT)) / 1e6
           AS duration_ms,
       coalesce(s.status.code = 2, false) AS is_error
FROM spans
"""

OTLP_STAGES_AUTO = """
CREATE VIEW stages AS
WITH resources AS (
    SELECT unnest(resourceSpans) AS rs
    FROM read_ndjson_auto($path, maximum_object_size = 1073741824)
), scopes AS (
    SELECT unnest(rs.scopeSpans) AS ss FROM resources
), spans AS (
    SELECT unnest(ss.spans) AS s FROM scopes
)
SELECT s.name AS stage,
       (CAST(s.endTimeUnixNano AS BIGINT) - CAST(s.startTimeUnixNano AS BIGINT)) / 1e6
           AS duration_ms,
       coalesce(CAST(s.status['code'] AS INTEGER) = 2, false) AS is_error
FROM spans
"""

LOG_STAGES_EXPLICIT = """
CREATE VIEW stages AS
SELECT stage, duration_ms, coalesce(level = 'error', false) AS is_error
FROM read_json($path, format = 'newline_delimited', records = true, columns = {columns})
WHERE stage IS NOT NULL AND duration_ms IS NOT NULL
"""

LOG_STAGES_AUTO = """
CREATE VIEW stages AS
SELECT stage, CAST(duration_ms AS DOUBLE) AS duration_ms,
       coalesce(level = 'error', false) AS is_error
FROM read_ndjson_auto($path)
WHERE stage IS NOT NULL AND duration_ms IS NOT NULL
"""


def per_stage(kind: str, path: str, *, auto: bool = False) -> list[dict[str, object]]:
    con = duckdb.connect()
    if kind == "otlp":
        view = OTLP_STAGES_AUTO if auto else OTLP_STAGES_EXPLICIT.format(columns=OTLP_COLUMNS)
    else:
        view = LOG_STAGES_AUTO if auto else LOG_STAGES_EXPLICIT.format(columns=LOG_COLUMNS)
    # Views cannot take prepared parameters, so the path goes in as a quoted SQL literal.
    con.execute(view.replace("$path", "'" + path.replace("'", "''") + "'"))
    rows = []
    for stage, count, (p50, p95, p99), errors, error_rate in con.execute(STAGE_STATS).fetchall():
        rows.append(
            {
                "stage": stage,
                "count": count,
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "errors": errors,
                "error_rate": error_rate,
            }
        )
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("otlp", "logs"))
    parser.add_argument("path")
    parser.add_argument("--auto", action="store_true", help="let DuckDB infer the JSON schema")
    args = parser.parse_args(argv)
    json.dump({"rows": per_stage(args.kind, args.path, auto=args.auto)}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
