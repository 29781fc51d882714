from __future__ import annotations

import csv
import io
import json

from ml_tracelens.render import OutputFormat, emit
from ml_tracelens.render.cells import format_value, printable, sparkline
from ml_tracelens.render.csv import cell
from ml_tracelens.reports.model import Column, ColumnKind, Report, Table


def _report(rows: list[dict[str, object]]) -> Report:
    return Report(
        name="demo",
        title="Demo",
        headline=["one line"],
        tables=[
            Table(
                key="rows",
                title="Rows",
                columns=(
                    Column("stage", "stage"),
                    Column("p95_ms", "p95 ms", ColumnKind.MS),
                    Column("distribution", "dist", ColumnKind.SPARK),
                ),
                rows=rows,
            )
        ],
        data={"requests": {"count": 2}},
        warnings=["w"],
    )


def _emit(report: Report, fmt: OutputFormat) -> str:
    out = io.StringIO()
    emit(report, fmt, stdout=out)
    return out.getvalue()


def test_json_envelope_keys_and_machine_columns_only() -> None:
    document = json.loads(
        _emit(_report([{"stage": "a", "p95_ms": 1.5, "distribution": [1]}]), OutputFormat.JSON)
    )
    assert set(document) == {"tracelens", "report", "inputs", "warnings", "requests", "rows"}
    assert document["tracelens"]["schema"] == 1
    assert document["rows"] == [{"stage": "a", "p95_ms": 1.5}]


def test_csv_neutralises_formulas_but_not_numbers() -> None:
    rows = [
        {"stage": '=HYPERLINK("http://x")', "p95_ms": -3.5},
        {"stage": "+1", "p95_ms": 2.0},
        {"stage": "@SUM(A1)", "p95_ms": None},
        {"stage": "\tx", "p95_ms": 0.0},
        {"stage": "plain", "p95_ms": 1.0},
    ]
    parsed = list(csv.reader(io.StringIO(_emit(_report(rows), OutputFormat.CSV))))
    assert parsed[0] == ["stage", "p95_ms"]
    assert [r[0] for r in parsed[1:]] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'@SUM(A1)",
        "'\tx",
        "plain",
    ]
    assert parsed[1][1] == "-3.5"
    assert parsed[3][1] == ""
    assert cell(True) == "true"


def test_terminal_text_escapes_control_characters_and_keeps_brackets() -> None:
    nasty = "redis GET [shard-1]\x1b[31m\x1b]8;;http://evil\x07link\r\u202e"
    text = _emit(
        _report([{"stage": nasty, "p95_ms": 1.0, "distribution": [0, 3]}]), OutputFormat.TABLE
    )
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "\u202e" not in text
    assert "redis GET [shard-1]\\x1b[31m" in text
    assert "\\u202e" in text


def test_markdown_escapes_pipes() -> None:
    text = _emit(
        _report([{"stage": "a|b", "p95_ms": 12.345, "distribution": []}]), OutputFormat.MARKDOWN
    )
    assert "| a\\|b | 12.3ms |" in text
    assert text.startswith("### Demo")


def test_printable_and_sparkline() -> None:
    assert printable("ok\x00\n") == "ok\\x00\\x0a"
    assert sparkline([0, 1, 8]) == " ▁█"
    assert sparkline([]) == ""


def test_nested_cells_are_json_text_not_python_repr() -> None:
    attributes = {"model.version": "v2", "ok": True, "n": None}
    events = [{"name": "exception", "attributes": {"exception.type": "ValueError"}}]
    assert format_value(attributes, ColumnKind.TEXT) == json.dumps(
        attributes, separators=(",", ":")
    )
    assert format_value(events, ColumnKind.TEXT) == json.dumps(events, separators=(",", ":"))
    assert format_value(["a", "b"], ColumnKind.TEXT) == "a, b"
