"""Crafted hostile inputs shared by the security tests (issues 8 and 14).

Each payload is a way to take over a terminal or a CI log, paired with the text a person must
see instead; ``hostile_otlp`` puts strings everywhere a dump can carry them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.main import get_command

from ml_tracelens.cli import app
from tests.factories import MS, T0, TRACE, otlp_document, otlp_log, otlp_span

#: Each is a way to take over a terminal, with the text a person must see instead.
PAYLOADS = {
    "clear screen + colour": ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    "OSC 8 hyperlink": (
        "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "\\x1b]8;;https://evil.example/\\x1b\\\\click\\x1b]8;;\\x1b\\\\",
    ),
    "window title + bell": ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    "carriage return": ("ok\rFAKE", "ok\\x0dFAKE"),
    "backspaces": ("abc\x08\x08\x08xyz", "abc\\x08\\x08\\x08xyz"),
    "bidi override": ("abc\u202edcba\u2066x\u2069", "abc\\u202edcba\\u2066x\\u2069"),
    "C1 CSI": ("\x9b31mC1", "\\x9b31mC1"),
    "NUL and DEL": ("a\x00b\x7f", "a\\x00b\\x7f"),
    "line separator": ("line\u2028sep", "line\\u2028sep"),
}
MARKUP = "[bold red]boom[/bold red] [link=https://evil.example]x[/link]"
#: Whole stage names a CI runner or GitHub would act on: (raw, on a terminal or in plain text,
#: in markdown source). A workflow command must start the line, so these are not prefixed.
CI_PAYLOADS = {
    "workflow command": ("::error::injected", "\\:\\:error::injected", "\\\\:\\\\:error::injected"),
    "indented workflow command": (
        "  ::add-mask::indented",
        "  \\:\\:add-mask::indented",
        "  \\\\:\\\\:add-mask::indented",
    ),
    "legacy command mid-line": (
        "ok ##[error]legacy",
        "ok ##\\[error]legacy",
        "ok ##\\\\\\[error\\]legacy",
    ),
    # The six characters backslash, x, 1, b, [, 3... typed into a name, not an ESC: shown with
    # the backslash doubled, so it differs from a real ESC shown as \x1b.
    "typed escape": ("\\x1b[31m", "\\\\x1b[31m", "\\\\\\\\x1b\\[31m"),
    "mention, issue, link": (
        "@octocat fixes #123 via https://evil.example",
        "@octocat fixes #123 via https://evil.example",
        "@\u2060octocat fixes #\u2060123 via https:\u2060//evil.example",
    ),
}
#: A line a CI runner would take as a workflow command (GitHub Actions: "::" first after
#: whitespace; the legacy "##[" anywhere).
CI_COMMAND = re.compile("^[\\s\u180e\u200b\u2060\ufeff]*::|##\\[", re.MULTILINE)
#: What GitHub turns into a notification or a link in rendered markdown.
GITHUB_REFERENCE = re.compile(r"@\w|#\d|\bGH-\d|://|\bwww\.", re.IGNORECASE)
#: Characters that must never reach a terminal raw (newline and tab are the renderer's own).
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
SGR = re.compile("\x1b\\[[0-9;]*m")  # rich's own styling, on a terminal


def hostile_otlp(
    names: list[str], *, trace: str = TRACE, service: str = "api", logs: bool = True
) -> str:
    """One OTLP/JSON line: a root span and one child per name, each carrying the name in its
    stage, status message, attribute key and value and event name; plus a log line per name
    (without them, a line takes the typed fast path). Written by ``json``, which escapes what
    ``orjson`` refuses (lone surrogates)."""
    root = "a000000000000001"
    spans = [otlp_span(trace, root, None, "root", T0, T0 + 900 * MS)]
    records = []
    for index, name in enumerate(names, start=2):
        span = f"a{index:015x}"
        spans.append(
            otlp_span(
                trace,
                span,
                root,
                name,
                T0 + index * MS,
                T0 + index * 2 * MS,
                kind=3,
                attributes={name: name},
                status="error",
                message=name,
                events=[{"name": name, "timeUnixNano": str(T0 + MS)}],
            )
        )
        records.append(otlp_log(trace, span, T0 + 2 * MS, name, "ERROR"))
    return json.dumps(otlp_document(spans, service=service, logs=records if logs else None))


def names() -> list[str]:
    return (
        [f"stage {raw}" for raw, _ in PAYLOADS.values()]
        + [MARKUP]
        + [raw for raw, _, _ in CI_PAYLOADS.values()]
    )


def commands(path: str, out: Path) -> list[list[str]]:
    """Every command of the app, with what it needs; a new command gets just the paths."""
    known = {
        "summary": [path],
        "latency": [path],
        "errors": [path],
        "bottlenecks": [path],
        "traces": [path],
        "show": [TRACE, path, "--attrs"],
        "models": [path],
        "check": [path, "--budget", "p95<1ms", "--junit", str(out / "check.xml")],
        "diff": [path, path, "--junit", str(out / "diff.xml")],
        "convert": [path, "-o", str(out / "converted.parquet")],
        "formats": [],
    }
    registered = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    return [[name, *known.get(name, [path])] for name in registered]


def all_strings(document: Any) -> set[str]:
    found: set[str] = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


#: No "/" in a file name; the warning about its malformed line quotes it.
HOSTILE_FILE_NAME = "evil\x1b]8;;x\x07\u202e\n##[error]name.jsonl"
HOSTILE_FILE_SHOWN = "evil\\x1b]8;;x\\x07\\u202e\\x0a##\\[error]name.jsonl"


def hostile_dump_dir(root: Path) -> Path:
    """``root/dumps`` with one dump whose file name, service, stages, messages and logs all
    carry escapes and CI commands, plus a malformed line (so a warning names the file)."""
    directory = root / "dumps"
    directory.mkdir()
    name = HOSTILE_FILE_NAME
    lines = [hostile_otlp(names(), service="svc\x1b[5mblink"), '{"resourceSpans": [trunc']
    (directory / name).write_text("\n".join(lines) + "\n")
    return directory


def run_tracelens(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml_tracelens", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
