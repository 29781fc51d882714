"""Where `tracelens latency` spends its time: one cold run under a profiler, summarized.

Two profilers:

- ``py-spy`` (preferred when installed): samples the real process from outside at 250 Hz with
  ``--idle`` (so time the main thread spends waiting on polars' worker threads inside
  ``collect`` counts against the Python line that called it) and ``--subprocesses`` (so parallel
  readers are seen). No overhead on the profiled code.
- ``cProfile``: deterministic, in-process; adds overhead to Python-heavy code (the readers'
  per-line loops) and sees native polars work only as the call that started it.

Both are summarized the same way: the functions where samples/time land (own time) and the
tracelens functions by inclusive time, which reads as the phase breakdown (read, analyse, report).
"""

from __future__ import annotations

import pstats
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import measure

PYSPY_RATE = 250
TOP = 15
# cProfile's own command line swallows SystemExit (and the exit code with it): run main here.
CPROFILE_SNIPPET = """\
import cProfile, sys
from ml_tracelens.cli import main
out, sys.argv = sys.argv[1], ["tracelens", *sys.argv[2:]]
profiler, code = cProfile.Profile(), 0
try:
    profiler.runcall(main)
except SystemExit as exc:
    code = exc.code
profiler.dump_stats(out)
sys.exit(code)
"""


def available_profiler() -> str:
    return "py-spy" if (Path(sys.executable).parent / "py-spy").exists() else "cprofile"


def profile_latency(
    tracelens: Path,
    files: dict[str, Path],
    out_dir: Path,
    env: Callable[[Path], dict[str, str]],
    *,
    profiler: str | None = None,
    wait_idle: float = 0.0,
) -> dict[str, Any]:
    """Profile one cold ``tracelens latency FILE --format json`` per dataset."""
    profiler = profiler or available_profiler()
    results: dict[str, Any] = {}
    for dataset, path in files.items():
        cache = out_dir / f"profile-cache-{dataset}"
        shutil.rmtree(cache, ignore_errors=True)
        command = ["latency", str(path), "--format", "json"]
        if profiler == "py-spy":
            output = out_dir / f"profile-latency-{dataset}.pyspy.txt"
            pyspy = str(Path(sys.executable).parent / "py-spy")
            argv = [pyspy, "record", "--idle", "--subprocesses", "--threads"]
            argv += ["-r", str(PYSPY_RATE)]
            argv += ["-f", "raw", "-o", str(output), "--", str(tracelens), *command]
        else:
            output = out_dir / f"profile-latency-{dataset}.prof"
            argv = [sys.executable, "-c", CPROFILE_SNIPPET, str(output), *command]
        output.unlink(missing_ok=True)
        busy = measure.wait_for_idle(wait_idle) if wait_idle else None
        run = measure.run_process(
            f"profile {dataset} latency",
            argv,
            round_no=0,
            out_dir=out_dir,
            env=env(cache),
            busy_before=busy,
        )
        shutil.rmtree(cache, ignore_errors=True)
        failed = run.exit_code or not output.exists() or "error:" in Path(run.stderr).read_text()
        if failed:
            results[dataset] = {"profiler": profiler, "error": f"exit {run.exit_code}"}
            continue
        summary = summarize_pyspy(output) if profiler == "py-spy" else summarize_cprofile(output)
        results[dataset] = {
            "profiler": profiler,
            "wall_s_under_profiler": run.wall_s,
            "busy_before": busy,
            "file": str(output),
            **summary,
        }
    return results


def _short(frame: str) -> str:
    """``func (path/to/ml_tracelens/x.py:12)`` -> ``func (ml_tracelens/x.py)``: by function."""
    name, _, where = frame.rpartition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("ml_tracelens/", "site-packages/"):
        if marker in where:
            where = where[where.index(marker) :].replace("site-packages/", "")
    return f"{name} ({where})" if name else frame


def _short_line(frame: str) -> str:
    """``func (/abs/ml_tracelens/x.py:12)`` -> ``func (ml_tracelens/x.py:12)``."""
    name, _, where = frame.rpartition(" (")
    if "ml_tracelens/" in where:
        where = where[where.index("ml_tracelens/") :]
    return f"{name} ({where}" if name else frame


def _split_stack(stack: str) -> tuple[list[str], str | None, list[str]]:
    """py-spy raw stack -> (process frames, thread frame, code frames)."""
    frames = stack.split(";")
    processes = [f for f in frames if f.startswith("process ")]
    rest = frames[len(processes) :]
    thread = rest[0] if rest and rest[0].startswith("thread (") else None
    return processes, thread, rest[1:] if thread else rest


