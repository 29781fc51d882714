"""The CLI as a user drives it: exit codes, stdout purity, stderr messages."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.schema import attributes_dict
from tests.conftest import SAMPLE_DATA
from tests.factories import T0, otlp_document, otlp_span, sid

DEMO = "otlp/otel-demo-capture.otlp.jsonl"
runner = CliRunner()


def run(*args: str, input: bytes | None = None):
    return runner.invoke(app, list(args), input=input)


@pytest.fixture
def demo(shared_fixtures: Path) -> Path:
    return shared_fixtures / DEMO


def test_summary_json_holds_the_demo_counts_and_warnings_stay_on_stderr(demo: Path) -> None:
    result = run("summary", str(demo), "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    for key in (
        "spans",
        "traces",
        "services",
        "error_spans",
        "orphan_spans",
        "log_records",
        "skipped_lines",
        "inputs",
    ):
        assert key in document
    assert document["report"] == "summary"
    assert document["spans"] == 547
    assert document["traces"] == 141
    assert len(document["services"]) == 8
    assert document["error_spans"] == 107
    assert document["orphan_spans"] == 1  # SOURCES.md: one orphan
    assert document["skipped_lines"] == 0
    (entry,) = document["inputs"]
    assert entry["format"] == "otlp-json"
    assert entry["spans"] == 547
    assert entry["skipped"] == 0
    assert entry["ignored"]["metrics documents"] == 40
    # Warnings go to stderr, never into the JSON on stdout.
    assert "orphan" in result.stderr


def test_every_report_runs_in_every_format(demo: Path) -> None:
    for command in ("summary", "latency", "errors", "bottlenecks"):
        for fmt in ("table", "json", "csv", "markdown"):
            result = run(command, str(demo), "--format", fmt, "--quiet")
            assert result.exit_code == 0, (command, fmt, result.stderr)
            assert result.stdout.strip()
            assert result.stderr == ""


def test_missing_file_unknown_format_and_bad_option_exit_2(tmp_path: Path) -> None:
    result = run("latency", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "nope.json: no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    text = tmp_path / "notes.log"
    text.write_text("hello world\nthis is not telemetry\n")
    result = run("summary", str(text))
    assert result.exit_code == 2
    assert "unknown format" in result.stderr
    assert "--input-format" in result.stderr
    result = run("summary", str(text), "--input-format", "nope")
    assert result.exit_code == 2
    assert "unknown input format" in result.stderr
    assert run("latency", "--nope").exit_code == 2


def test_filters_that_match_nothing_exit_2(demo: Path) -> None:
    result = run("latency", str(demo), "--service", "no-such-service")
    assert result.exit_code == 2
    assert "no spans match --service no-such-service" in result.stderr
    result = run("latency", str(demo), "--where", "duration_ms >")
    assert result.exit_code == 2
    assert "--where" in result.stderr


def test_strict_turns_a_bad_line_into_a_failure(demo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    lines = demo.read_bytes().splitlines()
    broken.write_bytes(b"\n".join([lines[0], lines[1][: len(lines[1]) // 2], *lines[2:]]) + b"\n")
    result = run("summary", str(broken), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped_lines"] == 1
    assert f"{broken}:2" in result.stderr
    assert "--strict" in result.stderr
    result = run("summary", str(broken), "--strict")
    assert result.exit_code == 2
    assert f"{broken}:2" in result.stderr


def test_stdin_gzip_a_directory_and_a_glob_read_as_the_file_does(
    demo: Path, tmp_path: Path
) -> None:
    data = demo.read_bytes()
    expected = json.loads(run("latency", str(demo), "-f", "json", "-q").stdout)["rows"]
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "demo.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "d" / "README.md").write_text("not telemetry, skipped by the directory walk")
    shutil.copy(demo, tmp_path / "copy.jsonl")
    for args, stdin in (
        (["-"], data),
        (["-"], gzip.compress(data)),
        ([str(tmp_path / "d")], None),
        ([str(tmp_path / "*.jsonl")], None),
    ):
        result = run("latency", *args, "-f", "json", "-q", input=stdin)
        assert result.exit_code == 0, (args, result.stderr)
        assert json.loads(result.stdout)["rows"] == expected


def test_convert_round_trip_gives_identical_reports(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.parquet"
    result = run("convert", str(demo), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    for command in ("latency", "errors", "bottlenecks"):
        original = json.loads(run(command, str(demo), "-f", "json", "-q").stdout)
        converted = json.loads(run(command, str(out), "-f", "json", "-q").stdout)
        for key in set(original) - {"inputs"}:
            assert original[key] == converted[key], (command, key)
    summary = json.loads(run("summary", str(out), "-f", "json", "-q").stdout)
    assert summary["inputs"][0]["format"] == "parquet"
    assert summary["spans"] == 547
    assert summary["log_records"] == 23


def test_a_parquet_copy_of_logs_keeps_their_clock_resolution(tmp_path: Path) -> None:
    # Millisecond timestamps: fetch [1, 8] and infer [7, 42] overlap by one tick, so fetch stays
    # on the critical path only with the file's resolution as slack (algorithms.md).
    lines = [
        ("fetch", "2026-03-02T09:00:00.008Z", 7.0),
        ("infer", "2026-03-02T09:00:00.042Z", 35.0),
        ("POST /predict", "2026-03-02T09:00:00.043Z", 43.0),
    ]
    dump = tmp_path / "app.log.jsonl"
    dump.write_text(
        "".join(
            json.dumps({"timestamp": end, "request_id": "r1", "stage": stage, "duration_ms": ms})
            + "\n"
            for stage, end, ms in lines
        )
    )
    out = tmp_path / "app.parquet"
    result = run("convert", str(dump), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "wrote 0 spans and 3 log records" in result.stderr
    for command in ("latency", "summary", "bottlenecks"):
        original = json.loads(run(command, str(dump), "-f", "json", "-q").stdout)
        converted = json.loads(run(command, str(out), "-f", "json", "-q").stdout)
        assert {k: v for k, v in original.items() if k != "inputs"} == {
            k: v for k, v in converted.items() if k != "inputs"
        }, command
    shares = {
        row["stage"]: row["cp_share"]
        for row in json.loads(run("latency", str(out), "-f", "json", "-q").stdout)["rows"]
    }
    # On the path: the root [0, 1], fetch [1, 7] (its end within one tick of infer's start),
    # infer [7, 42], the root [42, 43]. Without the slack the root would hold [0, 7].
    assert shares == pytest.approx({"POST /predict": 2 / 43, "fetch": 6 / 43, "infer": 35 / 43})


def test_version_and_formats_name_the_tool_and_its_readers() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("tracelens ")
    names = {row["name"] for row in json.loads(run("formats", "-f", "json").stdout)["rows"]}
    assert {"otlp-json", "parquet"} <= names


def test_piped_table_output_is_plain(demo: Path) -> None:
    result = run("latency", str(demo), "-q")
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "Requests:" in result.stdout


def test_a_stray_file_in_a_directory_is_skipped_with_a_warning(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "dumps").mkdir()
    shutil.copy(demo, tmp_path / "dumps" / "demo.jsonl")
    (tmp_path / "dumps" / "notes.log").write_text("plain text, not telemetry\n")
    result = run("summary", str(tmp_path / "dumps"), "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["spans"] == 547
    formats = {Path(i["path"]).name: i["format"] for i in document["inputs"]}
    assert formats == {"demo.jsonl": "otlp-json", "notes.log": "unknown"}
    assert "notes.log: skipped, not a telemetry format" in result.stderr
    # Named explicitly, the same file is still an error.
    assert run("summary", str(tmp_path / "dumps" / "notes.log")).exit_code == 2


def test_a_directory_walk_passes_over_documents_and_reads_a_text_log(
    demo: Path, tmp_path: Path
) -> None:
    from ml_tracelens.ingest.inputs import SKIPPED_SUFFIXES

    (tmp_path / "dumps").mkdir()
    shutil.copy(demo, tmp_path / "dumps" / "demo.jsonl")
    for suffix in SKIPPED_SUFFIXES:
        (tmp_path / "dumps" / f"notes{suffix}").write_text("not telemetry\n")
    line = {"timestamp": "2026-03-02T09:00:00Z", "request_id": "r", "stage": "s", "duration_ms": 1}
    (tmp_path / "dumps" / "pod.txt").write_text(json.dumps(line) + "\n")
    result = run("summary", str(tmp_path / "dumps"), "-f", "json")
    assert result.exit_code == 0, result.stderr
    formats = {Path(i["path"]).name: i["format"] for i in json.loads(result.stdout)["inputs"]}
    assert formats == {"demo.jsonl": "otlp-json", "pod.txt": "json-logs"}
    assert "notes" not in result.stderr


def test_parquet_written_before_resources_were_kept_apart_still_reads(
    demo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo.parquet"
    assert run("convert", str(demo), "-o", str(out)).exit_code == 0
    frame = pl.read_parquet(out)
    # The older layout: resource attributes inside `attributes`, no `resource` column.
    merged = [
        json.dumps(attributes_dict(a, r)) if table == "span" else a
        for a, r, table in frame.select("attributes", "resource", "table").iter_rows()
    ]
    old = tmp_path / "old.parquet"
    frame.with_columns(attributes=pl.Series(merged)).drop("resource").write_parquet(old)
    args = ("--by", "attr.service.name", "-f", "json", "-q")
    expected = json.loads(run("latency", str(out), *args).stdout)["rows"]
    result = run("latency", str(old), *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == expected


def test_a_long_error_stays_one_line(demo: Path) -> None:
    # Piped stderr is 250 columns wide; a message must not be folded into several lines there.
    ident = "f" * 400
    result = subprocess.run(
        [sys.executable, "-m", "ml_tracelens", "show", ident, str(demo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert ident in result.stderr


def test_summary_folds_a_long_list_of_inputs_into_one_row(tmp_path: Path) -> None:
    for i in range(25):
        span = otlp_span(f"{i + 1:032x}", sid(i), None, "op", T0, T0 + 1000, kind=None)
        document = otlp_document([span] * (1 + i % 3), service=None)
        (tmp_path / f"d{i:02d}.json").write_text(json.dumps(document))
    from ml_tracelens.reports.summary import LISTED_INPUTS

    text = runner.invoke(app, ["summary", str(tmp_path), "--no-cache", "-q"]).stdout
    listed = [line for line in text.splitlines() if "d0" in line or "d1" in line or "d2" in line]
    assert len(listed) == LISTED_INPUTS - 1
    folded = next(line for line in text.splitlines() if line.startswith("… and 6 more"))
    # the six folded inputs d19..d24 hold 1 + i % 3 spans each
    want = sum(1 + i % 3 for i in range(19, 25))
    cells = [cell.strip() for cell in folded.split("|")]
    assert cells[1:] == ["otlp-json", str(want), "0", "6", "0"]
    document = json.loads(runner.invoke(app, ["summary", str(tmp_path), "-f", "json"]).stdout)
    assert len(document["inputs"]) == 25


def test_a_message_quotes_what_was_typed_with_control_characters_escaped_once() -> None:
    sample = str(SAMPLE_DATA / "traces.otlp.jsonl")
    typed = "a\\b\x1b[31m"  # a typed backslash and a real ESC
    result = run("show", typed, sample, "--no-cache")
    assert result.exit_code == 2
    assert "no trace or request id 'a\\\\b\\x1b[31m' in the input" in result.stderr
    where = run("latency", sample, "--no-cache", "--where", "stage = 'x' AND")
    assert where.exit_code == 2
    assert "--where \"stage = 'x' AND\": " in where.stderr
    # JSON holds the stage as it was named, escaped by JSON alone.
    check = run("check", sample, "--no-cache", "--budget", "a\\b:p95<1s", "-f", "json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["rows"][0]["note"].startswith("stage 'a\\b' is not in the data")
