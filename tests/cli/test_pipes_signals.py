"""tracelens as a Unix filter (issue 14): Ctrl-C, a reader that goes away, a stdout that cannot
be written, and terminals that are not UTF-8.

Each test runs the real process (``python -m ml_tracelens``), since signals, file descriptors
and the encoding of stdout belong to a process, not to CliRunner's in-memory streams.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._hostile import hostile_otlp
from tests.conftest import SAMPLE_DATA

SAMPLE = str(SAMPLE_DATA / "traces.otlp.jsonl")
TRACELENS = [sys.executable, "-m", "ml_tracelens"]
#: How long a step may take on a loaded machine before the test gives up on it; never asserted.
PATIENCE_S = 60
FORMATS = ["table", "json", "csv", "markdown"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and descriptors")


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and an ignored SIGINT stays ignored
    # in children; the test needs the disposition a terminal gives a foreground command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_until_blocked_reading(pid: int) -> None:
    """Wait until the process sleeps in a pipe read or a FIFO open: a Ctrl-C sent earlier (while
    Python is importing, say) would be handled at once and prove nothing."""
    wchan = Path(f"/proc/{pid}/wchan")
    if not wchan.exists():
        pytest.skip("needs /proc/PID/wchan to see where the process waits")
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        where = wchan.read_text()
        if "pipe" in where or "wait_for_partner" in where:
            return
        time.sleep(0.05)
    pytest.fail(f"tracelens never blocked reading its input (last seen in {where!r})")


@contextmanager
def _stdin_source(kind: str, tmp_path: Path) -> Iterator[tuple[str, int | None]]:
    """The path argument and the stdin of a tracelens reading input that never comes: a FIFO
    with a writer that writes nothing, or stdin (``-`` or ``/dev/stdin``) on such a pipe."""
    if kind == "fifo":
        fifo = tmp_path / "never.jsonl"
        os.mkfifo(fifo)
        yield str(fifo), None
        return
    read_end, write_end = os.pipe()
    try:
        yield kind, read_end
    finally:
        os.close(read_end)
        os.close(write_end)


def _hold_fifo_open(fifo: str) -> int:
    """Open ``fifo`` for writing once tracelens has opened it for reading (a writer that never
    writes: tracelens's open returns and its read blocks)."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        time.sleep(0.05)
    pytest.fail("tracelens never opened the FIFO")


@pytest.mark.parametrize("kind", ["fifo", "-", "/dev/stdin"])
def test_ctrl_c_stops_a_read_that_waits_for_input(kind: str, tmp_path: Path) -> None:
    with _stdin_source(kind, tmp_path) as (path, stdin):
        process = subprocess.Popen(
            [*TRACELENS, "summary", path],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        writer = _hold_fifo_open(path) if kind == "fifo" else None
        try:
            _wait_until_blocked_reading(process.pid)
            process.send_signal(signal.SIGINT)
            try:
                stdout, stderr = process.communicate(timeout=PATIENCE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                pytest.fail("Ctrl-C did not stop tracelens")
        finally:
            if writer is not None:
                os.close(writer)
    assert process.returncode == 130
    assert stdout == ""
    assert stderr.splitlines() == ["error: interrupted"]


def _grandchildren(pid: int) -> list[int]:
    """The processes started by the children of ``pid`` (the workers a forkserver forks)."""
    found: list[int] = []
    for child in _children(pid):
        found.extend(_children(child))
    return found


def _children(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children.extend(int(c) for c in (task / "children").read_text().split())
    return children


def _wait_for_an_idle_worker(process: subprocess.Popen[str]) -> None:
    """Wait until a worker of a parallel read waits for work (in a pipe read): there a Ctrl-C
    raised KeyboardInterrupt and printed the worker's traceback."""
    if not Path(f"/proc/{process.pid}/task").exists():
        pytest.skip("needs /proc to find the workers")
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline and process.poll() is None:
        for worker in _grandchildren(process.pid):
            with contextlib.suppress(OSError):
                if "pipe" in Path(f"/proc/{worker}/wchan").read_text():
                    return
        time.sleep(0.02)
    pytest.fail("no worker of the parallel read was seen waiting")


def test_ctrl_c_during_a_parallel_read_is_one_line_too(tmp_path: Path) -> None:
    dump = tmp_path / "big.jsonl"
    sample = Path(SAMPLE).read_bytes()
    with dump.open("wb") as out:
        for _ in range(40):  # ~40 MB: the main process reads 16 MiB more than the worker
            out.write(sample)
    process = subprocess.Popen(
        [*TRACELENS, "latency", str(dump), "--no-cache"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        env={**os.environ, "TRACELENS_PARALLEL_MIN_MB": "1", "TRACELENS_WORKERS": "2"},
    )
    try:
        _wait_for_an_idle_worker(process)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches every process of the group
        stdout, stderr = process.communicate(timeout=PATIENCE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert stdout == ""
    assert stderr.splitlines() == ["error: interrupted"]


# --- stdout -------------------------------------------------------------------------------

CLOSED_PIPE_CASES = {
    # A gate that fails: its code (1) must not be what a closed pipe reports.
    "check, gate failed": ["check", SAMPLE, "--budget", "p95<1ms"],
    "traces": ["traces", SAMPLE],
    **{f"latency {fmt}": ["latency", SAMPLE, "--format", fmt] for fmt in FORMATS},
}


@pytest.mark.parametrize("case", CLOSED_PIPE_CASES)
def test_a_reader_that_went_away_ends_tracelens_quietly_by_sigpipe(case: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` after head has exited: nobody will read
    try:
        result = subprocess.run(
            [*TRACELENS, *CLOSED_PIPE_CASES[case]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PATIENCE_S * 2,
            check=False,
        )
    finally:
        os.close(write_end)
    # Killed by SIGPIPE, as `cat` or `grep` would be (a shell reports 128 + 13 = 141).
    assert result.returncode in (-signal.SIGPIPE, 128 + signal.SIGPIPE)
    assert result.stderr == ""


def test_a_reader_that_leaves_during_a_long_write_ends_tracelens_by_sigpipe() -> None:
    # 105 kB, more than a pipe holds (64 KiB): tracelens blocks in its write until the reader
    # leaves, and the write then returns the part passed on (`| head -c 10`).
    if not Path("/proc/self/wchan").exists():
        pytest.skip("needs /proc/PID/wchan to see where the process waits")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [*TRACELENS, "traces", SAMPLE, "--format", "json", "--no-cache"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read(10)
        deadline = time.monotonic() + PATIENCE_S
        while "pipe_write" not in Path(f"/proc/{process.pid}/wchan").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("tracelens never blocked writing more than the pipe holds")
            time.sleep(0.02)
    _, stderr = process.communicate(timeout=PATIENCE_S)
    assert process.returncode in (-signal.SIGPIPE, 128 + signal.SIGPIPE)
    assert stderr == ""


def _run_with_stdout(
    args: list[str], prepare: Callable[[], None] | None = None, stdout: object = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRACELENS, *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=PATIENCE_S * 2,
        check=False,
        preexec_fn=prepare,
    )


def _close_stdout() -> None:
    os.close(1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_closed_stdout_is_one_error_naming_stdout(fmt: str) -> None:
    result = _run_with_stdout(["latency", SAMPLE, "--format", fmt], prepare=_close_stdout)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write to stdout: Bad file descriptor\n"


def test_a_closed_stdout_never_lends_its_number_to_a_written_file(tmp_path: Path) -> None:
    junit = tmp_path / "check.xml"
    args = ["check", SAMPLE, "--budget", "p95<10s", "--junit", str(junit), "--no-cache"]
    result = _run_with_stdout(args, prepare=_close_stdout)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write to stdout: Bad file descriptor\n"
    # Had the file been opened as descriptor 1, the report would be in it: it holds XML only.
    root = ET.parse(junit).getroot()
    assert (root.tag, root.get("failures")) == ("testsuites", "0")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_on_stdout_is_one_error_naming_stdout(fmt: str) -> None:
    with open("/dev/full", "w") as full:
        result = _run_with_stdout(["latency", SAMPLE, "--format", fmt], stdout=full)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write to stdout: No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_the_version_on_a_full_disk_is_the_same_one_error() -> None:
    with open("/dev/full", "w") as full:
        result = _run_with_stdout(["--version"], stdout=full)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write to stdout: No space left on device\n"


def _close_stderr() -> None:
    os.close(2)


def test_a_closed_stderr_loses_only_the_diagnostics() -> None:
    result = subprocess.run(
        [*TRACELENS, "latency", SAMPLE, "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S * 2,
        check=False,
        preexec_fn=_close_stderr,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("stage,count,")


# --- encodings ----------------------------------------------------------------------------

NAMES = ["naïve µs", "日本", "smile 🙂"]
#: The names as an ASCII stream shows them: Python's backslash escapes, written out by hand.
ASCII_SHOWN = ["na\\xefve \\xb5s", "\\u65e5\\u672c", "smile \\U0001f642"]
ASCII_ENVIRONMENTS = {
    "PYTHONIOENCODING=ascii": {"PYTHONIOENCODING": "ascii"},
    "C locale, UTF-8 mode off": {
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "",
    },
}


@pytest.fixture
def non_ascii_dump(tmp_path: Path) -> Path:
    """A dump with non-ASCII stage names whose file name is non-ASCII too, and a malformed
    line, so that a warning on stderr quotes the name."""
    dump = tmp_path / "données.jsonl"
    dump.write_text(hostile_otlp(NAMES) + "\n" + '{"resourceSpans": [trunc' + "\n")
    return dump


@pytest.mark.parametrize("environment", ASCII_ENVIRONMENTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_ascii_stdout_gets_escapes_not_a_crash(
    fmt: str, environment: str, non_ascii_dump: Path
) -> None:
    result = subprocess.run(
        [*TRACELENS, "latency", str(non_ascii_dump), "--format", fmt, "--no-cache"],
        capture_output=True,
        timeout=PATIENCE_S * 2,
        env={**os.environ, **ASCII_ENVIRONMENTS[environment]},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    stdout = result.stdout.decode("ascii")  # raises if a byte is not ASCII
    stderr = result.stderr.decode("ascii")
    assert "donn\\xe9es.jsonl:2" in stderr
    if fmt == "json":
        # Still JSON, and exactly the same strings: \uXXXX escapes (a surrogate pair for 🙂).
        stages = {row["stage"] for row in json.loads(stdout)["rows"]}
        assert set(NAMES) <= stages
        assert "\\ud83d\\ude42" in stdout
    else:
        for shown in ASCII_SHOWN:
            assert shown in stdout
