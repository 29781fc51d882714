from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.render import OutputFormat, emit
from ml_tracelens.render.cells import format_value, printable, sparkline
from ml_tracelens.render.csv import cell
from ml_tracelens.reports.documents import ErrorsPayload, RequestSummary
from ml_tracelens.reports.result import Column, ColumnKind, Report, Table
from tests.conftest import SAMPLE_DATA

_UNMEASURED = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "error_rate")


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
        payload=ErrorsPayload(
            requests=RequestSummary(count=2, errors=0, **dict.fromkeys(_UNMEASURED)),
            distinct_messages=0,
        ),
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
    assert set(document) == {
        *("tracelens", "report", "inputs", "warnings"),
        *("requests", "distinct_messages", "rows"),
    }
    assert document["requests"]["count"] == 2
    assert document["tracelens"]["schema"] == 2
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


def test_printable_escapes_controls_and_a_sparkline_scales_to_the_largest_count() -> None:
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


def _mix_report() -> Report:
    from ml_tracelens.reports.models import Mix

    mix = Mix({"billing": 0.3093, "technical_support": 0.2812, "account": 0.0041})
    return Report(
        name="models",
        title="Models",
        tables=[
            Table(
                key="rows",
                title="Model versions",
                columns=(
                    Column("model_version", "model version"),
                    Column("prediction_mix", "prediction mix", ColumnKind.SHARES),
                ),
                rows=[
                    {"model_version": "v1", "prediction_mix": mix},
                    {"model_version": "v2", "prediction_mix": Mix()},
                ],
            )
        ],
    )


def test_prediction_mix_reads_as_percentages_in_text_and_stays_an_object_in_json() -> None:
    shown = {
        OutputFormat.TABLE: "billing 31%, technical_support 28%, account <1%",
        OutputFormat.MARKDOWN: "billing 31%, technical\\_support 28%, account \\<1%",
    }
    for fmt, mix in shown.items():
        text = _emit(_mix_report(), fmt)
        assert mix in text
        assert "{" not in text  # neither the JSON of the mix nor {} for v2
    [v2_line] = [
        line for line in _emit(_mix_report(), OutputFormat.TABLE).splitlines() if "v2" in line
    ]
    assert v2_line.split("|")[1].strip() == ""  # no predictions: an empty cell
    rows = json.loads(_emit(_mix_report(), OutputFormat.JSON))["rows"]
    assert rows[0]["prediction_mix"] == {
        "billing": 0.3093,
        "technical_support": 0.2812,
        "account": 0.0041,
    }
    assert rows[1]["prediction_mix"] == {}


def test_an_empty_table_prints_its_title_and_a_sentence() -> None:
    report = Report(
        name="errors",
        title="Errors",
        tables=[
            Table(
                key="messages",
                title="Top error messages",
                columns=(Column("message", "message", ColumnKind.PROSE),),
                rows=[],
                empty_note="no error messages in 2,019 requests",
            ),
            Table(key="drift", title="Drift (PSI)", columns=(Column("field", "field"),), rows=[]),
        ],
    )
    for fmt in (OutputFormat.TABLE, OutputFormat.MARKDOWN):
        text = _emit(report, fmt)
        assert "Top error messages" in text
        assert "no error messages in 2,019 requests" in text
        assert "no drift (PSI)" in text  # a table without a sentence of its own
        assert "(no rows)" not in text
        assert "_none_" not in text


_SAMPLE = str(SAMPLE_DATA / "traces.otlp.jsonl")
_LOGS = str(SAMPLE_DATA / "app.log.jsonl")
MAIN_TABLE_COMMANDS = {
    "latency": ["latency", _SAMPLE],
    "traces": ["traces", _SAMPLE],
    "diff": ["diff", _LOGS, _SAMPLE],
    "why": ["why", _SAMPLE, "--slow", "p95"],
    "check": ["check", _SAMPLE, "--budget", "p95<1s"],
    "models": ["models", _SAMPLE],
}


def _same_cell(text: str, value: object) -> bool:
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        return float(text) == value
    if isinstance(value, str):
        return text in (value, "'" + value)  # a formula character gets a leading quote
    return json.loads(text) == value


@pytest.mark.parametrize("name", MAIN_TABLE_COMMANDS)
def test_csv_writes_the_json_rows_with_their_numbers(name: str) -> None:
    args = [*MAIN_TABLE_COMMANDS[name], "--no-cache", "-q"]
    rows = json.loads(CliRunner().invoke(app, [*args, "-f", "json"]).stdout)["rows"]
    table = list(csv.DictReader(io.StringIO(CliRunner().invoke(app, [*args, "-f", "csv"]).stdout)))
    assert rows
    assert len(table) == len(rows)
    for row, line in zip(rows, table, strict=True):
        assert set(line) <= set(row)
        assert all(_same_cell(line[key], row[key]) for key in line), (row, line)
