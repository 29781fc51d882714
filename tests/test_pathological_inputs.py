"""Input hazards, one explicit test each (issue 7, "Must hold"): huge strings, BOM, CRLF, NUL
and invalid UTF-8, damaged gzip, empty files, directories without telemetry, unreadable files,
mixed formats in one directory, and rich markup in user data.

Inputs are built by the tests (or copied from tests/fixtures) and the expected counts come from
how they were built or from the files themselves. Every CLI call goes through ``run_cli``
(tests/_robustness.py). Tests marked ``xfail(strict=True)`` reproduce bugs in files owned by
other helpers; they flip (and fail as XPASS) when the fix lands, and the marker then goes.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests._fuzz_mutations import json_documents
from tests._robustness import (
    MS,
    T0,
    TRACE,
    fails,
    ok,
    otlp_doc,
    otlp_span,
    run_cli,
    sid,
    summary,
    write_otlp_lines,
)
from tests.conftest import FIXTURES

HUGE = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def huge_strings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 MB span name, attribute and error message."""
    text = "x" * HUGE
    spans = [
        otlp_span(
            TRACE,
            sid(0),
            None,
            "root",
            T0,
            T0 + 10 * MS,
            attributes=[{"key": "big", "value": {"stringValue": text}}],
        ),
        otlp_span(
            TRACE, sid(1), sid(0), text, T0 + MS, T0 + 2 * MS, status={"code": 2, "message": text}
        ),
    ]
    path = tmp_path_factory.mktemp("huge") / "huge.otlp.json"
    path.write_bytes(orjson.dumps(otlp_doc(spans)))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["summary"],
        ["latency"],
        ["errors"],
        ["bottlenecks"],
        ["traces"],
        ["show", TRACE],
        ["show", TRACE, "--attrs"],
        ["latency", "--by", "attr.big"],
    ],
    ids=lambda a: "-".join(a).replace(TRACE, "ID"),
)
def test_huge_strings_piped(huge_strings: Path, args: list[str]) -> None:
    started = time.monotonic()
    out = ok(*args, str(huge_strings))
    assert len(out.stdout) < 100_000  # a terminal report is not 10 MB of x
    assert time.monotonic() - started < 20


def test_huge_strings_kept_whole_in_json(huge_strings: Path) -> None:
    errors = orjson.loads(ok("errors", "--format", "json", str(huge_strings)).stdout)
    assert [len(row["message"]) for row in errors["messages"]] == [HUGE]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _render_on_terminal(path: Path, report: str) -> str:
    from ml_tracelens.ingest.pipeline import load_analysed
    from ml_tracelens.render.table import render_report
    from ml_tracelens.reports import errors as errors_report
    from ml_tracelens.reports import latency as latency_report

    telemetry, analysis = load_analysed([str(path)], use_cache=False)
    if report == "errors":
        built = errors_report.build(analysed=analysis.spans, logs=telemetry.logs, top=10)
    else:
        built = latency_report.build(analysed=analysis.spans)
    return re.sub(r"\x1b\[[0-9;]*m", "", render_report(built, _Terminal()))


def test_long_error_message_on_a_terminal_stays_bounded(tmp_path: Path) -> None:
    message = "m" * 100_000
    spans = [
        otlp_span(TRACE, sid(0), None, "root", T0, T0 + 10 * MS),
        otlp_span(
            TRACE,
            sid(1),
            sid(0),
            "work",
            T0 + MS,
            T0 + 2 * MS,
            status={"code": 2, "message": message},
        ),
    ]
    path = tmp_path / "message.otlp.json"
    path.write_bytes(orjson.dumps(otlp_doc(spans)))
    assert len(_render_on_terminal(path, "errors")) < 50_000


# -- bytes --------------------------------------------------------------------------------------


def _otlp_line(number: int) -> bytes:
    trace = f"{number + 1:032x}"
    spans = [
        otlp_span(trace, sid(10 * number), None, "root", T0, T0 + 10 * MS),
        otlp_span(trace, sid(10 * number + 1), sid(10 * number), "work", T0 + MS, T0 + 2 * MS),
    ]
    return orjson.dumps(otlp_doc(spans))


def _jaeger_line(number: int) -> bytes:
    trace = f"{number + 1:032x}"
    return orjson.dumps(
        {
            "traceID": trace,
            "processes": {"p1": {"serviceName": "svc"}},
            "spans": [
                {
                    "traceID": trace,
                    "spanID": sid(10 * number + k),
                    "operationName": "root" if k == 0 else "work",
                    "processID": "p1",
                    "references": []
                    if k == 0
                    else [{"refType": "CHILD_OF", "spanID": sid(10 * number)}],
                    "startTime": T0 // 1000 + k * 1000,
                    "duration": 10_000 if k == 0 else 1000,
                }
                for k in range(2)
            ],
        }
    )


