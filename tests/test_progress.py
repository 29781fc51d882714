"""The progress bar: on a terminal's stderr for big inputs, never on a pipe, never in stdout."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.console import Console

from ml_tracelens.render.progress import MIN_BYTES, InputProgress
from tests.conftest import SAMPLE_DATA

SGR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_names_on_the_bar_are_escaped_never_obeyed() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with InputProgress(console) as progress:
        progress.inputs([("big\x1b[31m.jsonl", MIN_BYTES * 2)])
        progress.reading("big\x1b[31m.jsonl")
        progress.read("big\x1b[31m.jsonl")
    assert "big\\x1b[31m.jsonl" in out.getvalue()


def test_nothing_is_drawn_for_small_inputs() -> None:
    out = io.StringIO()
    with InputProgress(Console(file=out, force_terminal=True)) as progress:
        progress.inputs([("small.jsonl", 10)])
        progress.read("small.jsonl")
    assert out.getvalue() == ""


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log dump just past the size that earns a bar."""
    lines = (SAMPLE_DATA / "app.log.jsonl").read_bytes()
    path = tmp_path_factory.mktemp("progress") / "big.log.jsonl"
    with path.open("wb") as out:
        for _ in range(MIN_BYTES // len(lines) + 1):
            out.write(lines)
    return path


def run(dump: Path, *, stderr_on_terminal: bool) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `tracelens summary --format json` with stderr on a
    pseudo-terminal (or a pipe) and stdout on a pipe, as in `tracelens ... > out.json`."""
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environment.update(TERM="xterm-256color", TRACELENS_CACHE_MIN_MB="100000")
    arguments = [sys.executable, "-m", "ml_tracelens", "summary", str(dump), "--format", "json"]
    if not stderr_on_terminal:
        done = subprocess.run(arguments, capture_output=True, text=True, env=environment)
        return done.returncode, done.stdout, done.stderr
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        arguments,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=environment,
        close_fds=True,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    code = process.wait(timeout=120)
    return code, stdout, SGR.sub("", b"".join(chunks).decode(errors="replace"))


def test_a_big_input_shows_a_bar_on_a_terminal_and_keeps_stdout_clean(big_dump: Path) -> None:
    code, stdout, stderr = run(big_dump, stderr_on_terminal=True)
    assert code == 0
    assert "━" in stderr
    assert big_dump.name in stderr
    assert json.loads(stdout)["log_records"] > 0  # stdout holds the document alone


def test_no_bar_when_stderr_is_a_pipe(big_dump: Path) -> None:
    code, stdout, stderr = run(big_dump, stderr_on_terminal=False)
    assert code == 0
    assert "━" not in stderr
    assert json.loads(stdout)["log_records"] > 0
