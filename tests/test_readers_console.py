"""OpenTelemetry console exporter reader, and the cross-format check: one trace written by the
real SDK's exporters (console, OTLP, Zipkin) and as Jaeger JSON reads to the same table."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_tracelens.ingest import SNIFF_BYTES, load
from ml_tracelens.ingest.inputs import resolve
from ml_tracelens.readers import detect, jaeger_json, otel_console, otlp_json, zipkin_json
from ml_tracelens.readers.base import UTF8_REPLACED, ReadOptions, ReadResult

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONSOLE = FIXTURES / "console"
SAME_TRACE = {
    "otlp-json": CONSOLE / "same-trace.otlp.json",
    "otel-console": CONSOLE / "same-trace.console.txt",
    "zipkin-json": FIXTURES / "zipkin" / "same-trace.json",
    "jaeger-json": FIXTURES / "jaeger" / "same-trace.json",
}
READERS = {m.NAME: m for m in (otlp_json, otel_console, zipkin_json, jaeger_json)}
COLUMNS = [
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "duration_ns",
    "status",
    "status_message",
]
# make_same_trace.py: T0 = 2025-11-24T16:00:00Z, offsets in µs
T0 = calendar.timegm((2025, 11, 24, 16, 0, 0)) * 10**9
TRACE = "00f1e2d3c4b5a6978812345678abcdef"
A, B, C, D = "0a1b2c3d4e5f6071", "1b2c3d4e5f607182", "2c3d4e5f60718293", "3d4e5f6071829304"


def us(offset: int) -> int:
    return T0 + offset * 1000


EXPECTED = [
    (TRACE, A, None, "gateway", "POST /predict", "server", us(0), us(120000), 120_000_000, "error", None),
    (TRACE, B, A, "gateway", "feature.lookup", "client", us(5000), us(45000), 40_000_000, "unset", None),
    (TRACE, C, A, "gateway", "model.forward", "client", us(10000), us(110000), 100_000_000, "error", "model-server returned 500"),
    (TRACE, D, C, "model-server", "infer", "server", us(12000), us(108000), 96_000_000, "error", "CUDA out of memory"),
]  # fmt: skip


def read(reader: str, path: Path) -> ReadResult:
    return READERS[reader].read(resolve([str(path)]).sources[0], ReadOptions())


def test_generator_epoch() -> None:
    assert T0 == 1_764_000_000_000_000_000


@pytest.mark.parametrize("reader", list(SAME_TRACE))
def test_same_trace_same_table(reader: str) -> None:
    result = read(reader, SAME_TRACE[reader])
    assert result.stats.skipped == 0
    assert result.spans.select(COLUMNS).sort("span_id").rows() == EXPECTED


def test_same_trace_all_formats_agree() -> None:
    tables = {
        name: read(name, path).spans.drop("source", "attributes", "events", "links").sort("span_id")
        for name, path in SAME_TRACE.items()
    }
    reference = tables.pop("otlp-json")
    for name, table in tables.items():
        assert table.equals(reference), name


def test_same_trace_events_and_links_agree() -> None:
    events = {}
    links = {}
    for name, path in SAME_TRACE.items():
        spans = read(name, path).spans.sort("span_id")
        events[name] = [
            [(e["name"], e["time_ns"]) for e in json.loads(v)] if v else [] for v in spans["events"]
        ]
        links[name] = [
            [(k["trace_id"], k["span_id"]) for k in json.loads(v)] if v else []
            for v in spans["links"]
        ]
    exception = [("exception", us(100000))]
    for name, per_span in events.items():
        assert per_span == [[], [], [], exception], name
    other = [("11111111111111112222222222222222", "3333333333333333")]
    # Zipkin v2 has no links.
    for name in ("otlp-json", "otel-console", "jaeger-json"):
        assert links[name] == [[], other, [], []], name


def test_console_log_records() -> None:
    path = SAME_TRACE["otel-console"]
    result = read("otel-console", path)
    logs = result.logs
    assert logs.select(
        "time_ns", "level", "message", "trace_id", "span_id", "correlation_id", "service"
    ).rows() == [
        (us(100000), "error", "CUDA out of memory", TRACE, D, TRACE, "model-server"),
        (us(121000), "info", "request done", None, None, None, "model-server"),
    ]
    assert json.loads(logs["attributes"][0])["batch.size"] == 8
    # six objects in the file, each read as a span or a log record
    assert (result.stats.lines, result.stats.records) == (6, 6)
    starts = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line == "{"]
    assert logs["source"].to_list() == [f"{path}:{starts[0]}", f"{path}:{starts[-1]}"]


def test_console_span_attributes_and_resource() -> None:
    spans = read("otel-console", SAME_TRACE["otel-console"]).spans.sort("span_id")
    root = json.loads(spans["attributes"][0])
    assert root["service.name"] == "gateway"
    assert root["http.status_code"] == 500
    assert json.loads(spans["events"][3])[0]["attributes"]["exception.type"] == "RuntimeError"


# --- times ------------------------------------------------------------------------------------


def _epoch_ns(*parts: int) -> int:
    return calendar.timegm((*parts, 0, 0, 0)) * 10**9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-24T16:00:00.100000Z", _epoch_ns(2025, 11, 24, 16, 0, 0) + 100_000_000),
        ("2025-11-24T18:00:00.1+02:00", _epoch_ns(2025, 11, 24, 16, 0, 0) + 100_000_000),
        ("2025-11-24T15:30:00.000001-0030", _epoch_ns(2025, 11, 24, 16, 0, 0) + 1_000),
        ("2025-11-24T16:00:00", _epoch_ns(2025, 11, 24, 16, 0, 0)),  # no zone: UTC
        ("2025-11-24 16:00:00.123456789Z", _epoch_ns(2025, 11, 24, 16, 0, 0) + 123_456_789),
        ("1969-12-31T23:59:59.5Z", -500_000_000),
        ("2262-04-11T23:47:16.854775807Z", 2**63 - 1),  # the last Int64 nanosecond
    ],
)
def test_iso_to_ns(text: str, expected: int) -> None:
    assert otel_console.iso_to_ns(text, "t") == expected


@given(
    seconds=st.integers(min_value=-2_000_000_000, max_value=9_000_000_000),
    fraction=st.integers(min_value=0, max_value=999_999_999),
)
def test_iso_to_ns_round_trip(seconds: int, fraction: int) -> None:
    moment = datetime.fromtimestamp(0, UTC) + timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"
    assert otel_console.iso_to_ns(text, "t") == seconds * 10**9 + fraction


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01T00:00:00Z", "2025-11-24T16:00:00.Z"])
def test_iso_to_ns_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="t is not"):
        otel_console.iso_to_ns(text, "t")


# --- bad input --------------------------------------------------------------------------------


def test_malformed_objects_are_counted() -> None:
    path = CONSOLE / "malformed.console.txt"
    result = read("otel-console", path)
    starts = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line == "{"]
    assert result.spans.select("span_id", "name", "start_ns", "duration_ns", "source").rows() == [
        ("00000000000000aa", "good", _epoch_ns(2025, 11, 24, 16, 0, 0) + 1_000, 100_000, f"{path}:1")
    ]  # fmt: skip
    assert result.spans["trace_id"][0] == "000000000000abcd"  # zero high half: the 64-bit spelling
    assert result.logs.select("time_ns", "level", "message", "span_id").rows() == [
        (_epoch_ns(2025, 11, 24, 15, 0, 1) + 500_000_000, "warn", "a log line between spans", "00000000000000aa")
    ]  # fmt: skip
    # 9 objects: 2 read, 6 malformed, 1 cut short by the end of the file
    assert (result.stats.lines, result.stats.records, result.stats.skipped) == (9, 2, 7)
    locations = [loc for loc, _ in result.stats.problems]
    assert locations == [
        f"{path}:{line}" for line in (starts[1], starts[2], starts[4], starts[5], starts[6])
    ]
    reasons = " | ".join(reason for _, reason in result.stats.problems)
    assert "start_time is not a string: 12" in reasons
    assert "context is not an object" in reasons
    assert "not an ISO-8601 time: 'yesterday'" in reasons
    assert "context.span_id is all zeros" in reasons
    assert "neither a console span nor a console log record" in reasons


def test_empty_input(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    result = read("otel-console", path)
    assert result.spans.is_empty()
    assert result.logs.is_empty()
    assert result.stats.skipped == 0


def test_truncated_input(tmp_path: Path) -> None:
    data = SAME_TRACE["otel-console"].read_bytes()
    cut = data.index(b'"name": "model.forward"')
    path = tmp_path / "cut.txt"
    path.write_bytes(data[:cut])
    result = read("otel-console", path)
    # the ERROR log record, feature.lookup and infer were complete before the cut
    assert result.logs.height == 1
    assert sorted(result.spans["name"]) == ["feature.lookup", "infer"]
    assert result.stats.skipped == 1


def test_non_utf8_bytes(tmp_path: Path) -> None:
    data = SAME_TRACE["otel-console"].read_bytes().replace(b"request done", b"request \xe9done")
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    result = read("otel-console", path)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    assert result.stats.problems[0] == (
        f"{path}:{line}",
        "invalid UTF-8 bytes replaced (with U+FFFD): 1 byte in the input",
    )
    # The byte is replaced and counted, not a skipped document: every document is read.
    assert (result.stats.records, result.stats.skipped) == (result.stats.lines, 0)
    assert result.stats.ignored[UTF8_REPLACED] == 1
    assert result.spans.height == 4
    assert result.logs["message"][1] == "request \ufffddone"


def test_a_list_of_span_objects(tmp_path: Path) -> None:
    data = SAME_TRACE["otel-console"].read_text()
    objects = json.loads("[" + data.replace("}\n{", "},\n{") + "]")
    objects.insert(1, "not a span")
    path = tmp_path / "list.json"
    path.write_text(json.dumps(objects))
    result = read("otel-console", path)
    assert result.spans.height == 4
    assert result.stats.problems == [
        (f"{path}#1", "malformed console exporter object (neither a console span nor a console log record)")
    ]  # fmt: skip


# --- detection: each sniffer claims its own inputs only ----------------------------------------


def _inputs(shared_fixtures: Path) -> dict[Path, str | None]:
    cases: dict[Path, str | None] = {
        shared_fixtures / "otlp" / "otel-demo-capture.otlp.jsonl": "otlp-json",
        SAME_TRACE["otlp-json"]: "otlp-json",
        CONSOLE / "same-trace.console.txt": "otel-console",
        CONSOLE / "malformed.console.txt": "otel-console",
    }
    for path in sorted((FIXTURES / "jaeger").iterdir()):
        cases[path] = "jaeger-json"
    for path in sorted((FIXTURES / "zipkin").iterdir()):
        cases[path] = "zipkin-json"
    for path in sorted((shared_fixtures / "zipkin").glob("*.json")):
        cases[path] = "zipkin-json"
    return cases


def test_sniffers_do_not_overlap(shared_fixtures: Path, tmp_path: Path) -> None:
    logs = tmp_path / "app.jsonl"
    logs.write_text(
        '{"time": "2025-11-24T16:00:00Z", "level": "info", "traceId": "abc", "id": 3, "msg": "x"}\n'
        '{"ts": 1, "trace_id": "0xabc", "context": "req", "message": "y"}\n'
        '{"ts": 2, "trace_id": "0xabd", "context": {"user": "u1"}, "severity_text": "INFO"}\n'
    )
    cases = _inputs(shared_fixtures) | {logs: None}
    for path, owner in cases.items():
        head = path.read_bytes()[:SNIFF_BYTES]
        claims = {name for name, module in READERS.items() if module.sniff(head)}
        assert claims == ({owner} if owner else set()), path
        if owner:
            spec = detect(head)
            assert spec is not None, path
            assert spec.name == owner, path


@pytest.mark.parametrize("reader", ["otel-console", "jaeger-json", "zipkin-json"])
def test_through_ingest(reader: str) -> None:
    telemetry = load([str(SAME_TRACE[reader])])
    assert telemetry.inputs[0].format == reader
    assert telemetry.spans.select(COLUMNS).sort("span_id").rows() == EXPECTED
    assert telemetry.spans.schema["kind"] == pl.Enum(
        ["server", "client", "internal", "producer", "consumer"]
    )
