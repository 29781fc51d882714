"""Results of a benchmark run: the JSON document, its markdown rendering, and the profile.

Ratios are tracelens' median wall time over the peer's median wall time from the same run, so
they compare like with like on one machine at one moment (below 1: tracelens is faster).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import compare
import measure
import profiling

if TYPE_CHECKING:
    from run import Case

DATASET_TITLES = {"otlp": "OTLP/JSON lines (Collector file exporter)", "logs": "JSON-lines logs"}
PEERS = ("orjson script", "DuckDB query", "DuckDB auto-schema query", "polars query")


def _read_stats(case: Case) -> dict[str, Any] | None:
    """Throughput of the reader alone, from what the ``python -c`` snippet printed."""
    outputs = []
    for run in case.runs:
        if run.exit_code == 0:
            try:
                outputs.append(json.loads(Path(run.stdout).read_text()))
            except ValueError:
                continue
    if not outputs:
        return None
    load_s = statistics.median(o["load_s"] for o in outputs)
    wall_s = statistics.median(r.wall_s for r in case.runs if r.exit_code == 0)
    first = outputs[0]
    records = first["spans"] if case.dataset == "otlp" else first["logs"]
    return {
        "spans": first["spans"],
        "log_records": first["logs"],
        "derived_spans": first["derived_spans"],
        "import_s": statistics.median(o["import_s"] for o in outputs),
        "load_s": load_s,
        "records_per_s": records / load_s if load_s else None,
        "records_per_s_process": records / wall_s if wall_s else None,
        "unit": "spans" if case.dataset == "otlp" else "log lines",
    }


def _ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        mine = {r["name"]: r for r in rows if r["dataset"] == dataset}
        for name, row in mine.items():
            if row["command"] != "latency" or "wall_s" not in row["summary"]:
                continue
            for peer in PEERS:
                other = mine.get(peer, {}).get("summary", {})
                if "wall_s" in other:
                    key = f"{dataset}: {name} / {peer}"
                    out[key] = {
                        "wall": row["summary"]["wall_s"] / other["wall_s"],
                        "cpu": row["summary"]["cpu_s"] / other["cpu_s"],
                        "peak_rss_tree": row["summary"]["tree_rss_mb"] / other["tree_rss_mb"],
                    }
    return out


def _mismatch_dicts(problems: list[compare.Mismatch]) -> list[dict[str, Any]]:
    return [
        {"stage": p.stage, "field": p.field, "tracelens": p.tracelens, "other": p.other}
        for p in problems
    ]


def results(
    *,
    cases: list[Case],
    meta: dict[str, Any],
    files: dict[str, Path],
    repeat: int,
    agreement: dict[str, Any],
    notes: list[str],
    profile: dict[str, Any] | None,
    revision: str | None,
) -> dict[str, Any]:
    rows = []
    for case in cases:
        row = {
            "name": case.name,
            "dataset": case.dataset,
            "tool": case.tool,
            "command": case.command,
            "warm_cache": case.warm,
            "argv": [Path(a).name if a.startswith("/") else a for a in case.argv],
            "summary": measure.summarize(case.runs),
        }
        if case.command == "read":
            row["read"] = _read_stats(case)
        rows.append(row)
    agree_json: dict[str, Any] = {}
    agree = True
    for dataset, item in agreement.items():
        if dataset in ("summary", "show"):
            agree_json[dataset] = _mismatch_dicts(item)
            agree = agree and not item
            continue
        agree_json[dataset] = {
            "stages": item["stages"],
            "derived": item.get("derived", 0),
            "checks": {k: _mismatch_dicts(v) for k, v in item["checks"].items()},
        }
        agree = agree and not any(item["checks"].values())
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "revision": revision,
        "machine": measure.machine(),
        "dataset": {k: v for k, v in meta.items() if k != "stages"},
        "stages_generated": meta["stages"],
        "files": {d: {"path": str(p), "bytes": p.stat().st_size} for d, p in files.items()},
        "repeat": repeat,
        "cases": rows,
        "ratios": _ratios(rows),
        "agreement": agree_json,
        "agree": agree,
        "notes": notes,
        "profile": profile,
        "runs": [run.as_dict() | {"dataset": c.dataset} for c in cases for run in c.runs],
    }


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    ds = res["dataset"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    out = [
        f"## tracelens benchmark: {ds['spans']:,} spans (seed {ds['seed']}), "
        f"median of {res['repeat']} runs",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} cores usable, {m['memory_gb']} GB RAM, "
        f"{m['os']}, Python {m['python']}; {versions}; tracelens revision {res['revision']}; "
        f"{res['when']}.",
    ]
    for dataset, info in res["files"].items():
        rows = [r for r in res["cases"] if r["dataset"] == dataset]
        peers = {r["name"]: r["summary"].get("wall_s") for r in rows if r["name"] in PEERS}
        out += [
            "",
            f"### {DATASET_TITLES[dataset]}: {Path(info['path']).name} "
            f"({info['bytes'] / 1e6:,.0f} MB, {ds['spans']:,} "
            f"{'spans' if dataset == 'otlp' else 'lines'})",
            "",
            "| command | wall s | min-max s | CPU s | peak RSS MB | tree RSS MB | vs orjson script "
            "| vs DuckDB | vs DuckDB auto-schema | vs polars query |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in rows:
            s = row["summary"]
            if "wall_s" not in s:
                out.append(f"| {row['name']} | FAILED (exit {s['exit_codes']}) | | | | | | | | |")
                continue
            ratio = []
            for peer in PEERS:
                base = peers.get(peer)
                ok = row["command"] == "latency" and base
                ratio.append(f"{s['wall_s'] / base:.2f}x" if ok else "")
            out.append(
                f"| {row['name']} | {s['wall_s']:.2f} | {s['wall_min_s']:.2f}-{s['wall_max_s']:.2f}"
                f" | {s['cpu_s']:.2f} | {s['max_rss_mb']:,.0f} | {s['tree_rss_mb']:,.0f}"
                f" | {' | '.join(ratio)} |"
            )
        out += [
            "",
            "CPU s: user + system time of the whole process tree (helper processes included). "
            "Peak RSS: the largest single process; tree RSS: the peak of all its processes' "
            "resident memory summed (sampled every 50 ms).",
        ]
        cpu = [
            f"{key.split(' / ')[1]} {value['cpu']:.2f}x"
            for key, value in res["ratios"].items()
            if key.startswith(f"{dataset}: tracelens latency / ")
        ]
        if cpu:
            out += [
                "",
                "CPU time (user + system, all threads) of `tracelens latency` against: "
                + ", ".join(cpu)
                + ". Less sensitive than wall time to other load on the machine.",
            ]
        out += _why_lines(rows)
        for row in rows:
            read = row.get("read")
            if read:
                out += [
                    "",
                    f"Reader alone (`ingest.load`): {read['records_per_s']:,.0f} {read['unit']}/s "
                    f"({read['load_s']:.2f} s for {ds['spans']:,}; "
                    f"{read['records_per_s_process']:,.0f}/s counting interpreter start and "
                    f"imports)"
                    + (
                        f"; {read['derived_spans']:,} spans derived from the log lines"
                        if dataset == "logs"
                        else ""
                    )
                    + ".",
                ]
        out += ["", *_agreement_lines(res["agreement"].get(dataset))]
    if "summary" in res["agreement"]:
        problems = res["agreement"]["summary"]
        out += [
            "",
            "`summary` spans/traces/error_spans match the generator."
            if not problems
            else "`summary` disagrees with the generator: "
            + "; ".join(f"{p['field']} {p['tracelens']} != {p['other']}" for p in problems),
        ]
    if "show" in res["agreement"]:
        problems = res["agreement"]["show"]
        out += [
            "",
            "`show` printed the requested trace."
            if not problems
            else "`show` did not print the requested trace: "
            + ", ".join(p["field"] for p in problems),
        ]
    busy = [r["busy_before"] for r in res["runs"] if r.get("busy_before") is not None]
    if busy:
        out += [
            "",
            f"Other processes kept the cores {statistics.median(busy):.0%} busy (median; "
            f"worst {max(busy):.0%}) in the second before each run.",
        ]
    for note in res["notes"]:
        out += ["", f"Note: {note}"]
    if res.get("profile"):
        out += ["", *profiling.markdown_lines(res["profile"])]
    return "\n".join(out)


def _why_lines(rows: list[dict[str, Any]]) -> list[str]:
    """`why` against `latency` of the same run, cold and warm (when both were measured)."""
    wall = {
        (row["command"], row["warm_cache"]): row["summary"].get("wall_s")
        for row in rows
        if row["tool"] == "tracelens"
    }
    parts = []
    for warm, label in ((False, "first command"), (True, "cache filled")):
        why, latency = wall.get(("why", warm)), wall.get(("latency", warm))
        if why and latency:
            parts.append(f"{label} {why / latency:.2f}x ({why:.2f} s against {latency:.2f} s)")
    if not parts:
        return []
    return ["", "`tracelens why --slow p95` against `tracelens latency`: " + ", ".join(parts) + "."]


def _agreement_lines(item: dict[str, Any] | None) -> list[str]:
    if item is None:
        return ["Agreement: not checked (no successful `tracelens latency` run)."]
    lines = []
    for other, problems in item["checks"].items():
        if not problems:
            lines.append(
                f"Agreement with {other}: {item['stages']} stages, counts and error rates "
                "equal, p50/p95/p99 within 1e-6 relative"
                + (" (tracelens' derived `request` root not compared)." if item["derived"] else ".")
                if other != "generator"
                else "Agreement with the generator: per-stage counts and errors equal."
            )
            continue
        mismatches = [compare.Mismatch(**p) for p in problems]
        lines += [
            f"**MISMATCH with {other}** ({len(problems)}):",
            "",
            compare.mismatch_table(mismatches, other),
            "",
        ]
    return lines
