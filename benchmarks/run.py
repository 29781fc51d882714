"""Benchmark harness: tracelens against the peers a user would reach for, on the same dump.

For a generated dump of N spans (OTLP/JSON lines as the Collector writes them, and the same
requests as JSON-lines logs; see ``generate.py``; cached under ``benchmarks/data`` by N and
seed) this runs, R times each and interleaved so drift hits every tool alike:

- ``tracelens latency FILE --format json`` (also ``summary``, and on OTLP ``bottlenecks`` and
  ``show TRACE``), the installed console script of the environment running this harness, each
  a fresh process with an empty cache directory (``TRACELENS_CACHE_DIR``): what a first command
  costs;
- when tracelens has a cache (``--no-cache`` in its help): ``latency`` (and on OTLP ``show``)
  again against a cache the first command filled: what a second command on the same dump costs;
- the reader alone: ``python -c`` calling ``ml_tracelens.ingest.load`` (spans/s read);
- the peers: ``peers/orjson_script.py``, ``peers/duckdb_query.py`` and
  ``peers/polars_query.py`` (per-stage count, p50/p95/p99 and error rate), DuckDB both with the
  reader fully specified (its best) and with ``read_ndjson_auto`` (what most users write
  first); the polars query is tracelens' own stack doing the least the numbers need, so it
  shows the floor under a first ``latency``.

Every command is measured as a process tree (``measure.py``): wall time, the CPU time of all
its processes, the peak RSS of the largest one and of all of them together.
The report is a markdown table of medians with the ratios tracelens/peer on stdout, and a JSON
file with every run. tracelens' per-stage numbers are checked against both peers (counts and
error rates exactly, percentiles within 1e-6 relative) and the generator's counts; any
disagreement prints a mismatch table and makes the exit code 1.

    python benchmarks/run.py --spans 1000000 --repeat 3
    python benchmarks/run.py --spans 100000 --only latency,read --datasets otlp --peers orjson
    python benchmarks/run.py --spans 1000000 --wait-idle 90 --profile   # shared machine
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compare
import measure
import profiling
import report
from generate import dataset_paths, generate

HERE = Path(__file__).resolve().parent
COMMANDS = ("latency", "summary", "bottlenecks", "show", "why", "read", "cache")
DATASETS = ("otlp", "logs")
PEERS = ("orjson", "duckdb", "duckdb-auto", "polars")
READ_SNIPPET = """\
import json, sys, time
started = time.perf_counter()
from ml_tracelens import ingest
imported = time.perf_counter()
telemetry = ingest.load([sys.argv[1]])
loaded = time.perf_counter()
print(json.dumps({
    "spans": telemetry.spans.height,
    "logs": telemetry.logs.height,
    "derived_spans": telemetry.derived_spans,
    "import_s": imported - started,
    "load_s": loaded - imported,
}))
"""


@dataclass
class Case:
    name: str  # unique label, also the row label in the report
    dataset: str
    tool: str  # tracelens, reader, orjson, duckdb, polars
    command: str  # latency, summary, bottlenecks, show, read, peer
    argv: list[str]
    warm: bool = False  # runs against the shared, already filled cache
    runs: list[measure.Run] = field(default_factory=list)


def supports(tracelens: Path, *args: str, needle: str | None = None) -> bool:
    """Whether ``tracelens ARGS --help`` works (and mentions ``needle``)."""
    try:
        done = subprocess.run(
            [str(tracelens), *args, "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and (needle is None or needle in done.stdout)


def build_cases(
    *,
    files: dict[str, Path],
    meta: dict[str, Any],
    commands: set[str],
    peers: set[str],
    tracelens: Path,
    notes: list[str],
) -> list[Case]:
    py = sys.executable
    has_cache = supports(tracelens, "latency", needle="--no-cache")
    has_show = supports(tracelens, "show")
    has_why = supports(tracelens, "why")
    has_duckdb = importlib.util.find_spec("duckdb") is not None
    if "show" in commands and not has_show:
        notes.append("`tracelens show` is not available in this build: skipped.")
    if "why" in commands and not has_why:
        notes.append("`tracelens why` is not available in this build: skipped.")
    if "cache" in commands and not has_cache:
        notes.append("tracelens has no cache (`--no-cache` not in its help): warm runs skipped.")
    if peers & {"duckdb", "duckdb-auto"} and not has_duckdb:
        notes.append("DuckDB peer skipped: `pip install duckdb` (benchmark-only dependency).")
    trace_id = meta["sample_trace_ok"]
    cases: list[Case] = []
    for dataset, path in files.items():
        tl = [str(tracelens)]
        file = str(path)
        if "latency" in commands:
            cases.append(
                Case(
                    "tracelens latency",
                    dataset,
                    "tracelens",
                    "latency",
                    [*tl, "latency", file, "--format", "json"],
                )
            )
        # On logs, summary and the warm-cache latency only: bottlenecks and show stay OTLP-only
        # to keep the run short.
        for command in ("summary", "bottlenecks") if dataset == "otlp" else ("summary",):
            if command in commands:
                cases.append(
                    Case(
                        f"tracelens {command}",
                        dataset,
                        "tracelens",
                        command,
                        [*tl, command, file, "--format", "json"],
                    )
                )
        why = [*tl, "why", file, "--slow", "p95", "--format", "json"]
        if "why" in commands and has_why:
            cases.append(Case("tracelens why --slow p95", dataset, "tracelens", "why", why))
            if "cache" in commands and has_cache:
                cases.append(
                    Case(
                        "tracelens why --slow p95 (warm cache)",
                        dataset,
                        "tracelens",
                        "why",
                        why,
                        warm=True,
                    )
                )
        show = [*tl, "show", trace_id, file, "--format", "json"]
        if dataset == "otlp" and "show" in commands and has_show:
            cases.append(Case("tracelens show TRACE", dataset, "tracelens", "show", show))
        if "cache" in commands and has_cache:
            if dataset == "otlp" and has_show:
                cases.append(
                    Case(
                        "tracelens show TRACE (warm cache)",
                        dataset,
                        "tracelens",
                        "show",
                        show,
                        warm=True,
                    )
                )
            cases.append(
                Case(
                    "tracelens latency (warm cache)",
                    dataset,
                    "tracelens",
                    "latency",
                    [*tl, "latency", file, "--format", "json"],
                    warm=True,
                )
            )
        if "read" in commands:
            cases.append(
                Case(
                    "read only (ingest.load)",
                    dataset,
                    "reader",
                    "read",
                    [py, "-c", READ_SNIPPET, file],
                )
            )
        if "latency" not in commands:
            continue
        if "orjson" in peers:
            orjson_script = [py, str(HERE / "peers" / "orjson_script.py"), dataset, file]
            cases.append(Case("orjson script", dataset, "orjson", "peer", orjson_script))
        duckdb = [py, str(HERE / "peers" / "duckdb_query.py"), dataset, file]
        if "duckdb" in peers and has_duckdb:
            cases.append(Case("DuckDB query", dataset, "duckdb", "peer", duckdb))
        if "duckdb-auto" in peers and has_duckdb:
            cases.append(
                Case("DuckDB auto-schema query", dataset, "duckdb", "peer", [*duckdb, "--auto"])
            )
        if "polars" in peers:
            polars_query = [py, str(HERE / "peers" / "polars_query.py"), dataset, file]
            cases.append(Case("polars query", dataset, "polars", "peer", polars_query))
    return cases


def child_env(cache_dir: Path) -> dict[str, str]:
    return dict(
        os.environ, TRACELENS_CACHE_DIR=str(cache_dir), NO_COLOR="1", COLUMNS="120", TZ="UTC"
    )


def run_rounds(
    cases: list[Case],
    *,
    files: dict[str, Path],
    repeat: int,
    out_dir: Path,
    tracelens: Path,
    wait_idle: float = 0.0,
) -> None:
    warm_dir = Path(tempfile.mkdtemp(prefix="tracelens-bench-warm-"))
    try:
        warm_files = sorted({str(files[c.dataset]) for c in cases if c.warm})
        why_files = {str(files[c.dataset]) for c in cases if c.warm and c.command == "why"}
        for file in warm_files:
            # The first command on the dump fills the cache the warm cases then read; `why`
            # keeps the attribute pairs with the entry, so every warm `why` run finds them.
            filler = ["why", file, "--slow", "p95"] if file in why_files else ["summary", file]
            fill = measure.run_process(
                "fill cache",
                [str(tracelens), *filler, "--format", "json"],
                round_no=0,
                out_dir=out_dir,
                env=child_env(warm_dir),
            )
            if fill.exit_code:
                print(f"warning: filling the cache failed (exit {fill.exit_code})", file=sys.stderr)
        for round_no in range(repeat):
            for case in cases:
                cold_dir = Path(tempfile.mkdtemp(prefix="tracelens-bench-cold-"))
                try:
                    env = child_env(warm_dir if case.warm else cold_dir)
                    label = f"{case.dataset} {case.name}"
                    busy = measure.wait_for_idle(wait_idle) if wait_idle else None
                    run = measure.run_process(
                        label,
                        case.argv,
                        round_no=round_no,
                        out_dir=out_dir,
                        env=env,
                        busy_before=busy,
                    )
                finally:
                    shutil.rmtree(cold_dir, ignore_errors=True)
                case.runs.append(run)
                status = "ok" if run.exit_code == 0 else f"EXIT {run.exit_code}"
                print(
                    f"[{round_no + 1}/{repeat}] {label}: {run.wall_s:.2f} s, "
                    f"{run.max_rss_mb:,.0f} MB ({run.tree_rss_mb:,.0f} MB tree), {status}"
                    + (f" (cores {busy:.0%} busy before)" if busy is not None else ""),
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(warm_dir, ignore_errors=True)


def first_json(case: Case | None) -> Any:
    """The JSON stdout of the first successful run of a case, or None."""
    if case is None:
        return None
    for run in case.runs:
        if run.exit_code == 0:
            try:
                return json.loads(Path(run.stdout).read_text())
            except ValueError:
                return None
    return None


def find(cases: list[Case], dataset: str, name: str) -> Case | None:
    return next((c for c in cases if c.dataset == dataset and c.name == name), None)


def check_agreement(cases: list[Case], meta: dict[str, Any]) -> dict[str, Any]:
    """Per dataset: tracelens latency rows against each peer and the generator's counts."""
    results: dict[str, Any] = {}
    for dataset in sorted({c.dataset for c in cases}):
        latency = first_json(find(cases, dataset, "tracelens latency"))
        if latency is None:
            continue
        ours = latency.get("rows", [])
        ignore = compare.DERIVED_STAGES if dataset == "logs" else ()
        checks: dict[str, Any] = {
            "generator": compare.compare_truth(ours, meta["stages"], ignore_extra=ignore)
        }
        for peer in report.PEERS:
            document = first_json(find(cases, dataset, peer))
            if document is not None:
                checks[peer] = compare.compare_rows(ours, document["rows"], ignore_extra=ignore)
        compared = [r for r in ours if r.get("stage") not in ignore]
        results[dataset] = {"stages": len(compared), "derived": len(ours) - len(compared)}
        results[dataset]["checks"] = checks
    for case in cases:
        if case.command == "show":
            ok = [r for r in case.runs if r.exit_code == 0]
            shown = bool(ok) and meta["sample_trace_ok"] in Path(ok[0].stdout).read_text()
            results.setdefault("show", []).extend(
                [] if shown else [compare.Mismatch("(show)", case.name, "trace id absent", "")]
            )
    summary = first_json(find(cases, "otlp", "tracelens summary"))
    if summary is not None:
        want = {
            "spans": meta["spans"],
            "traces": meta["requests"],
            "error_spans": sum(s["errors"] for s in meta["stages"].values()),
        }
        results["summary"] = [
            compare.Mismatch("(all)", key, summary.get(key), value)
            for key, value in want.items()
            if summary.get(key) != value
        ]
    return results