def _zipkin_line(number: int) -> bytes:
    trace = f"{number + 1:032x}"
    return orjson.dumps(
        [
            {
                "traceId": trace,
                "id": sid(10 * number + k),
                **({"parentId": sid(10 * number)} if k else {}),
                "name": "root" if k == 0 else "work",
                "timestamp": T0 // 1000 + k * 1000,
                "duration": 10_000 if k == 0 else 1000,
                "localEndpoint": {"serviceName": "svc"},
            }
            for k in range(2)
        ]
    )


def _log_line(number: int) -> bytes:
    return orjson.dumps(
        {
            "timestamp": "2026-03-02T09:00:00.000000Z",
            "level": "info",
            "event": "stage finished",
            "request_id": f"req-{number}",
            "stage": "work",
            "duration_ms": 1.5,
        }
    )


LINE_FORMATS = {
    "otlp-json": (_otlp_line, 2),
    "jaeger-json": (_jaeger_line, 2),
    "zipkin-json": (_zipkin_line, 2),
    "json-logs": (_log_line, 0),
}


def _line_format(name: str) -> tuple[Any, int]:
    return LINE_FORMATS[name]


@pytest.mark.parametrize("fmt", list(LINE_FORMATS))
def test_bom_and_crlf_change_nothing(tmp_path: Path, fmt: str) -> None:
    make, _ = _line_format(fmt)
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"".join(make(i) + b"\n" for i in range(3)))
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_bytes(b"\xef\xbb\xbf" + b"".join(make(i) + b"\r\n" for i in range(3)))
    a, b = summary(clean), summary(dirty)
    for facts in (a, b):
        entry = facts["inputs"][0]
        assert (entry["format"], entry["lines"], entry["records"], entry["skipped"]) == (
            fmt,
            3,
            3,
            0,
        )
    assert (a["spans"], a["log_records"]) == (b["spans"], b["log_records"])


@pytest.mark.parametrize("fmt", list(LINE_FORMATS))
@pytest.mark.parametrize("hazard", ["nul-line", "nul-inside", "invalid-utf8"])
def test_bad_bytes_skip_exactly_their_line(tmp_path: Path, fmt: str, hazard: str) -> None:
    make, spans_per_line = _line_format(fmt)
    lines = [make(i) for i in range(3)]
    if hazard == "nul-line":
        lines.insert(1, b"\x00\x00\x00")
    elif hazard == "nul-inside":
        lines[1] = lines[1].replace(b'"work"', b'"wo\x00rk"', 1)
    else:
        lines[1] = lines[1].replace(b'"work"', b'"wo\xff\xferk"', 1)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    facts = summary(path)
    entry = facts["inputs"][0]
    assert entry["lines"] == len(lines)
    assert (entry["records"], entry["skipped"]) == (len(lines) - 1, 1)
    if spans_per_line:  # the NUL line is extra; the others break one of the three lines
        assert facts["spans"] == (3 if hazard == "nul-line" else 2) * spans_per_line
    strict = fails("summary", "--strict", str(path))
    assert f"{path}:2: " in strict.stderr
    if hazard == "invalid-utf8":
        assert "UTF-8" in strict.stderr


@pytest.mark.parametrize("fmt", ["jaeger-json", "zipkin-json"])
def test_malformed_span_inside_a_good_line_keeps_the_line_accounting(
    tmp_path: Path, fmt: str
) -> None:
    make, _ = _line_format(fmt)
    lines = [make(i) for i in range(3)]
    # Line 2 keeps its good root span; its second span loses its id.
    key = b'"spanID":"' if fmt == "jaeger-json" else b'"id":"'
    at = lines[1].rindex(key)
    lines[1] = lines[1][:at] + key + b'"' + lines[1][lines[1].index(b'"', at + len(key)) + 1 :]
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    entry = summary(path)["inputs"][0]
    assert entry["lines"] == 3
    assert entry["records"] + entry["skipped"] == entry["lines"]


