"""Hostile content (issue 8), resource limits: gzip bombs, oversize lines and documents, streams
and deep nesting are refused with a message, never by exhausting memory or crashing.

The bomb is made here: a deflate block of 1 MiB of spaces, compressed once and repeated (after
a full flush a block never refers back, so repeating it is valid deflate), in gzip members whose
CRCs are computed over what they really hold: 10 GiB of output from ~10 MB, in well under a
second. Sizes and limits are set through the documented environment variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_tracelens import limits
from ml_tracelens.cli import app
from ml_tracelens.limits import parse_size, too_deep
from ml_tracelens.readers import registry
from tests._hostile import TRACE, hostile_otlp

runner = CliRunner()
MIB = 1024 * 1024
CHUNK = b" " * MIB
DEPTH_REASON = "JSON nested deeper than 128 levels (TRACELENS_MAX_JSON_DEPTH)"


def gzip_member(prefix: bytes, repeats: int, suffix: bytes = b"") -> bytes:
    """A valid gzip member holding ``prefix + CHUNK * repeats + suffix``."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(CHUNK) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(suffix) + deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(repeats):
        crc = zlib.crc32(CHUNK, crc)
    crc = zlib.crc32(suffix, crc)
    size = (len(prefix) + repeats * MIB + len(suffix)) % 2**32
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + size.to_bytes(4, "little")
    return header + head + block * repeats + tail + trailer


def write_bomb(path: Path, gib: int) -> None:
    """An OTLP line, then ``gib`` GiB of spaces with no newline: streams fine, inflates hugely."""
    first = gzip_member(hostile_otlp(["before"]).encode() + b"\n", 64)
    rest = gzip_member(b"", 64)  # 64 MiB each, identical, so computed once
    with path.open("wb") as out:
        out.write(first)
        for _ in range(gib * 16 - 1):
            out.write(rest)


