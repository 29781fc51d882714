"""Hostile content (issues 8, 14): telemetry is attacker-controlled text; tracelens must not be a
way in.

This file: what is shown. Terminal escapes in every renderer that writes to a terminal (tables,
the waterfall, the progress bar, warnings, errors, --debug tracebacks), rich markup shown
literally, CI workflow commands and GitHub mentions defused in every format, and the machine
formats (JSON, CSV, markdown, JUnit) keeping the exact text escaped for their format. What is touched (files, cache, network) is in ``test_security_paths.py``;
resource limits in ``test_security_limits.py``. Crafted inputs come from ``tests/_hostile.py``,
each with the rendering a person must see written out by hand.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.render import junit
from ml_tracelens.render.cells import printable
from ml_tracelens.render.csv import cell
from ml_tracelens.render.markdown import render as render_markdown
from ml_tracelens.reports.result import Report
from tests._hostile import (
    CI_COMMAND,
    CI_PAYLOADS,
    GITHUB_REFERENCE,
    HOSTILE_FILE_SHOWN,
    MARKUP,
    PAYLOADS,
    SGR,
    TRACE,
    UNSAFE,
    all_strings,
    commands,
    hostile_dump_dir,
    hostile_otlp,
    names,
    run_tracelens,
)

runner = CliRunner()


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return hostile_dump_dir(tmp_path)


# --- terminal output ----------------------------------------------------------------------


@pytest.mark.parametrize("case", PAYLOADS)
def test_printable_escapes_each_terminal_attack(case: str) -> None:
    raw, shown = PAYLOADS[case]
    assert printable(raw) == shown


def test_printable_keeps_ordinary_text_and_escapes_lone_surrogates() -> None:
    text = "naïve 日本語 ✓ µs → [shard-1] a::b #1 @x"
    assert printable(text) == text
    assert printable("C:\\tmp") == "C:\\\\tmp"  # every backslash doubled: no escape is ambiguous
    assert printable("file\udcff.json") == "file\\udcff.json"
    assert printable("tab\tnew\nline") == "tab\\x09new\\x0aline"


def test_piped_output_of_every_command_shows_escapes_never_raw(
    hostile_dir: Path, tmp_path: Path
) -> None:
    (dump,) = hostile_dir.iterdir()
    for args in commands(str(dump), tmp_path):
        for fmt in (
            ([], ["--format", "markdown"]) if args[0] not in ("convert", "report") else ([],)
        ):
            result = runner.invoke(app, [*args, *fmt])
            assert "internal error" not in result.stderr, (args, result.stderr)
            for stream in (result.stdout, result.stderr):
                assert not UNSAFE.search(stream), (args, fmt, UNSAFE.search(stream))
    # Shown, escaped, not dropped: the stage names, the file name in the warning, the markup.
    latency = runner.invoke(app, ["latency", str(dump)])
    for _, shown in PAYLOADS.values():
        assert f"stage {shown}" in latency.stdout
    assert MARKUP in latency.stdout
    assert f"{HOSTILE_FILE_SHOWN}:2" in latency.stderr


@pytest.mark.parametrize("case", CI_PAYLOADS)
def test_printable_and_markdown_defuse_each_ci_attack(case: str) -> None:
    raw, shown, markdown = CI_PAYLOADS[case]
    assert printable(raw) == shown
    # A report's title is written as its heading, escaped for markdown.
    heading = render_markdown(Report(name="x", title=raw)).splitlines()[0]
    assert heading == f"### {markdown}"


def test_a_typed_backslash_escape_differs_from_a_real_escape() -> None:
    assert printable("\x1b[31m") == "\\x1b[31m"
    assert printable("\\x1b[31m") == "\\\\x1b[31m"


def test_no_line_of_any_format_of_any_command_is_a_ci_command(
    hostile_dir: Path, tmp_path: Path
) -> None:
    (dump,) = hostile_dir.iterdir()
    shown_somewhere = {"table": False, "markdown": False}
    for args in commands(str(dump), tmp_path):
        if args[0] == "convert":  # writes no report
            continue
        # `report` writes one format only, HTML.
        formats = ("table", "markdown", "json", "csv", "html") if args[0] != "report" else ("",)
        for fmt in formats:
            result = runner.invoke(app, [*args, "--format", fmt] if fmt else args)
            assert "internal error" not in result.stderr, (args, fmt, result.stderr)
            assert not CI_COMMAND.search(result.stderr), (args, fmt, result.stderr)
            if fmt == "csv":
                # CSV is data, written exactly (README, Security); only a cell's own start is
                # quoted, so no row starts with "::".
                assert not re.search(r"^\s*::", result.stdout, re.MULTILINE), (args, fmt)
                continue
            assert not CI_COMMAND.search(result.stdout), (
                args,
                fmt,
                CI_COMMAND.search(result.stdout),
            )
            if fmt == "markdown":
                assert not GITHUB_REFERENCE.search(result.stdout), (
                    args,
                    GITHUB_REFERENCE.search(result.stdout),
                )
            if fmt == "json" and result.stdout:
                strings = all_strings(json.loads(result.stdout))
                if args[0] == "latency":
                    assert {raw for raw, _, _ in CI_PAYLOADS.values()} <= strings
            for column, index in (("table", 1), ("markdown", 2)):
                if fmt == column and args[0] == "latency":
                    shown_somewhere[column] = all(
                        payload[index] in result.stdout for payload in CI_PAYLOADS.values()
                    )
    # Defused, not dropped: each payload is shown as written out by hand in _hostile.
    assert shown_somewhere == {"table": True, "markdown": True}


def test_a_csv_row_starting_with_a_ci_command_is_quoted_and_exact(tmp_path: Path) -> None:
    dump = tmp_path / "ci.jsonl"
    dump.write_text(hostile_otlp(["::error::injected"]) + "\n")
    result = runner.invoke(app, ["latency", str(dump), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    assert '\n"::error::injected",' in result.stdout
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert "::error::injected" in {row[0] for row in rows}


def test_error_messages_quoting_input_are_escaped(hostile_dir: Path, tmp_path: Path) -> None:
    unknown = tmp_path / "not\x1b[31mtelemetry\u202e.log"
    unknown.write_text("hello\n")
    for args in (["summary", str(unknown)], ["show", "ab\x1b]0;x\x07cd", str(hostile_dir)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ")
        assert not UNSAFE.search(result.stderr), result.stderr
    assert (
        "not\\x1b[31mtelemetry\\u202e.log" in runner.invoke(app, ["summary", str(unknown)]).stderr
    )


def test_debug_tracebacks_are_escaped_too(hostile_dir: Path) -> None:
    code = (
        "import ml_tracelens.render.console\n"
        "raise ValueError('bad \\x1b]0;pwned\\x07 \\u202e\\n::error::from a traceback')"
    )
    crashed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "ValueError: bad \\x1b]0;pwned\\x07 \\u202e" in crashed.stderr
    assert "\n\\:\\:error::from a traceback" in crashed.stderr
    assert not UNSAFE.search(crashed.stderr)
    assert not CI_COMMAND.search(crashed.stderr)
    (dump,) = hostile_dir.iterdir()
    debug = run_tracelens("show", "ab\x1b[2Jcd", str(dump), "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert not UNSAFE.search(debug.stderr)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render as on a colour terminal: rich emits its own SGR styling codes."""
    import ml_tracelens.render.console as console_module
    import ml_tracelens.render.table as table_module

    def forced(stream: Any) -> Console:
        return Console(
            file=stream,
            width=200,
            force_terminal=True,
            color_system="truecolor",
            highlight=False,
            soft_wrap=False,
            emoji=False,
            markup=False,
        )

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(console_module, "make_console", forced)
    monkeypatch.setattr(table_module, "make_console", forced)