def ensure_data(spans: int, seed: int, data: Path, datasets: list[str]) -> dict[str, Any]:
    paths = dataset_paths(data, spans, seed)
    missing = not paths["meta"].exists() or any(not paths[d].exists() for d in datasets)
    if missing:
        print(f"generating {spans:,} spans (seed {seed}) into {data} ...", file=sys.stderr)
        meta = generate(spans, seed, data, logs=True)
        print(f"generated in {meta['seconds']:.1f} s", file=sys.stderr)
    return json.loads(paths["meta"].read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (default 3)")
    parser.add_argument(
        "--only",
        default=",".join(COMMANDS),
        help=f"comma-separated subset of {','.join(COMMANDS)} (peers run with latency)",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="otlp,logs or one")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated subset of {','.join(PEERS)} (run with latency)",
    )
    parser.add_argument("--skip-peers", action="store_true", help="run no peer")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run wait up to SECONDS for other processes to leave the cores idle "
        "(shared machines); the busy share seen is recorded",
    )
    parser.add_argument("--data", type=Path, default=HERE / "data", help="dataset cache dir")
    parser.add_argument("--json", type=Path, help="results file (default: in --data)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="auto",
        choices=("auto", "py-spy", "cprofile"),
        help="also profile one cold `latency` per dataset (py-spy when installed)",
    )
    args = parser.parse_args(argv)
    commands = {c.strip() for c in args.only.split(",") if c.strip()}
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    peers = {p.strip() for p in args.peers.split(",") if p.strip()}
    unknown = (commands - set(COMMANDS)) | (set(datasets) - set(DATASETS)) | (peers - set(PEERS))
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    measure.become_subreaper()  # count the CPU of helper processes the commands leave behind
    tracelens = measure.tracelens_executable()
    if not tracelens.exists():
        parser.error(f"{tracelens} not found: install tracelens into this environment")

    meta = ensure_data(args.spans, args.seed, args.data, datasets)
    paths = dataset_paths(args.data, args.spans, args.seed)
    files = {d: paths[d] for d in datasets}
    for path in files.values():
        measure.warm_page_cache(path)
    notes: list[str] = []
    cases = build_cases(
        files=files,
        meta=meta,
        commands=commands,
        peers=set() if args.skip_peers else peers,
        tracelens=tracelens,
        notes=notes,
    )
    out_dir = args.data / "runs" / f"{args.spans}-s{args.seed}"
    load_before = os.getloadavg()
    run_rounds(
        cases,
        files=files,
        repeat=args.repeat,
        out_dir=out_dir,
        tracelens=tracelens,
        wait_idle=args.wait_idle,
    )
    notes.append(
        "load average (1 min) before/after the runs: "
        f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    agreement = check_agreement(cases, meta)
    profile = None
    if args.profile:
        profiler = None if args.profile == "auto" else args.profile
        profile = profiling.profile_latency(
            tracelens, files, out_dir, child_env, profiler=profiler, wait_idle=args.wait_idle
        )
    results = report.results(
        cases=cases,
        meta=meta,
        files=files,
        repeat=args.repeat,
        agreement=agreement,
        notes=notes,
        profile=profile,
        revision=measure.git_revision(HERE.parent),
    )
    json_path = args.json or args.data / f"results-{args.spans}-s{args.seed}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.markdown(results))
    print(f"\nresults: {json_path}", file=sys.stderr)
    failed = any(r["exit_code"] for r in results["runs"])
    return 1 if failed or not results["agree"] else 0


if __name__ == "__main__":
    sys.exit(main())
