"""Process measurement for the benchmark harness: wall time, CPU time and peak memory per command.

Each command runs as its own process, spawned with ``os.posix_spawn`` and reaped with
``os.wait4``. Wall time is measured from spawn to the command's exit (what a user waits for).

Commands may start helper processes (tracelens parses large files in a process pool, through a
multiprocessing forkserver that the command does not itself wait for), so one process' rusage is
not the whole cost:

- CPU time: the harness makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so helpers
  orphaned when the command exits are re-parented to it and reaped here; their rusage (which
  includes the workers they waited for) is added to the command's own. ``cpu_s`` is therefore the
  whole process tree's user + system time, over all threads (above the wall time when it uses
  both cores).
- Memory: ``max_rss_mb`` is the largest ``ru_maxrss`` of any one process (exact, KiB on Linux;
  Linux carries the spawning harness' own ~20 MB over ``exec``, a floor that only tiny tools hit);
  ``tree_rss_mb`` the peak of the summed resident set of the whole process tree, sampled every
  50 ms from /proc: what the machine must hold while helpers run next to the main process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Run:
    case: str
    round: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    exit_code: int
    tree_rss_mb: float  # peak of the summed RSS of the process tree (sampled)
    stdout: str  # path of the captured stdout
    stderr: str  # path of the captured stderr
    busy_before: float | None = None  # share of all cores busy just before the run (others)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_process(
    case: str,
    argv: Sequence[str],
    *,
    round_no: int,
    out_dir: Path,
    env: Mapping[str, str] | None = None,
    busy_before: float | None = None,
) -> Run:
    """Run ``argv`` to completion with stdout/stderr captured to files under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in case).strip("-")
    stdout = out_dir / f"{slug}.r{round_no}.out"
    stderr = out_dir / f"{slug}.r{round_no}.err"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(stdout), flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr), flags, 0o644),
    ]
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), dict(env or os.environ), file_actions=actions)
    # Sample memory from a thread so that the wall time comes from a blocking wait, exactly.
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(pid))
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    tree_peak = peak[0]
    orphans_cpu, orphans_rss = reap_orphans()
    largest = max(usage.ru_maxrss, orphans_rss) * 1024  # KiB on Linux
    return Run(
        case=case,
        round=round_no,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime + orphans_cpu,
        max_rss_mb=largest / 2**20,
        exit_code=os.waitstatus_to_exitcode(status),
        # Sampling can miss a short peak; the tree holds at least its largest process.
        tree_rss_mb=max(tree_peak, largest) / 2**20,
        stdout=str(stdout),
        stderr=str(stderr),
        busy_before=busy_before,
    )


SAMPLE_S = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def become_subreaper() -> bool:
    """Adopt the orphans of the commands we run (Linux), so their CPU time can be counted."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout_s: float = 10.0) -> tuple[float, int]:
    """Wait for helpers re-parented to us; (their CPU seconds, their largest ru_maxrss KiB)."""
    cpu, rss = 0.0, 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no children left
        if pid == 0:
            time.sleep(0.01)  # some still running (a forkserver noticing its parent is gone)
            continue
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss)
    return cpu, rss


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [
                    int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return out


def tree_rss_bytes(root: int) -> int:
    """Summed resident set of ``root`` and all its descendants, now (0 where /proc is absent)."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        stack += _children(pid)
    return total


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(window_s: float = 1.0) -> float | None:
    """The share of all cores busy over the next ``window_s`` seconds (None off Linux)."""
    try:
        busy0, total0 = _cpu_jiffies()
        time.sleep(window_s)
        busy1, total1 = _cpu_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else None


def wait_for_idle(max_wait_s: float, threshold: float = 0.2) -> float | None:
    """Wait (at most ``max_wait_s``) until other processes leave the cores mostly idle.

    On a shared machine a benchmark next to someone else's test run measures the contention;
    returns the last busy share seen, so results can say how quiet the machine was.
    """
    deadline = time.monotonic() + max_wait_s
    share = busy_share()
    while share is not None and share > threshold and time.monotonic() < deadline:
        time.sleep(2.0)
        share = busy_share()
    return share


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians (and spread) over the successful runs of one case."""
    ok = [r for r in runs if r.exit_code == 0]
    if not ok:
        return {"runs": len(runs), "ok": 0, "exit_codes": sorted({r.exit_code for r in runs})}
    walls = [r.wall_s for r in ok]
    return {
        "runs": len(runs),
        "ok": len(ok),
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_s": statistics.median(r.cpu_s for r in ok),
        "max_rss_mb": statistics.median(r.max_rss_mb for r in ok),
        "max_rss_max_mb": max(r.max_rss_mb for r in ok),
        "tree_rss_mb": statistics.median(r.tree_rss_mb for r in ok),
        "tree_rss_max_mb": max(r.tree_rss_mb for r in ok),
        "busy_before_max": max(
            (r.busy_before for r in ok if r.busy_before is not None), default=None
        ),
    }


def warm_page_cache(path: Path) -> None:
    """Read a file once so that the first measured tool does not pay for the disk alone."""
    with open(path, "rb") as stream:
        while stream.read(16 << 20):
            pass


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the figures were measured on, for the README."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores_usable": usable,
        "cores_total": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            dist: _version(dist)
            for dist in ("ml-tracelens", "polars", "orjson", "msgspec", "duckdb", "typer")
        },
    }


def git_revision(repo: Path) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh the index while others commit.
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def tracelens_executable() -> Path:
    """The ``tracelens`` console script of the environment this harness runs in."""
    return Path(sys.executable).parent / "tracelens"