@pytest.mark.usefixtures("terminal")
def test_terminal_tables_trees_and_warnings_carry_only_rich_styling(
    hostile_dir: Path, tmp_path: Path
) -> None:
    (dump,) = hostile_dir.iterdir()
    for args in commands(str(dump), tmp_path):
        result = runner.invoke(app, args)
        assert "internal error" not in result.stderr, (args, result.stderr)
        for stream in (result.stdout, result.stderr):
            assert "\x1b]" not in stream  # no OSC at all: no hyperlink, no title
            assert not UNSAFE.search(SGR.sub("", stream)), (args, stream[:300])
    show = runner.invoke(app, ["show", TRACE, str(dump), "--attrs"])
    assert "\x1b[" in show.stdout  # really drawn as on a terminal
    plain = SGR.sub("", show.stdout)
    assert "stage \\x1b[2J\\x1b[31mred" in plain
    assert "[link=https://evil.example]x" in plain


@pytest.mark.usefixtures("terminal")
def test_a_value_wrapped_onto_a_line_of_its_own_starts_no_ci_command(tmp_path: Path) -> None:
    dump = tmp_path / "wrap.jsonl"
    dump.write_text(hostile_otlp(["::error::wrapped " * 40]) + "\n")
    result = runner.invoke(app, ["errors", str(dump)])
    assert result.exit_code == 0, result.stderr
    lines = [line.strip() for line in SGR.sub("", result.stdout).splitlines()]
    # Error messages wrap; each wrapped line of this one begins with its "::": defused too.
    assert len([line for line in lines if line.startswith("\\:\\:error::wrapped ")]) >= 2
    assert not CI_COMMAND.search(result.stdout)


