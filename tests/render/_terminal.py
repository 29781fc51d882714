"""tracelens as a person runs it: one of its streams on a pseudo-terminal of a given size."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from typing import Literal

#: What a terminal takes as a command rather than text (SGR styling, cursor moves).
CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(
    arguments: list[str],
    *,
    columns: int,
    stream: Literal["stdout", "stderr"] = "stdout",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes, str]:
    """``python -m ml_tracelens ARGUMENTS`` with ``stream`` on a pseudo-terminal 40 lines by
    ``columns``, COLUMNS and LINES unset and TERM=xterm-256color, as in an interactive shell.
    With stderr on the terminal stdout is piped; with stdout on it stderr is dropped.

    Returns the exit code, the bytes the terminal received and the piped stdout ("" when
    stdout is the terminal)."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environment.update(TERM="xterm-256color", **(env or {}))
    on_stdout = stream == "stdout"
    process = subprocess.Popen(
        [sys.executable, "-m", "ml_tracelens", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=terminal if on_stdout else subprocess.PIPE,
        stderr=subprocess.DEVNULL if on_stdout else terminal,
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
    stdout = "" if process.stdout is None else process.stdout.read().decode()
    code = process.wait(timeout=timeout)
    return code, b"".join(chunks), stdout