def test_whole_documents_with_bom_and_crlf(tmp_path: Path) -> None:
    for source in ("jaeger/wrapper.json", "zipkin/shared.json", "console/same-trace.console.txt"):
        original = FIXTURES / source
        clean = summary(original)
        text = original.read_bytes().replace(b"\r\n", b"\n")
        copy = tmp_path / original.name
        copy.write_bytes(b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n"))
        dirty = summary(copy)
        assert (dirty["spans"], dirty["log_records"]) == (clean["spans"], clean["log_records"])
        assert dirty["inputs"][0]["skipped"] == clean["inputs"][0]["skipped"] == 0


def _gzip_lines(count: int) -> bytes:
    return gzip.compress(b"".join(_otlp_line(i) + b"\n" for i in range(count)), mtime=0)


@pytest.mark.parametrize("size", ["small", "past-the-sniffer"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gzip_is_an_input_error(tmp_path: Path, size: str, damage: str) -> None:
    packed = _gzip_lines(3 if size == "small" else 400)  # 400 lines: ~250 KB unpacked
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    else:
        middle = len(packed) // 2
        packed = (
            packed[:middle]
            + bytes(b ^ 0xFF for b in packed[middle : middle + 16])
            + packed[middle + 16 :]
        )
    path = tmp_path / "dump.otlp.jsonl.gz"
    path.write_bytes(packed)
    for command in (["summary"], ["latency"], ["show", TRACE]):
        out = fails(*command, str(path))
        assert str(path) in out.stderr


def _damaged_parquet_variants(data: bytes, count: int) -> list[tuple[bytes, str]]:
    """Footer bit flips of ``data``, each with what polars itself does on it: "ok", "error", or
    "panic" (a Rust panic reaches Python as pyo3's PanicException, a BaseException)."""
    import polars as pl

    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    variants = []
    for number in range(count):
        rng = random.Random(number)
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(footer, len(data) - 8)] ^= 1 << rng.randrange(8)
        try:
            pl.read_parquet(bytes(damaged), glob=False)
            verdict = "ok"
        except pl.exceptions.PolarsError:
            verdict = "error"
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":
                raise
            verdict = "panic"
        variants.append((bytes(damaged), verdict))
    return variants


def test_damaged_parquet_is_an_input_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from ml_tracelens.readers.parquet import write_parquet
    from ml_tracelens.schema import empty_logs, spans_from_columns

    spans = spans_from_columns(
        {
            "trace_id": [TRACE] * 3,
            "span_id": [sid(0), sid(1), sid(2)],
            "name": ["a", "b", "c"],
            "kind": ["server", None, "client"],
            "start_ns": [T0, T0 + MS, T0 + 2 * MS],
            "end_ns": [T0 + 5 * MS, T0 + 2 * MS, T0 + 3 * MS],
            "status": ["ok", "error", "unset"],
        }
    )
    original = tmp_path / "good.parquet"
    write_parquet(spans, empty_logs(), original)
    variants = _damaged_parquet_variants(original.read_bytes(), 300)
    # Every variant polars panics on (two of these 300 with polars 2.1), and a sample of the rest.
    chosen = [v for v in variants if v[1] == "panic"] + variants[:20]
    for number, (data, verdict) in enumerate(chosen):
        path = tmp_path / f"damaged{number}.parquet"
        path.write_bytes(data)
        out = run_cli(["summary", "--format", "json", "--no-cache", str(path)])
        assert not out.problems, (verdict, out.problems)
        # polars reading it is not enough: damaged values may still fail the canonical schema.
        assert out.exit_code in ((0, 2) if verdict == "ok" else (2,)), (verdict, out.stderr)
        if out.exit_code == 2:
            assert str(path) in out.stderr
    capfd.readouterr()  # the Rust panic hook writes to the process's stderr itself


def test_empty_inputs(tmp_path: Path) -> None:
    for name, data in (
        ("empty.json", b""),
        ("blank.jsonl", b" \n\n\t\n"),
        ("bom.json", b"\xef\xbb\xbf"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        out = fails("summary", str(path))
        assert str(path) in out.stderr
        assert "empty" in out.stderr
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "empty.json").write_bytes(b"")
    write_otlp_lines(
        folder / "good.otlp.jsonl", [[otlp_span(TRACE, sid(0), None, "r", T0, T0 + MS)]]
    )
    facts = summary(folder)
    formats = {Path(e["path"]).name: (e["format"], e["lines"]) for e in facts["inputs"]}
    assert formats == {"empty.json": ("empty", 0), "good.otlp.jsonl": ("otlp-json", 1)}
    assert facts["spans"] == 1


def test_directory_without_telemetry(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# notes\n")
    (docs / "notes.txt").write_text("nothing here\n")
    (docs / ".hidden.json").write_text("{}")
    other = tmp_path / "other"
    other.mkdir()
    (other / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (other / "data.bin").write_bytes(b"\x00\x01\x02 not json")
    for folder in (empty, docs, other):
        out = fails("summary", str(folder))
        assert str(folder) in out.stderr


def test_unreadable_inputs(tmp_path: Path) -> None:
    good = write_otlp_lines(
        tmp_path / "good.otlp.jsonl", [[otlp_span(TRACE, sid(0), None, "r", T0, T0 + MS)]]
    )
    dangling = tmp_path / "gone.json"
    dangling.symlink_to(tmp_path / "does-not-exist.json")
    out = fails("summary", str(dangling))
    assert str(dangling) in out.stderr
    if os.geteuid() != 0:  # root reads through chmod 000
        locked = tmp_path / "locked.json"
        shutil.copy(good, locked)
        locked.chmod(0)
        try:
            out = fails("summary", str(locked))
            assert str(locked) in out.stderr
        finally:
            locked.chmod(0o600)
    # Inside a directory: said either as a warning (the rest is read) or as the error.
    folder = tmp_path / "dir"
    folder.mkdir()
    shutil.copy(good, folder / "good.otlp.jsonl")
    (folder / "gone.json").symlink_to(folder / "missing.json")
    out = run_cli(["summary", "--format", "json", str(folder)])
    assert not out.problems, out.problems
    assert out.exit_code in (0, 2)
    assert "gone.json" in out.stderr


def test_file_the_kernel_refuses_to_read() -> None:
    # A regular file that cannot be read even by root: reads at offset 0 fail with EIO.
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc")
    out = fails("summary", "/proc/self/mem")
    assert "/proc/self/mem" in out.stderr


def test_mixed_formats_in_one_directory(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    sources = {
        "bare-trace.json": FIXTURES / "jaeger" / "bare-trace.json",
        "shared.json": FIXTURES / "zipkin" / "shared.json",
        # Directory walks pass over *.txt (notes), so the console dump is saved as .out here.
        "console.out": FIXTURES / "console" / "same-trace.console.txt",
    }
    for name, source in sources.items():
        shutil.copy(source, folder / name)
    write_otlp_lines(folder / "a.otlp.jsonl", [[otlp_span(TRACE, sid(0), None, "r", T0, T0 + MS)]])
    (folder / "b.otlp.jsonl.gz").write_bytes(_gzip_lines(2))
    (folder / "README.md").write_text("# not telemetry\n")
    (folder / "empty.json").write_bytes(b"")
    expected = {
        "bare-trace.json": "jaeger-json",
        "shared.json": "zipkin-json",
        "console.out": "otel-console",
        "a.otlp.jsonl": "otlp-json",
        "b.otlp.jsonl.gz": "otlp-json",
        "empty.json": "empty",
    }
    (folder / "app.log.jsonl").write_bytes(b"".join(_log_line(i) + b"\n" for i in range(4)))
    expected["app.log.jsonl"] = "json-logs"
    facts = summary(folder)
    assert {Path(e["path"]).name: e["format"] for e in facts["inputs"]} == expected
    assert all(e["skipped"] == 0 for e in facts["inputs"])
    # Span counts per input from the files themselves.
    bare = orjson.loads(sources["bare-trace.json"].read_bytes())
    documents = json_documents(sources["console.out"].read_text())
    console = sum(1 for _, _, value in documents if "context" in value)
    per_input = {Path(e["path"]).name: e["spans"] for e in facts["inputs"]}
    assert per_input["bare-trace.json"] == len(bare["spans"])
    assert per_input["console.out"] == console
    assert per_input["a.otlp.jsonl"] == 1
    assert per_input["b.otlp.jsonl.gz"] == 4


# -- markup -------------------------------------------------------------------------------------

MARKUP = [
    "redis GET [shard-1]",
    "[bold red]alert[/bold red]",
    "[link=https://evil.example]x[/link]",
]
MESSAGE = "[red]boom[/red] :warning: [/]"


@pytest.fixture
def markup_dump(tmp_path: Path) -> Path:
    spans = [otlp_span(TRACE, sid(0), None, MARKUP[0], T0, T0 + 10 * MS)]
    spans += [
        otlp_span(
            TRACE,
            sid(i),
            sid(0),
            name,
            T0 + i * MS,
            T0 + (i + 1) * MS,
            status={"code": 2, "message": MESSAGE},
        )
        for i, name in enumerate(MARKUP[1:], start=1)
    ]
    path = tmp_path / "markup.otlp.json"
    path.write_bytes(orjson.dumps(otlp_doc(spans)))
    return path


def test_rich_markup_in_user_data_is_shown_literally(markup_dump: Path) -> None:
    path = str(markup_dump)
    for args in (["latency", path], ["bottlenecks", path], ["show", TRACE, path], ["traces", path]):
        out = ok(*args)
        assert MARKUP[0] in out.stdout, args
    latency = ok("latency", path).stdout
    assert all(name in latency for name in MARKUP)
    assert MESSAGE in ok("errors", path).stdout
    assert MESSAGE in ok("show", TRACE, path).stdout


def test_rich_markup_is_literal_on_a_terminal(markup_dump: Path) -> None:
    latency = _render_on_terminal(markup_dump, "latency")
    assert all(name in latency for name in MARKUP)
    assert MESSAGE in _render_on_terminal(markup_dump, "errors")
