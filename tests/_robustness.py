"""Shared by the robustness tests: a checked in-process CLI call and the checked calls on it.

``run_cli`` runs one tracelens command through typer's CliRunner under an alarm and lists every
way it misbehaved (an exit code outside {0, 1, 2}, an escaped exception, a traceback, the CLI's
"internal error" catch-all, an exit 2 without a message or with a report, JSON output that does
not parse, a hang). The fuzzer and the hazard tests of tests/acceptance assert that list is empty.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from ml_tracelens.cli import app

#: Seconds one CLI call may take before it counts as a hang (generous: CI machines are slow).
CALL_TIMEOUT = 30.0
ALLOWED_EXIT_CODES = {0, 1, 2}


class Hang(BaseException):
    """Raised by the alarm; a BaseException so the CLI's catch-all cannot swallow it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    problems: list[str] = field(default_factory=list)


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Outcome:
    """One in-process CLI call, checked for the properties every command must have."""
    runner = CliRunner()
    try:
        with deadline(CALL_TIMEOUT):
            result = runner.invoke(app, args, catch_exceptions=True, env=env)
    except Hang as exc:
        return Outcome(args, -1, "", "", [f"hang: {exc}"])
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # CliRunner lets these through (a Rust panic is one)
        return Outcome(args, -1, "", "", [f"{type(exc).__name__} escaped: {exc}"])
    outcome = Outcome(args, result.exit_code, result.stdout, result.stderr)
    problems = outcome.problems
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"exception escaped: {type(result.exception).__name__}: {result.exception}")
    if result.exit_code not in ALLOWED_EXIT_CODES:
        problems.append(f"exit code {result.exit_code}")
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if "Traceback" in text:
            problems.append(f"traceback on {stream}")
        if "internal error" in text:
            line = next(x for x in text.splitlines() if "internal error" in x)
            problems.append(f"internal error on {stream}: {line[:300]}")
    if result.exit_code == 2:
        if "error: " not in result.stderr:
            problems.append("exit 2 without an 'error:' message on stderr")
        if result.stdout.strip():
            problems.append("exit 2 with a report on stdout")
    if result.exit_code in (0, 1) and "json" in args and result.stdout.strip():
        try:
            orjson.loads(result.stdout)
        except orjson.JSONDecodeError as exc:
            problems.append(f"--format json output is not JSON ({exc})")
    return outcome


# -- checked calls -----------------------------------------------------------------------------

INT64_MAX = 2**63 - 1


def ok(*args: str) -> Outcome:
    """A CLI call that must succeed."""
    outcome = run_cli(list(args))
    assert not outcome.problems, outcome.problems
    assert outcome.exit_code == 0, outcome.stderr
    return outcome


def fails(*args: str) -> Outcome:
    """A CLI call that must fail as a usage/input error, with a message and no report."""
    outcome = run_cli(list(args))
    assert not outcome.problems, outcome.problems
    assert outcome.exit_code == 2, (outcome.stdout[:500], outcome.stderr)
    return outcome


def summary(*paths: Path | str) -> dict[str, Any]:
    return orjson.loads(ok("summary", "--format", "json", "--no-cache", *map(str, paths)).stdout)


def rows_by(document: dict[str, Any], key: str = "stage") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in document["rows"]}


def iso(ns: int) -> str:
    stamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