def test_a_shortened_name_starts_no_ci_command(tmp_path: Path) -> None:
    dump = tmp_path / "wrap.jsonl"
    dump.write_text(hostile_otlp(["wrap " * 60 + "::error::wrapped"]) + "\n")
    result = runner.invoke(app, ["latency", str(dump)])
    assert result.exit_code == 0, result.stderr
    # A stage name is shortened in the middle, not wrapped: its end follows the "…".
    [row] = [line for line in SGR.sub("", result.stdout).splitlines() if "::wrapped" in line]
    assert "…" in row
    assert row.startswith("wrap wrap ")
    assert "wrap ::error::wrapped |" in row
    assert not CI_COMMAND.search(result.stdout)


def test_progress_bar_shows_file_names_literally() -> None:
    from ml_tracelens.render.progress import MIN_BYTES, InputProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system="truecolor")
    name = "[link=https://evil.example]dump[/link]\x1b]0;t\x07.jsonl"
    with InputProgress(console) as progress:
        progress.inputs([(name, MIN_BYTES)])
        progress.reading(name)  # the bar is drawn once more as it stops
    drawn = SGR.sub("", buffer.getvalue())
    assert "\x1b]8" not in buffer.getvalue()
    assert "[link=https://evil.example]dump[/link]\\x1b]0;t\\x07.jsonl" in drawn