def _measured(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run tracelens in a child; also return its peak resident memory in bytes."""
    script = (
        "import os, resource, sys\n"
        "from ml_tracelens.cli import main\n"
        "sys.argv = ['tracelens', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "open(os.environ['PEAK_OUT'], 'w').write(str(peak * 1024))\n"
        "sys.exit(code)\n"
    )
    peak_file = Path(env["PEAK_OUT"])
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=False,
    )
    return result, int(peak_file.read_text())


def test_the_bomb_generator_makes_valid_gzip() -> None:
    import gzip

    data = gzip.decompress(gzip_member(b"head\n", 3, b"\ntail") + gzip_member(b"", 1))
    assert data == b"head\n" + CHUNK * 3 + b"\ntail" + CHUNK


def test_a_gzip_bomb_is_streamed_bounded_and_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    write_bomb(bomb, gib=10)
    assert bomb.stat().st_size < 12 * MIB  # 10 GiB inside
    started = time.monotonic()
    env = {"PEAK_OUT": str(tmp_path / "peak"), "TRACELENS_CACHE_DIR": str(tmp_path / "c")}
    result, peak = _measured("summary", str(bomb), env=env)
    assert result.returncode == 2, result.stderr
    assert "decompression bomb" in result.stderr
    assert "TRACELENS_MAX_GZIP_RATIO" in result.stderr
    assert "internal error" not in result.stderr
    assert time.monotonic() - started < 60
    assert peak < 1024 * MIB  # it stopped near the 64 MiB floor, not at 10 GiB


def test_a_gzip_bomb_on_stdin_is_refused_too(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gz"
    write_bomb(bomb, gib=1)
    result = runner.invoke(app, ["summary", "-"], input=bomb.read_bytes())
    assert result.exit_code == 2
    assert "<stdin>: decompresses to more than 200× its compressed size" in result.stderr


def test_the_ratio_limit_is_configurable_and_honest_archives_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 80 MiB at ~1000x: past the 64 MiB floor, so refused by default.
    packed = tmp_path / "squeezed.jsonl.gz"
    first, last = hostile_otlp(["first"]), hostile_otlp(["last"], trace="ab" * 16)
    packed.write_bytes(gzip_member(first.encode() + b"\n", 80, b"\n" + last.encode() + b"\n"))
    # The filler is one 80 MiB blank line, past the default line cap of 64 MiB: the ratio is
    # what this tests.
    monkeypatch.setenv("TRACELENS_MAX_DOCUMENT_BYTES", "128M")
    refused = runner.invoke(app, ["summary", str(packed)])
    assert refused.exit_code == 2
    assert "TRACELENS_MAX_GZIP_RATIO" in refused.stderr
    for ratio in ("0", "2000"):
        monkeypatch.setenv("TRACELENS_MAX_GZIP_RATIO", ratio)
        result = runner.invoke(app, ["summary", str(packed), "--format", "json"])
        assert result.exit_code == 0, (ratio, result.stderr)
        assert json.loads(result.stdout)["spans"] == 4
    monkeypatch.delenv("TRACELENS_MAX_GZIP_RATIO")
    import gzip

    honest = tmp_path / "honest.jsonl.gz"  # real-looking telemetry compresses ~10x
    honest.write_bytes(
        gzip.compress("\n".join(hostile_otlp([f"s{i}"]) for i in range(2000)).encode())
    )
    assert runner.invoke(app, ["summary", str(honest)]).exit_code == 0


def test_truncated_gzip_is_a_clear_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip_member(hostile_otlp(["x"]).encode() + b"\n", 2)[:1500])
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2
    assert "internal error" not in result.stderr
    assert "cut.jsonl.gz" in result.stderr


# --- size of lines, documents and streams ------------------------------------------------------


def _padded_line(size: int) -> str:
    """An OTLP line of exactly ``size`` bytes (an extra key, ignored by the reader, pads it)."""
    bare = hostile_otlp(["pad"])
    line = bare[:-1] + ', "padding": "' + "x" * (size - len(bare) - 15) + '"}'
    assert len(line) == size
    return line


def test_an_oversize_line_is_refused_with_its_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACELENS_MAX_DOCUMENT_BYTES", "4K")
    fits = tmp_path / "fits.jsonl"
    fits.write_text(_padded_line(1500) + "\n" + _padded_line(4096) + "\n")  # exactly the limit
    assert runner.invoke(app, ["summary", str(fits)]).exit_code == 0
    big = tmp_path / "big.jsonl"
    big.write_text(_padded_line(1500) + "\n" + _padded_line(4097) + "\n")
    result = runner.invoke(app, ["summary", str(big)])
    assert result.exit_code == 2
    assert f"{big}:2: line longer than 4 KiB (TRACELENS_MAX_DOCUMENT_BYTES)" in result.stderr


def test_an_oversize_document_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACELENS_MAX_DOCUMENT_BYTES", "4K")
    document = json.dumps(json.loads(_padded_line(6000)), indent=2)  # one document, many lines
    path = tmp_path / "big.json"
    path.write_text(document)
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2
    assert (
        "a single JSON document larger than 4 KiB (TRACELENS_MAX_DOCUMENT_BYTES)" in result.stderr
    )


@pytest.mark.parametrize("layout", ["line", "document"])
def test_a_huge_line_or_document_is_never_held_whole(tmp_path: Path, layout: str) -> None:
    # 8 GiB of zeros after a valid start, in a sparse file: costs no disk, and no memory if the
    # read stops at the limit.
    path = tmp_path / f"huge-{layout}.json"
    start = hostile_otlp(["x"]) + "\n" if layout == "line" else '{"data":[{"traceID":"1",\n'
    with path.open("wb") as out:
        out.write(start.encode())
        out.truncate(8 * 1024 * MIB)
    env = {"PEAK_OUT": str(tmp_path / "peak"), "TRACELENS_MAX_DOCUMENT_BYTES": "16M"}
    forced = ["--input-format", "jaeger-json"] if layout == "document" else []
    result, peak = _measured("summary", str(path), *forced, "--no-cache", env=env)
    assert result.returncode == 2, result.stderr
    assert "16 MiB (TRACELENS_MAX_DOCUMENT_BYTES)" in result.stderr
    assert peak < 1024 * MIB


def test_streams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACELENS_MAX_STREAM_BYTES", "1K")
    result = runner.invoke(app, ["summary", "-"], input=_padded_line(2000).encode())
    assert result.exit_code == 2
    assert "<stdin>: more than 1 KiB from a stream (TRACELENS_MAX_STREAM_BYTES)" in result.stderr
    monkeypatch.setenv("TRACELENS_MAX_STREAM_BYTES", "4K")
    assert runner.invoke(app, ["summary", "-"], input=_padded_line(2000).encode()).exit_code == 0


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRACELENS_MAX_DOCUMENT_BYTES", "lots", "expected a size such as 512M or 2G"),
        ("TRACELENS_MAX_STREAM_BYTES", "0", "expected a size such as 512M or 2G"),
        ("TRACELENS_MAX_JSON_DEPTH", "0", "expected a whole number of levels from 1 to 1024"),
        ("TRACELENS_MAX_JSON_DEPTH", "5000", "expected a whole number of levels from 1 to 1024"),
        ("TRACELENS_MAX_GZIP_RATIO", "-1", "expected a ratio such as 200"),
    ],
)
def test_bad_limit_settings_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text(hostile_otlp(["a"]) + "\n")
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2
    assert f"error: {variable}={value!r}: {expected}" in result.stderr


def test_sizes_are_read_as_people_write_them() -> None:
    assert parse_size("512M") == 512 * MIB
    assert parse_size("1GiB") == parse_size("1g") == 1024 * MIB
    assert parse_size("64 KiB") == 65536
    assert parse_size("100") == 100
    assert parse_size("1.5K") == 1536
    with pytest.raises(ValueError, match="not a size"):
        parse_size("1 lightyear")
    assert limits.format_size(1024 * MIB) == "1 GiB"
    assert limits.format_size(1536) == "1.5 KiB"


# --- nesting depth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[[[", "]]]]"]', 1),  # brackets in strings do not nest
        ('["\\"[[[[", "\\\\", [["\\\\\\"]"]]]', 3),  # nor after escaped quotes and backslashes
        ('{"k[": {"]k": {"{": [{}]}}}', 5),
    ],
)
def test_depth_is_measured_on_the_bytes_as_a_parser_would(text: str, depth: int) -> None:
    padded = text.encode() + b" " * 300  # past the cheap length bound
    assert too_deep(padded, depth) is False
    if depth > 1:
        assert too_deep(padded, depth - 1) is True


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _documents(reader: str, value: str) -> str:
    """One minimal valid document of each JSON format, with ``value`` as an attribute value."""
    if reader == "otlp-json":
        return hostile_otlp(["x"], logs=False).replace(
            '"stringValue": "x"}}]',
            f'"stringValue": "x"}}}}, {{"key": "deep", "value": {value}}}]',
            1,
        )
    if reader == "jaeger-json":
        return json.dumps(
            {
                "data": [
                    {
                        "traceID": TRACE,
                        "processes": {"p1": {"serviceName": "s"}},
                        "spans": [
                            {
                                "traceID": TRACE,
                                "spanID": "b7ad6b7169203331",
                                "operationName": "op",
                                "startTime": 1700000000000000,
                                "duration": 1000,
                                "processID": "p1",
                                "references": [],
                                "tags": [{"key": "deep", "type": "string", "value": "@V@"}],
                            }
                        ],
                    }
                ]
            }
        ).replace('"@V@"', value)
    if reader == "zipkin-json":
        return json.dumps(
            [
                {
                    "traceId": TRACE,
                    "id": "b7ad6b7169203331",
                    "name": "op",
                    "timestamp": 1700000000000000,
                    "duration": 1000,
                    "localEndpoint": {"serviceName": "s"},
                    "tags": {"deep": "@V@"},
                }
            ]
        ).replace('"@V@"', value)
    if reader == "otel-console":
        return json.dumps(
            {
                "name": "op",
                "context": {
                    "trace_id": "0x" + TRACE,
                    "span_id": "0xb7ad6b7169203331",
                    "trace_state": "[]",
                },
                "kind": "SpanKind.SERVER",
                "parent_id": None,
                "start_time": "2024-01-01T00:00:00.000000Z",
                "end_time": "2024-01-01T00:00:00.100000Z",
                "status": {"status_code": "UNSET"},
                "attributes": {"deep": "@V@"},
                "events": [],
                "links": [],
                "resource": {"attributes": {"service.name": "s"}, "schema_url": ""},
            }
        ).replace('"@V@"', value)
    assert reader == "json-logs"
    return json.dumps(
        {
            "timestamp": "2024-01-01T00:00:00Z",
            "level": "info",
            "message": "m",
            "trace_id": TRACE,
            "deep": "@V@",
        }
    ).replace('"@V@"', value)


def _layout(document: str, layout: str) -> str:
    pretty = document.replace(", ", ",\n", 3)  # several lines, so not one document per line
    if layout == "line":
        return document + "\n" + document + "\n"
    if layout == "whole":
        return pretty
    return pretty + "\n" + pretty + "\n"


JSON_READERS = [name for name in registry() if name != "parquet"]


@pytest.mark.parametrize("reader", JSON_READERS)
@pytest.mark.parametrize("layout", ["line", "whole", "concatenated"])
@pytest.mark.parametrize("shape", ["100k top-level", "100k value", "1000 value", "200 value"])
def test_deep_nesting_is_refused_by_depth_in_every_reader_path(
    tmp_path: Path, reader: str, layout: str, shape: str
) -> None:
    depth = int(shape.split()[0].replace("k", "000"))
    nested = _nested(depth)
    document = nested if shape.endswith("top-level") else _documents(reader, nested)
    path = tmp_path / f"deep-{layout}.json"
    path.write_text(_layout(document, layout))
    for forced in (["--input-format", reader], []):
        result = runner.invoke(app, ["summary", str(path), "--format", "json", *forced])
        assert result.exit_code in (0, 2), (forced, result.stderr)
        assert "internal error" not in result.stderr
        assert "Traceback" not in result.stderr
        if not forced:
            continue  # detection may call it another format or none: only no crash matters
        # The typed OTLP path keeps attribute values as raw JSON text (held to the limit when
        # parsed, e.g. by `show --attrs`); it cannot decode values deeper than its own stack.
        raw_kept = reader == "otlp-json" and layout == "line" and shape == "200 value"
        if raw_kept:
            assert json.loads(result.stdout)["spans"] == 2
        elif reader == "json-logs" and layout != "line":
            # JSON lines only: each line of a pretty-printed document is malformed on its own.
            assert "skipped" in result.stderr
        else:
            assert DEPTH_REASON in " ".join(result.stderr.split()), result.stderr
    if raw_kept:
        shown = runner.invoke(app, ["show", TRACE, str(path), "--attrs"])
        assert shown.exit_code == 0
        assert "internal error" not in shown.stderr


def test_a_deep_raw_attribute_is_never_parsed_past_the_limit(tmp_path: Path) -> None:
    from ml_tracelens.schema import attributes_dict

    # The typed OTLP path keeps this 200-deep value as raw text; showing it must not parse it.
    path = tmp_path / "raw.jsonl"
    path.write_text(_layout(_documents("otlp-json", _nested(200)), "line"))  # two lines: typed
    shown = runner.invoke(app, ["show", TRACE, str(path), "--attrs"])
    assert shown.exit_code == 0, shown.stderr
    assert "[[[[" not in shown.stdout  # the span is shown, its too-deep attributes are not
    assert " x " in shown.stdout
    by = runner.invoke(app, ["latency", str(path), "--by", "attr.deep", "--format", "json"])
    assert by.exit_code == 0, by.stderr
    with pytest.raises(ValueError, match="nested deeper than 128 levels"):
        attributes_dict('[{"key": "deep", "value": ' + _nested(200) + "}]")
    assert attributes_dict('[{"key": "ok", "value": {"intValue": "3"}}]') == {"ok": 3}


def test_the_depth_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zipkin = tmp_path / "zipkin.json"  # [ { {...} } ]: 3 levels
    zipkin.write_text(_documents("zipkin-json", '"v"'))
    jaeger = tmp_path / "jaeger.json"  # {data:[{spans:[{tags:[{ : 7 levels
    jaeger.write_text(_documents("jaeger-json", '"v"'))
    monkeypatch.setenv("TRACELENS_MAX_JSON_DEPTH", "5")
    assert runner.invoke(app, ["summary", str(zipkin)]).exit_code == 0
    result = runner.invoke(app, ["summary", str(jaeger)])
    assert result.exit_code == 2
    assert "JSON nested deeper than 5 levels (TRACELENS_MAX_JSON_DEPTH)" in " ".join(
        result.stderr.split()
    )
    monkeypatch.setenv("TRACELENS_MAX_JSON_DEPTH", "7")
    assert runner.invoke(app, ["summary", str(jaeger)]).exit_code == 0
