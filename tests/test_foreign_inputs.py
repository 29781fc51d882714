"""Files that are not telemetry are named for what they are: profiler traces, other JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.readers.support.foreign import describe, json_keys
from tests.conftest import SAMPLE_DATA

runner = CliRunner()

CHROME_EVENTS = [{"name": "aten::mm", "ph": "X", "ts": 10, "dur": 5, "pid": 1, "tid": 1}]
FILES = {
    "chrome-object.json": {"traceEvents": CHROME_EVENTS, "displayTimeUnit": "ms"},
    "kineto.json": {
        "schemaVersion": 1,
        "deviceProperties": [],
        "traceEvents": CHROME_EVENTS,
    },
    "chrome-array.json": CHROME_EVENTS,
    "package.json": {"name": "web", "version": "1.0.0", "dependencies": {"left-pad": "1"}},
    "hello.json": {"hello": "world"},
}
SAID = {
    "chrome-object.json": "a trace-event profile as Chrome or Perfetto writes it",
    "kineto.json": "a trace-event profile as the PyTorch profiler (Kineto) writes it",
    "chrome-array.json": "a trace-event profile as Chrome or Perfetto writes it",
    "package.json": "no telemetry recognised in {path} (keys seen: name, version, dependencies)",
    "hello.json": "no telemetry recognised in {path} (keys seen: hello)",
}


def write(tmp_path: Path, name: str, pretty: bool = False) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(FILES[name], indent=2 if pretty else None) + "\n")
    return path


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("pretty", [False, True])
def test_a_named_foreign_file_is_one_line_saying_what_it_is(
    tmp_path: Path, name: str, pretty: bool
) -> None:
    path = write(tmp_path, name, pretty)
    result = runner.invoke(app, ["latency", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert SAID[name].format(path=path) in result.stderr
    assert "tracelens reads OTLP/JSON, Jaeger, Zipkin v2" in result.stderr


def test_foreign_files_in_a_directory_are_skipped_with_a_warning(tmp_path: Path) -> None:
    for name in FILES:
        write(tmp_path, name)
    (tmp_path / "traces.otlp.jsonl").write_bytes((SAMPLE_DATA / "traces.otlp.jsonl").read_bytes())
    result = runner.invoke(app, ["summary", str(tmp_path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    formats = {Path(i["path"]).name: i["format"] for i in json.loads(result.stdout)["inputs"]}
    assert formats == {**dict.fromkeys(FILES, "unknown"), "traces.otlp.jsonl": "otlp-json"}
    for name in FILES:
        assert f"{tmp_path / name}: skipped: " in result.stderr


def test_keys_of_a_document_cut_short_are_its_outermost_ones() -> None:
    head = b'{\n  "name": "x",\n  "scripts": {\n    "test": "jest"\n  },\n  "private": tr'
    assert json_keys(head) == ["name", "scripts", "private"]
    assert json_keys(b"[1, 2]") is None
    assert describe(b"plain text") is None


def test_a_log_with_some_recognised_lines_is_still_a_log(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_text('{"hello": "world"}\n{"level": "info", "message": "up"}\n')
    result = runner.invoke(app, ["summary", str(path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["log_records"] == 2


@pytest.mark.parametrize(
    ("magic", "name", "verb"),
    [
        (b"\x28\xb5\x2f\xfd", "zstd", "decompress it"),
        (b"BZh91AY&SY", "bzip2", "decompress it"),
        (b"\xfd7zXZ\x00\x00", "xz", "decompress it"),
        (b"\x04\x22\x4d\x18", "lz4", "decompress it"),
        (b"PK\x03\x04\x14\x00", "zip", "extract it"),
    ],
)
def test_other_compression_is_named(tmp_path: Path, magic: bytes, name: str, verb: str) -> None:
    path = tmp_path / "dump.jsonl.x"
    path.write_bytes(magic + b"\x00" * 64)
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: compressed with {name}: {verb} first (or: tracelens reads .gz)\n"
    )


def test_a_gzip_bomb_of_blank_lines_stops_just_past_the_floor(tmp_path: Path) -> None:
    import gzip
    import re

    from ml_tracelens import limits

    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'{"level": "info", "message": "x"}\n')
        block = b"\n" * (1 << 20)
        for _ in range(96):
            out.write(block)
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2
    produced = re.search(r"over ([0-9.]+) MiB", result.stderr)
    assert produced is not None, result.stderr
    # Checked every MiB of output: it stops within a step of the floor, not after a 128 MiB read.
    assert float(produced.group(1)) <= limits.GZIP_RATIO_FLOOR / (1 << 20) + 1