@pytest.mark.usefixtures("terminal")
def test_a_huge_message_is_clipped_on_a_terminal_but_whole_in_json(tmp_path: Path) -> None:
    message = "boom " * 200_000  # 1 MB: folded into a narrow column it would be 100k lines
    line = json.loads(hostile_otlp(["work"]))
    line["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["status"]["message"] = message
    dump = tmp_path / "long.jsonl"
    dump.write_text(json.dumps(line) + "\n")
    shown = runner.invoke(app, ["errors", str(dump)])
    assert shown.exit_code == 0, shown.stderr
    assert len(shown.stdout) < 50_000
    # The report trims the message (999,999 characters); a cell shows the first 1,000.
    assert "(+998,999 characters)" in " ".join(SGR.sub("", shown.stdout).split())
    full = runner.invoke(app, ["errors", str(dump), "--format", "json"])
    assert message.strip() in all_strings(json.loads(full.stdout))


# --- machine formats ----------------------------------------------------------------------


def test_json_keeps_exact_text_and_escapes_terminal_controls(hostile_dir: Path) -> None:
    (dump,) = hostile_dir.iterdir()
    result = runner.invoke(app, ["show", TRACE, str(dump), "--attrs", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    strings = all_strings(json.loads(result.stdout))
    for raw, _ in PAYLOADS.values():
        assert f"stage {raw}" in strings
    assert MARKUP in strings
    # Exact text, yet nothing a terminal would obey if the JSON is printed to one.
    assert not UNSAFE.search(result.stdout)
    assert "\\u202e" in result.stdout
    assert "\\u009b" in result.stdout


def test_undecodable_file_names_and_surrogate_escapes_never_break_output(tmp_path: Path) -> None:
    directory = tmp_path / "odd"
    directory.mkdir()
    # A file name that is not UTF-8 (Python holds it as a lone surrogate).
    with open(os.fsencode(directory) + b"/bad\xff.jsonl", "wb") as out:
        out.write((hostile_otlp(["from-bad-name"]) + "\n").encode())
    # Back-to-back documents, one with an unpaired surrogate escape (orjson refuses those; the
    # standard decoder would accept it and no table or encoder could hold the result).
    document = json.loads(hostile_otlp(["ok-stage"]))
    broken = json.dumps(document, indent=1).replace('"ok-stage"', '"\\ud800"', 1)
    (directory / "pair.json").write_text(json.dumps(document, indent=1) + "\n" + broken + "\n")
    for fmt in ("json", "csv", "markdown", "table"):
        result = runner.invoke(app, ["latency", str(directory), "--format", fmt])
        assert result.exit_code == 0, (fmt, result.stderr)
        assert "internal error" not in result.stderr
    result = runner.invoke(app, ["summary", str(directory), "--format", "json"])
    paths = {Path(entry["path"]).name for entry in json.loads(result.stdout)["inputs"]}
    assert paths == {"bad\\xff.jsonl", "pair.json"}
    assert "unpaired surrogate" in " ".join(result.stderr.split())


def test_csv_neutralises_formulas_as_owasp_recommends() -> None:
    cases = {
        '=HYPERLINK("https://evil.example","x")': '\'=HYPERLINK("https://evil.example","x")',
        "+1+1": "'+1+1",
        "-2+3": "'-2+3",
        "@SUM(A1:A2)": "'@SUM(A1:A2)",
        "\t=1": "'\t=1",
        "\r=1": "'\r=1",
        "\n=1": "'\n=1",
        "\0=1": "'\0=1",
        "＝1+1": "'＝1+1",
        " =1+1": "' =1+1",  # importers that trim leading spaces would see a formula
        "  @SUM(A1:A2)": "'  @SUM(A1:A2)",
        "model.inference": "model.inference",
        "a=b": "a=b",
    }
    for raw, expected in cases.items():
        assert cell(raw) == expected
    assert cell(-1.5) == "-1.5"
    assert cell(-3) == "-3"


def test_csv_end_to_end_quotes_separators_and_round_trips(tmp_path: Path) -> None:
    names = ["=1+1", "a;=cmd|' /C calc'!A0", 'say "hi", then\nbreak', "plain"]
    dump = tmp_path / "formula.jsonl"
    dump.write_text(hostile_otlp(names) + "\n")
    result = runner.invoke(app, ["latency", str(dump), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    stages = {row[0] for row in rows[1:]}
    assert stages == {"root", "'=1+1", "a;=cmd|' /C calc'!A0", 'say "hi", then\nbreak', "plain"}
    # A semicolon-separated spreadsheet cannot split the cell and find a formula start.
    assert "\"a;=cmd|' /C calc'!A0\"" in result.stdout
    assert all(row[1].isdigit() for row in rows[1:])  # counts are bare numbers


def test_markdown_escapes_table_breakers_and_html(tmp_path: Path) -> None:
    names = ["a|b", "<img src=x onerror=alert(1)>", "[x](https://evil.example)", "\x1b[31m"]
    dump = tmp_path / "md.jsonl"
    dump.write_text(hostile_otlp(names) + "\n")
    result = runner.invoke(app, ["latency", str(dump), "--format", "markdown"])
    assert result.exit_code == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    cells = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
    assert len(cells) == 1  # every row has the header's cell count: no pipe broke a row
    assert not re.search(r"(?<!\\)<|(?<!\\)\]\(", result.stdout)  # no tag, no link
    assert "\\<img src=x onerror=alert(1)\\>" in result.stdout
    assert not UNSAFE.search(result.stdout)


def test_junit_is_valid_xml_whatever_the_names() -> None:
    hostile = "stage\x1b[31m\x00\x0b\ud800<&>\"' ]]>"
    text = junit.render("tracelens diff", [junit.Case(hostile, failure=hostile)])
    root = ET.fromstring(text.split("?>", 1)[1])
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == "stage\\x1b[31m\\x00\\x0b\\ud800<&>\"' ]]>"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == case.get("name")


def test_diff_junit_with_hostile_stage_names_parses(hostile_dir: Path, tmp_path: Path) -> None:
    (dump,) = hostile_dir.iterdir()
    out = tmp_path / "diff.xml"
    result = runner.invoke(app, ["diff", str(dump), str(dump), "--junit", str(out)])
    assert result.exit_code in (0, 1), result.stderr
    names = [c.get("name") or "" for c in ET.parse(out).getroot().iter("testcase")]
    assert any("stage \\x1b[2J" in n for n in names)
    assert not any(UNSAFE.search(n) for n in names)


# --- HTML ----------------------------------------------------------------------------------

#: Names that would be markup, a handler or a script URL if a page let them through.
HTML_PAYLOADS = [
    "<script>alert(1)</script>",
    '" onmouseover="alert(1)',
    "' onfocus='alert(1)' autofocus='",
    "javascript:alert(1)",
    "</style><img src=x onerror=alert(1)>",
    "</title><svg onload=alert(1)>",
    "<!-- comment --><![CDATA[x]]>&amp;&lt;",
]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_pages_show_hostile_telemetry_as_text_only(tmp_path: Path) -> None:
    dump = tmp_path / "hostile.jsonl"
    dump.write_text(hostile_otlp([*HTML_PAYLOADS, *names()]) + "\n")
    pages = {}
    for args in commands(str(dump), tmp_path):
        if args[0] in ("convert", "formats", "schema"):
            continue
        out = tmp_path / f"{args[0]}.html"
        result = runner.invoke(app, [*args, "-o", str(out)])
        assert "internal error" not in result.stderr, (args, result.stderr)
        if result.exit_code != 2:  # models: no model records in these spans
            pages[args[0]] = out.read_text()
    shown = runner.invoke(
        app, ["show", TRACE, str(dump), "--attrs", "-o", str(tmp_path / "s.html")]
    )
    assert shown.exit_code == 0
    pages["show --attrs"] = (tmp_path / "s.html").read_text()
    for name, page in pages.items():
        parsed = _parsed(page)
        tags = [tag for tag, _ in parsed.tags]
        assert tags.count("script") == 1, name  # the page's own
        assert set(tags) <= _ALLOWED_TAGS, (name, set(tags) - _ALLOWED_TAGS)
        for tag, attrs in parsed.tags:
            # No attribute can run code or take a URL, so "javascript:" in a value is inert.
            for key, _ in attrs:
                assert key in _ALLOWED_ATTRIBUTES, (name, tag, key)
        assert not UNSAFE.search(page), (name, UNSAFE.search(page))
    # The names are there, as the text a person reads.
    text = "".join(_parsed(pages["latency"]).text)
    for payload in HTML_PAYLOADS:
        assert payload in text
    assert "stage \\x1b[2J\\x1b[31mred" in text
    assert "attr.&lt;script&gt;alert(1)&lt;/script&gt;" in pages["show --attrs"]


#: Every element a page may hold: no link, image, frame, object, form or base.
_ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "script", "body", "main", "header", "section",
    "h1", "h2", "h3", "p", "ul", "li", "div", "span", "table", "thead", "tbody", "tr", "th",
    "td", "figure", "figcaption", "details", "summary", "dl", "dt", "dd", "svg", "rect",
    "line", "text", "circle",
}  # fmt: skip
#: Every attribute a page may carry: none of them can run code or load anything.
_ALLOWED_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "class", "viewbox", "role",
    "aria-label", "aria-hidden", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width",
    "height", "text-anchor", "data-count", "data-ms", "data-share", "data-low", "data-high",
    "data-change", "data-value", "data-key", "data-report", "data-span-id", "scope",
}  # fmt: skip


def _parsed(page: str) -> _Tags:
    parsed = _Tags()
    parsed.feed(page)
    return parsed
