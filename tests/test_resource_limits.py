"""The machine's limits (reading workers that fail, ulimit -v, ulimit -n) are named as such:
one line, exit 2, never a traceback or an error blaming the input; workers that cannot be used
leave the read to this process, which says so once."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from ml_tracelens import ingest, limits
from ml_tracelens.readers import otlp_json
from ml_tracelens.readers.support import parallel
from tests.test_parallel_read import _dump

TRACELENS = [sys.executable, "-m", "ml_tracelens"]


class _FailingPool:
    """A process pool whose every task fails with ``error``, as a real one reports it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(self.error)
        return future

    def __enter__(self) -> _FailingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _pool_failing_with(error: BaseException) -> Callable[..., _FailingPool]:
    return lambda *args, **kwargs: _FailingPool(error)


def _parallel(monkeypatch: pytest.MonkeyPatch, workers: str = "3") -> None:
    monkeypatch.setenv("TRACELENS_WORKERS", workers)
    monkeypatch.setenv("TRACELENS_PARALLEL_MIN_MB", "0")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left in"),
        (OSError("No space left on device (os error 28)"), "no space left in"),
        (BrokenProcessPool("A process in the process pool was terminated"), "ended abruptly"),
    ],
)
def test_failing_workers_leave_their_ranges_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, said: str
) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 60)
    monkeypatch.setenv("TRACELENS_WORKERS", "1")
    serial = ingest.load([str(path)])
    _parallel(monkeypatch)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _pool_failing_with(error))
    fallen_back = ingest.load([str(path)])
    assert fallen_back.spans.equals(serial.spans)
    got, want = fallen_back.inputs[0].stats, serial.inputs[0].stats
    assert (got.lines, got.records, got.skipped) == (want.lines, want.records, want.skipped)
    assert got.problems == want.problems
    notes = [w for w in fallen_back.warnings if "read in one process" in w]
    assert len(notes) == 1
    assert notes[0].startswith(f"{path}: read in one process: the reading workers failed")
    assert said in notes[0]


def test_an_input_error_in_a_worker_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 60)
    _parallel(monkeypatch)
    refusal = limits.LimitExceeded(f"{path}: the line at byte 9 is longer than 1 KiB")
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _pool_failing_with(refusal))
    with pytest.raises(limits.LimitExceeded, match="longer than 1 KiB"):
        ingest.load([str(path)])


def test_too_few_file_descriptors_read_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 60)
    env_limits = {"TRACELENS_WORKERS": "3", "TRACELENS_PARALLEL_MIN_MB": "0"}
    result = _cli(["summary", str(path), "--no-cache"], env_limits, open_files=16)
    assert result.returncode == 0, result.stderr
    expected = (
        f"warning: {path}: read in one process: ulimit -n is 16, too few open files for "
        "reading workers (raise it to read on several cores)"
    )
    assert result.stderr.splitlines().count(expected) == 1


def test_too_many_open_files_names_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 3)
    real_open = Path.open

    def exhausted(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise OSError(errno.EMFILE, "Too many open files", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", exhausted)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft:,}"
    with pytest.raises(limits.ResourceLimit) as raised:
        ingest.load([str(path)])
    assert str(raised.value) == f"too many open files (ulimit -n is {shown}; raise it)"


def test_a_memory_error_while_reading_names_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 3)

    def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(otlp_json, "_read_lines", exhausted)
    with pytest.raises(limits.ResourceLimit, match=f"^out of memory reading {path} "):
        ingest.load([str(path)])


def test_an_address_space_limit_too_small_for_the_input_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 3)
    # Far below what polars' thread pool alone reserves, but enough to start Python and import.
    limit = 700 * limits.MIB
    result = _cli(["summary", str(path), "--no-cache"], {}, address_space=limit)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: out of memory reading {path}: ulimit -v is 700 MiB")
    assert lines[0].endswith("raise the limit (ulimit -v) or read a smaller input")


def test_reading_within_the_address_space_limit_is_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    _dump(path, 3)
    result = _cli(["summary", str(path), "--no-cache"], {}, address_space=4 * limits.GIB)
    assert result.returncode == 0, result.stderr


def _cli(
    arguments: list[str],
    env: dict[str, str],
    *,
    open_files: int | None = None,
    address_space: int | None = None,
) -> subprocess.CompletedProcess[str]:
    def lower_limits() -> None:
        if open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))
        if address_space is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (address_space, hard))

    return subprocess.run(
        [*TRACELENS, *arguments],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lower_limits,
        check=False,
    )


def _over_the_default_cap(path: Path, head: bytes, filler: bytes, tail: bytes) -> None:
    """``path`` with a first short line, then one JSON value one byte over 64 MiB."""
    cap = 64 * limits.MIB
    body = head + filler * ((cap + 1 - len(head) - len(tail)) // len(filler) + 1) + tail
    with path.open("wb") as stream:
        stream.write(b'{"level": "info", "msg": "first"}\n' if path.suffix == ".jsonl" else b"")
        stream.write(body + (b"\n" if path.suffix == ".jsonl" else b""))


def test_the_default_cap_keeps_the_largest_line_within_memory(tmp_path: Path) -> None:
    # A line or document past 64 MiB would take up to 28 times that in memory (a log line of
    # small objects): refused by default, by the variable's name.
    assert limits.Limits().max_document_bytes == 64 * limits.MIB
    log_lines = tmp_path / "app.jsonl"
    _over_the_default_cap(log_lines, b'{"level": "info", "items": [', b'{"a": 1},', b'{"a": 1}]}')
    zipkin = tmp_path / "spans.json"
    span = b'{"traceId": "1", "id": "2", "name": "n", "timestamp": 1, "duration": 1},'
    _over_the_default_cap(zipkin, b"[", span, span[:-1] + b"]")
    for path, said in (
        (log_lines, f"{log_lines}:2: line longer than 64 MiB (TRACELENS_MAX_DOCUMENT_BYTES)"),
        (zipkin, f"{zipkin}: a single JSON document larger than 64 MiB"),
    ):
        with pytest.raises(limits.LimitExceeded) as refused:
            ingest.load([str(path)])
        assert str(refused.value).startswith(said)
