from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.render.progress import MIN_BYTES, InputProgress


def test_bar_is_drawn_on_a_terminal_for_big_inputs() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with InputProgress(console) as progress:
        progress.inputs([("big\x1b[31m.jsonl", MIN_BYTES * 2)])
        progress.reading("big\x1b[31m.jsonl")
        progress.read("big\x1b[31m.jsonl")
    text = out.getvalue()
    assert "big\\x1b[31m.jsonl" in text  # names are escaped, never obeyed


def test_nothing_for_small_inputs_or_pipes(tmp_path: Path) -> None:
    out = io.StringIO()
    with InputProgress(Console(file=out, force_terminal=True)) as progress:
        progress.inputs([("small.jsonl", 10)])
        progress.read("small.jsonl")
    assert out.getvalue() == ""
    dump = tmp_path / "d.jsonl"
    dump.write_text('{"resourceSpans": []}\n')
    result = CliRunner().invoke(app, ["summary", str(dump)])
    assert "━" not in result.stderr