def _entries(counter: Counter[str], total: int) -> list[dict[str, Any]]:
    seconds = 1 / PYSPY_RATE
    return [
        {"function": f, "seconds": n * seconds, "share": n / total if total else 0.0}
        for f, n in counter.most_common(TOP)
    ]


def summarize_pyspy(path: Path) -> dict[str, Any]:
    """Main thread of the tracelens process (its samples are its wall time, idle included) and,
    apart, the tracelens work of any worker processes (parallel readers)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    deepest: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    main_total = worker_total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        processes, thread, frames = _split_stack(stack)
        pid = processes[0].split(":", 1)[0].removeprefix("process ") if processes else None
        ours = [f for f in frames if "ml_tracelens/" in f]
        if len(processes) > 1:  # a worker process: only its tracelens work is of interest
            if ours:
                worker_total += count
                for frame in {_short(f) for f in ours}:
                    workers[frame] += count
            continue
        if thread is None or pid is None or not thread.startswith(f"thread ({pid})"):
            continue  # helper threads of the main process: their wait is not wall time
        main_total += count
        short = [_short(f) for f in frames]
        if short:
            own[short[-1]] += count
        for frame in {f for f in short if "ml_tracelens/" in f}:
            inclusive[frame] += count
        # The innermost tracelens line: which line of ours the time is spent under (polars'
        # collect, msgspec's decode, waiting on worker processes...): what to tune.
        if ours:
            deepest[_short_line(ours[-1])] += count
    return {
        "samples": main_total,
        "main_thread_s": main_total / PYSPY_RATE,
        "worker_tracelens_s": worker_total / PYSPY_RATE,
        "top_own": _entries(own, main_total),
        "top_inclusive_tracelens": _entries(inclusive, main_total),
        "top_tracelens_lines": _entries(deepest, main_total),
        "top_worker_tracelens": _entries(workers, worker_total),
    }


def summarize_cprofile(path: Path) -> dict[str, Any]:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for (file, line, func), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        frame = _short(f"{func} ({file}:{line})")
        own[frame] += tottime
        if "ml_tracelens/" in frame:
            inclusive[frame] = max(inclusive[frame], cumtime)  # recursion-safe
    return {
        "total_s": total,
        "top_own": [
            {"function": f, "seconds": t, "share": t / total} for f, t in own.most_common(TOP)
        ],
        "top_inclusive_tracelens": [
            {"function": f, "seconds": t, "share": t / total} for f, t in inclusive.most_common(TOP)
        ],
    }


def _line_table(entries: list[dict[str, Any]] | None) -> list[str]:
    if not entries:
        return []
    return [
        "| innermost tracelens line (time spent under it) | s | share |",
        "|---|--:|--:|",
        *(f"| `{e['function']}` | {e['seconds']:.2f} | {e['share']:.0%} |" for e in entries),
        "",
    ]


def _worker_table(item: dict[str, Any]) -> list[str]:
    entries = item.get("top_worker_tracelens")
    if not entries:
        return []
    return [
        f"Worker processes: {item['worker_tracelens_s']:.2f} s of tracelens work in all:",
        "",
        "| worker: tracelens function (inclusive) | s | share |",
        "|---|--:|--:|",
        *(f"| `{e['function']}` | {e['seconds']:.2f} | {e['share']:.0%} |" for e in entries[:8]),
        "",
    ]


def markdown_lines(profile: dict[str, Any]) -> list[str]:
    lines = ["### Where `tracelens latency` spends its time (one cold run)"]
    for dataset, item in profile.items():
        if "error" in item:
            lines += ["", f"{dataset}: profiling failed ({item['error']})"]
            continue
        lines += [
            "",
            f"{dataset}: {item['profiler']}, {item['wall_s_under_profiler']:.2f} s under the "
            "profiler"
            + (
                f"; shares are of the main thread's {item['main_thread_s']:.2f} s sampled."
                if "main_thread_s" in item
                else "."
            ),
            "",
            "| tracelens function (inclusive) | s | share |",
            "|---|--:|--:|",
            *(
                f"| `{e['function']}` | {e['seconds']:.2f} | {e['share']:.0%} |"
                for e in item["top_inclusive_tracelens"]
            ),
            "",
            *_line_table(item.get("top_tracelens_lines")),
            *_worker_table(item),
            "| where the time lands (own) | s | share |",
            "|---|--:|--:|",
            *(
                f"| `{e['function']}` | {e['seconds']:.2f} | {e['share']:.0%} |"
                for e in item["top_own"][:10]
            ),
        ]
    return lines
