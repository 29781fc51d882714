"""Tables as a person sees them: each report run in a real pseudo-terminal at several widths.

The window size is set on the pty (TIOCSWINSZ) and COLUMNS is unset, as in an interactive
shell. For every row of each report's first table, every number on the screen must be one of
the JSON output's numbers for that row, in column order, rounded as displayed (so a count of 341
cut to "34" fails); the columns not shown must be named in the footer; the row's name or id
must be whole, or shortened in the middle with "…"; and no line may be wider than the terminal.
The `show` waterfall is held to the same for each span's start, duration, self and critical time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from rich.cells import cell_len

from ml_tracelens.render.console import PIPE_WIDTH
from ml_tracelens.render.table import fit_table
from ml_tracelens.reports.result import Column, ColumnKind, Table
from tests.conftest import SAMPLE_DATA

WIDTHS = (60, 80, 100, 120, 200)
TRACES = str(SAMPLE_DATA / "traces.otlp.jsonl")
LOGS = str(SAMPLE_DATA / "app.log.jsonl")
#: report -> (arguments, the JSON key naming each row)
REPORTS: dict[str, tuple[list[str], str]] = {
    "latency": (["latency", TRACES], "stage"),
    "latency by service": (["latency", TRACES, "--by", "service,stage"], "service"),
    "errors": (["errors", TRACES, LOGS], "stage"),
    "bottlenecks": (["bottlenecks", TRACES], "stage"),
    "traces": (["traces", TRACES, "--slowest", "15"], "trace_id"),
    "models": (["models", TRACES], "model_version"),
    "check": (
        [
            "check",
            TRACES,
            "--budget",
            "model.inference:p95<=120ms",
            "--budget",
            "error_rate<1%",
            "--budget",
            "fetch_features:max<=300ms",
        ],
        "budget",
    ),
    "diff": (
        ["diff", str(SAMPLE_DATA / "traces.jaeger.json"), TRACES, "--long", "--bootstrap", "100"],
        "stage",
    ),
}
SHOW = ["show", "req-3d78b2", TRACES]
SGR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HIDDEN = re.compile(r"Hidden to fit (\d+) characters: (.*?)\. --wide shows every column")
DURATION = re.compile(r"^(-?)(\d+(?:\.\d+)?)(ns|µs|ms|s)$")
CLOCK = re.compile(r"^(\d+)([mh])(\d\d)([sm])$")
PERCENT = re.compile(r"^(-?\d+(?:\.\d+)?)%$")
NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")
MS_PER_UNIT = {"ns": Decimal("1e-6"), "µs": Decimal("1e-3"), "ms": Decimal(1), "s": Decimal(1000)}


def run_in_terminal(arguments: list[str], columns: int) -> str:
    """stdout of ``tracelens ARGUMENTS`` in a pseudo-terminal ``columns`` wide."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environment["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-m", "ml_tracelens", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
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
    process.wait(timeout=60)
    return SGR.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def run_json(arguments: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "ml_tracelens", *arguments, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(done.stdout)


def run_piped(arguments: list[str]) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [sys.executable, "-m", "ml_tracelens", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    return done.stdout


def first_table(screen: str, *, plain: bool) -> tuple[list[list[str]], list[str]]:
    """The cells of each row of the first table (continuation lines of wrapped prose left out)
    and the names of the columns its footer says were hidden."""
    lines = screen.splitlines()
    rule = next(
        i for i, line in enumerate(lines) if re.match(r"^-+\+" if plain else r"^\s*──", line)
    )
    rows: list[list[str]] = []
    end = rule + 1
    while end < len(lines) and lines[end].strip():
        # Plain text has no left edge; a terminal table has a blank one.
        line = lines[end] if plain else lines[end][1:]
        if not line.startswith(" "):  # a wrapped cell's next line leaves the first column blank
            rows.append(
                [c.strip() for c in line.split("|")] if plain else re.split(r"\s{2,}", line.strip())
            )
        end += 1
    after = []
    for line in lines[end + 1 :]:
        if not line.strip():
            break
        after.append(line.strip())
    found = HIDDEN.search(" ".join(after))
    hidden = found.group(2).split(", ") if found else []
    return rows, hidden


def displayed(value: Decimal, shown: str) -> bool:
    """Whether ``value`` rounded (half to even) to the decimals of ``shown`` is ``shown``."""
    target = Decimal(shown.replace(",", ""))
    return value.quantize(Decimal(1).scaleb(target.as_tuple().exponent), ROUND_HALF_EVEN) == target


def shows(token: str, value: Any) -> bool:
    """Whether the screen text ``token`` is the JSON ``value`` as displayed."""
    if isinstance(value, str):
        # a time, or a word of a note ("6% is not < 1%")
        return token == value or token in value.split()
    exact = Decimal(repr(value))
    if match := DURATION.match(token):
        sign, number, unit = match.groups()
        return displayed(exact / MS_PER_UNIT[unit], sign + number)
    if match := CLOCK.match(token):
        big, first, small, _ = match.groups()
        whole = int(big) * 60 + int(small)
        per = Decimal(1000) if first == "m" else Decimal(60_000)
        return (exact / per).to_integral_value(ROUND_HALF_EVEN) == whole
    if token == "<1%":
        return 0 < exact * 100 < Decimal("0.5")
    if match := PERCENT.match(token):
        return displayed(exact * 100, match.group(1))
    return bool(NUMBER.match(token)) and displayed(exact, token)


def is_number(token: str) -> bool:
    return any(
        pattern.match(token) for pattern in (DURATION, CLOCK, PERCENT, NUMBER, ISO_TIME)
    ) or (token == "<1%")


def candidates(row: dict[str, Any], name_key: str) -> list[tuple[str, Any, bool]]:
    """The row's numbers and times in column order, as (key, value, is a column of its own);
    the shares of a mix and the text of a note follow their column, as the screen shows them."""
    out: list[tuple[str, Any, bool]] = []
    for key, value in row.items():
        if key == name_key or isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            out.append((key, value, True))
        elif isinstance(value, str):
            out.append((key, value, bool(ISO_TIME.match(value))))
        elif isinstance(value, dict):
            out.extend((key, share, False) for share in value.values())
    return out


def name_shown(cell: str, name: str | None) -> bool:
    name = "-" if name is None else name  # the requests' row of diff
    if cell == name:
        return True
    head, ellipsis, tail = cell.partition("…")
    return bool(ellipsis) and name.startswith(head) and name.endswith(tail)


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {report: run_json(arguments) for report, (arguments, _) in REPORTS.items()}


#: 0: piped (plain text, PIPE_WIDTH wide)
@pytest.mark.parametrize("columns", [*WIDTHS, 0])
@pytest.mark.parametrize("report", list(REPORTS))
def test_every_number_on_screen_is_the_json_number_rounded_as_displayed(
    report: str, columns: int, documents: dict[str, dict[str, Any]]
) -> None:
    arguments, name_key = REPORTS[report]
    plain = columns == 0
    screen = run_piped(arguments) if plain else run_in_terminal(arguments, columns)
    rows = documents[report]["rows"]
    assert rows, f"{report}: the sample data should give rows"
    too_wide = [line for line in screen.splitlines() if cell_len(line) > (columns or PIPE_WIDTH)]
    assert not too_wide, f"{report} at {columns}: lines wider than the terminal"
    table_rows, hidden = first_table(screen, plain=plain)
    assert len(table_rows) == len(rows), f"{report} at {columns}:\n{screen}"
    for cells, row in zip(table_rows, rows, strict=True):
        line = " | ".join(cells)
        assert name_shown(cells[0], row[name_key]), f"{cells[0]!r} for {row[name_key]!r}"
        tokens = [t.rstrip(",") for cell in cells[1:] for t in cell.split()]
        expected = candidates(row, name_key)
        position, matched_columns = 0, 0
        for token in filter(is_number, tokens):
            while position < len(expected) and not shows(token, expected[position][1]):
                position += 1
            assert position < len(expected), (
                f"{report} at {columns}: {token!r} in {line!r} is none of {row}"
            )
            _, value, own_column = expected[position]
            matched_columns += own_column
            if own_column or not isinstance(value, str):
                position += 1  # a note may hold more numbers: it stays the next candidate
        columns_with_numbers = sum(1 for _, _, own in expected if own)
        # Every column with a number is on screen or named as hidden (the hidden list may also
        # name the distribution, which has no number in JSON).
        assert matched_columns >= columns_with_numbers - len(hidden), (
            f"{report} at {columns}: {matched_columns} numbers shown, hidden {hidden}: {line!r}"
        )


def test_trace_ids_are_never_shortened_and_names_keep_both_ends() -> None:
    table = Table(
        key="rows",
        title="Traces",
        columns=(
            Column("trace_id", "trace id", ColumnKind.ID),
            Column("stage", "stage"),
            Column("duration_ms", "duration", ColumnKind.MS),
        ),
        rows=[
            {
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "stage": "a-very-long-stage-name-that-will-not-fit/predict",
                "duration_ms": 1.5,
            }
        ],
    )
    fitted = fit_table(table, width=60, plain=False)
    trace_id, stage, duration = (
        cells.cell(0, width) for cells, width in zip(fitted.columns, fitted.widths, strict=True)
    )
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert duration == "1.50ms"
    # 60 cells less the id (32), the duration (8), two gaps of 2 and the edges (2): 14 left
    assert stage == "a-very-…redict"
    assert fitted.width == 60


def test_optional_columns_hide_in_rank_order_and_wide_keeps_them() -> None:
    columns = (
        Column("stage", "stage"),
        Column("p50_ms", "p50", ColumnKind.MS),
        Column("p90_ms", "p90", ColumnKind.MS, hide_rank=1),
        Column("mean_ms", "mean", ColumnKind.MS, hide_rank=2),
        Column("count", "count", ColumnKind.INT),
    )
    table = Table(
        key="rows",
        title="Stages",
        columns=columns,
        rows=[{"stage": "s", "p50_ms": 1.0, "p90_ms": 2.0, "mean_ms": 3.0, "count": 341}],
    )
    # stage 5, p50 6, p90 6, mean 6, count 5, four gaps of 2 and two edges: 38 cells in all
    assert [c.key for c in fit_table(table, width=38, plain=False).hidden] == []
    assert [c.key for c in fit_table(table, width=37, plain=False).hidden] == ["p90_ms"]
    narrow = fit_table(table, width=24, plain=False)
    assert [c.key for c in narrow.hidden] == ["p90_ms", "mean_ms"]
    assert [c.column.key for c in narrow.columns] == ["stage", "p50_ms", "count"]
    wide = fit_table(table, width=24, plain=False, wide=True)
    assert wide.hidden == []
    assert wide.width == 38


@pytest.mark.parametrize("columns", WIDTHS)
def test_the_waterfall_shows_each_spans_times_as_in_json(columns: int) -> None:
    spans = run_json(SHOW)["spans"]
    screen = run_in_terminal(SHOW, columns)
    assert all(cell_len(line) <= columns for line in screen.splitlines())
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("service"))
    span_lines = lines[header + 1 : header + 1 + len(spans)]
    for line, span in zip(span_lines, spans, strict=True):
        service, stage, *rest = re.split(r"\s{2,}", line.strip())
        assert name_shown(service, span["service"]), line
        assert name_shown(stage, span["stage"]), line
        times = [span[key] for key in ("start_offset_ms", "duration_ms", "self_ms", "cp_ms")]
        tokens = [t for cell in rest for t in cell.replace("|", " ").split() if is_number(t)]
        # start and duration always; self and critical time (on the critical path) when the
        # console has room for them
        assert len(tokens) >= 2, line
        position = 0
        for token in tokens:
            while position < len(times) and not shows(token, times[position]):
                position += 1
            assert position < len(times), f"{token!r} in {line!r} is none of {times}"
            position += 1
