"""Milliseconds in the reports are the float nearest ns / 10**6, whatever the report and input:
JSON holds exactly the milliseconds of the input, and text rounds that value once (README,
"Durations")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core.stats import ns_to_ms
from tests.factories import otlp_document, otlp_span

START = 1_772_442_000_000_000_000
#: Durations whose reciprocal product is one ulp off, with their text (half to even on the
#: decimal value: 999.5µs is 1.00ms, 1.435ms is 1.44ms, 99.95ms is 100ms).
DURATIONS = {
    "a": (999_500, "1.00ms"),
    "b": (1_435_000, "1.44ms"),
    "c": (99_950_000, "100ms"),
    "d": (25_000, "25.0µs"),
    "e": (4_900_000, "4.90ms"),
}


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--no-cache", "-q"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    spans = [
        otlp_span(f"{index + 1:032x}", f"{index + 1:016x}", None, stage, START, START + ns)
        for index, (stage, (ns, _)) in enumerate(DURATIONS.items())
    ]
    path = tmp_path / "spans.otlp.jsonl"
    path.write_text(json.dumps(otlp_document(spans)) + "\n")
    return path


def test_latency_json_holds_the_exact_milliseconds_and_text_rounds_them_once(dump: Path) -> None:
    rows = {
        row["stage"]: row for row in json.loads(run("latency", str(dump), "-f", "json"))["rows"]
    }
    table = run("latency", str(dump))
    for stage, (ns, text) in DURATIONS.items():
        for key in ("mean_ms", "p50_ms", "p99_ms", "max_ms", "self_mean_ms"):
            assert rows[stage][key] == ns / 1_000_000, (stage, key)
        line = next(line for line in table.splitlines() if line.startswith(f"{stage} "))
        assert line.split("|")[2].strip() == text, line


def test_traces_and_show_hold_the_same_milliseconds(dump: Path) -> None:
    traces = json.loads(run("traces", str(dump), "-f", "json"))["rows"]
    assert {row["stage"]: row["duration_ms"] for row in traces} == {
        stage: ns / 1_000_000 for stage, (ns, _) in DURATIONS.items()
    }
    for index, (ns, _) in enumerate(value for value in DURATIONS.values()):
        shown = json.loads(run("show", f"{index + 1:032x}", str(dump), "-f", "json"))
        span = shown["spans"][0]
        assert (span["duration_ms"], span["self_ms"]) == (ns / 1_000_000, ns / 1_000_000)


def test_log_durations_read_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "app.log.jsonl"
    lines = [
        {"timestamp": f"2026-03-02T09:00:0{index}.5Z", "request_id": f"r{index}", "stage": stage}
        | {"duration_ms": ns / 1_000_000}
        for index, (stage, (ns, _)) in enumerate(DURATIONS.items())
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = json.loads(run("latency", str(path), "-f", "json"))["rows"]
    assert {row["stage"]: row["max_ms"] for row in rows if row["stage"] in DURATIONS} == {
        line["stage"]: line["duration_ms"] for line in lines
    }


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=-(2**53), max_value=2**53), min_size=1, max_size=50))
def test_ns_to_ms_is_the_correctly_rounded_quotient(values: list[int]) -> None:
    frame = pl.DataFrame({"ns": values}, schema={"ns": pl.Int64})
    got = frame.select(ms=ns_to_ms(pl.col("ns"))).get_column("ms").to_list()
    by_group = (
        frame.with_columns(group=pl.int_range(pl.len()) % 3)
        .group_by("group")
        .agg(ms=ns_to_ms(pl.col("ns")).max(), most=pl.col("ns").max())
    )
    assert got == [value / 1_000_000 for value in values]
    assert all(ms == most / 1_000_000 for ms, most in by_group.select("ms", "most").rows())
