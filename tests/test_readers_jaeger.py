"""Jaeger JSON reader: the three layouts and JSON lines, typed tags, references, errors from
tags and logs, Zipkin-style shared ids, and malformed input. Expected values are read off the
hand-made fixtures (times are µs there, ns here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_tracelens.ingest import load
from ml_tracelens.ingest.inputs import resolve
from ml_tracelens.readers import jaeger_json
from ml_tracelens.readers.base import UTF8_REPLACED, ReadOptions, ReadResult

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "jaeger"
B = 1_700_000_000_000_000_000  # 1700000000000000 µs in ns
COLUMNS = [
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "status",
    "status_message",
]


def read(path: Path) -> ReadResult:
    return jaeger_json.read(resolve([str(path)]).sources[0], ReadOptions())


def test_query_api_wrapper() -> None:
    result = read(FIXTURES / "wrapper.json")
    t1 = "0000000000abc123"  # "abc123" padded
    t2 = "4bf92f3577b34da6a3ce929d0e0e4736"  # uppercase in the file
    root = "0000000000000001"  # spanID "1"
    assert result.spans.select(COLUMNS).rows() == [
        (t1, root, None, "gateway", "GET /recommend", "server", B, 250_000_000, "unset", None),
        # startTime/duration as int64 strings; error tag true + error log with a message
        (t1, "00000000000000a2", root, "gateway", "rank", "client", B + 10_000_000, 200_000_000, "error", "ranker timeout"),
        # CHILD_OF with the trace id spelled padded and the span id in another case
        (t1, "00000000000000b3", "00000000000000a2", "ranker", "score", "server", B + 20_000_000, 150_000_000, "error", "ValueError: bad feature"),
        # FOLLOWS_FROM only: a root with a link; error tag "false" is no error
        (t1, "00000000000000c4", None, "gateway", "audit.write", None, B + 260_000_000, 5_000_000, "unset", None),
        # legacy parentSpanID; otel.status_code OK
        (t1, "00000000000000d5", root, "gateway", "cache.get", "internal", B + 1_000_000, 2_000_000, "ok", None),
        # the first CHILD_OF is the parent even after a FOLLOWS_FROM; error tag is a message
        (t1, "00000000000000e6", root, "gateway", "notify", None, B + 240_000_000, 8_000_000, "error", "connection refused"),
        # CHILD_OF into another trace is a link, not a parent; processID not in processes
        (t1, "00000000000000f7", None, "unknown_service", "batch.item", None, B + 300_000_000, 1_000, "unset", None),
        # otel.status_description wins; duration 0 is kept
        (t2, "00f067aa0ba902b7", None, "prober", "health", None, B + 1_000_000_000, 0, "error", "probe failed"),
    ]  # fmt: skip
    assert result.spans["end_ns"].to_list()[0] == B + 250_000_000
    assert result.stats.skipped == 0
    assert result.stats.records == 1


def test_typed_tags_become_json_values() -> None:
    root = read(FIXTURES / "wrapper.json").spans.row(0, named=True)
    assert json.loads(root["attributes"]) == {
        "service.name": "gateway",
        "hostname": "gw-1",  # process tag
        "span.kind": "server",
        "http.status_code": 200,  # int64 written as a string
        "request.bytes": 9007199254740993,  # 2^53 + 1: exact, never through a float
        "sample.rate": 0.25,
        "cache.hit": True,
        "payload": "AQID",  # binary stays base64 text
        "retries": "lots",  # does not parse as int64: kept as written
    }


def test_references_and_logs() -> None:
    spans = {r["name"]: r for r in read(FIXTURES / "wrapper.json").spans.iter_rows(named=True)}
    t1 = "0000000000abc123"
    assert json.loads(spans["audit.write"]["links"]) == [
        {"trace_id": t1, "span_id": "0000000000000001", "type": "follows_from"}
    ]
    assert json.loads(spans["notify"]["links"]) == [
        {"trace_id": t1, "span_id": "00000000000000c4", "type": "follows_from"}
    ]
    assert json.loads(spans["batch.item"]["links"]) == [
        {"trace_id": "0000000000000999", "span_id": "0000000000000042", "type": "child_of"}
    ]
    assert spans["rank"]["links"] is None
    assert json.loads(spans["score"]["events"]) == [
        {"name": "features.loaded", "time_ns": B + 30_000_000, "attributes": {}},
        {"name": "log", "time_ns": B + 100_000_000, "attributes": {"error.object": "ValueError: bad feature"}},
    ]  # fmt: skip
    assert json.loads(spans["rank"]["events"]) == [
        {
            "name": "error",
            "time_ns": B + 150_000_000,
            "attributes": {"error.kind": "TimeoutError", "message": "ranker timeout"},
        }
    ]
    assert spans["GET /recommend"]["events"] is None


def test_bare_trace_object() -> None:
    result = read(FIXTURES / "bare-trace.json")
    trace = "5b8aa5a2d2c872e8321cf37308d69df2"
    assert result.spans.select(COLUMNS).rows() == [
        (trace, "051581bf3cb55c13", None, "gateway", "POST /predict", "server", 1_700_000_000_123_456_000, 120_000_000, "unset", None),
        (trace, "5fb397be34d26b51", "051581bf3cb55c13", "model-server", "model.forward", None, 1_700_000_000_133_456_000, 100_000_000, "unset", None),
    ]  # fmt: skip
    assert json.loads(result.spans["attributes"][1]) == {
        "service.name": "model-server",
        "gpu": "A100",
    }


def test_array_of_spans_with_embedded_process() -> None:
    path = FIXTURES / "spans-array.json"
    result = read(path)
    # "0000ABCDEF" and "abcdef" are one trace once padded and lowercased
    assert result.spans.select(COLUMNS).rows() == [
        ("0000000000abcdef", "0000000000000011", None, "worker", "consume", "consumer", B, 3_000_000, "unset", None),
        ("0000000000abcdef", "0000000000000022", "0000000000000011", "api", "produce", "producer", B + 500_000, 1_000_000, "unset", None),
    ]  # fmt: skip
    assert json.loads(result.spans["attributes"][0]) == {
        "service.name": "worker",
        "queue": "jobs",
        "span.kind": "consumer",
    }
    assert result.spans["source"].to_list() == [f"{path}#0", f"{path}#1"]


def test_json_lines_of_traces() -> None:
    path = FIXTURES / "traces.jsonl"
    result = read(path)
    assert result.spans.select("trace_id", "name", "service", "duration_ns", "source").rows() == [
        ("00000000000000a1", "one", "svc-a", 10_000, f"{path}#0"),
        ("00000000000000a3", "three", "svc-c", 30_000, f"{path}:3#0"),
    ]
    assert (result.stats.lines, result.stats.records, result.stats.skipped) == (3, 2, 1)
    assert result.stats.problems[0][0] == f"{path}:2"


def test_malformed_spans_and_traces_are_counted() -> None:
    path = FIXTURES / "malformed.json"
    result = read(path)
    assert result.spans["name"].to_list() == ["ok-first", "ok-last"]
    # six bad spans in trace 0 and trace 1 whose spans is not a list
    assert result.stats.skipped_items == 7  # spans inside the one document that was read
    assert result.stats.skipped == 0
    assert [loc for loc, _ in result.stats.problems] == [f"{path}#{i}" for i in range(1, 6)]
    reasons = [reason for _, reason in result.stats.problems]
    assert "duration is not a number: 'abc'" in reasons[0]
    assert "a span must be an object" in reasons[1]
    assert "tags is not a list" in reasons[2]
    assert "missing spanID" in reasons[3]
    assert "startTime is a boolean" in reasons[4]


def test_bad_trace_in_data_named_by_position(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"data": [{"spans": "x"}, 5, {"traceID": "1", "spans": []}]}')
    result = read(path)
    assert result.spans.is_empty()
    assert [loc for loc, _ in result.stats.problems] == [f"{path}#data[0]", f"{path}#data[1]"]
    assert (result.stats.records, result.stats.skipped, result.stats.skipped_items) == (1, 0, 2)


def test_zipkin_style_shared_span_ids_are_split() -> None:
    spans = read(FIXTURES / "shared-ids.json").spans
    assert spans.select("span_id", "parent_id", "service", "kind").rows() == [
        ("0000000000000001", None, "frontend", "server"),
        ("0000000000000002:client", "0000000000000001", "frontend", "client"),
        ("0000000000000002", "0000000000000002:client", "backend", "server"),
        ("0000000000000003", "0000000000000002", "backend", "client"),
    ]


@pytest.mark.parametrize(
    ("text", "skipped", "records"),
    [
        ("", 0, 0),  # empty
        ('{"data": null, "errors": null}', 0, 1),  # the API's answer to a query with no trace
        ('{"foo": 1}', 1, 0),  # JSON, not Jaeger
        ('"text"', 1, 0),
        ("[1, 2]", 2, 1),  # an array of two non-spans
        ('{"data": {"spans": []}}', 1, 0),  # data is not a list
        ('{"data": [{"traceID": "1", "spans": [{"spanID": "2", "processID": [1]}]}]}', 1, 1),
    ],
)
def test_odd_documents(tmp_path: Path, text: str, skipped: int, records: int) -> None:
    path = tmp_path / "odd.json"
    path.write_text(text)
    result = read(path)
    assert result.spans.is_empty()
    stats = result.stats
    # Whole documents that are not Jaeger are skipped lines; bad items inside one are items.
    assert (stats.skipped + stats.skipped_items, stats.records) == (skipped, records)
    assert stats.records + stats.skipped == stats.lines


def test_truncated_input(tmp_path: Path) -> None:
    data = (FIXTURES / "wrapper.json").read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(data[:1000])
    result = read(path)
    assert result.spans.is_empty()
    assert result.stats.skipped == 1


def test_non_utf8_bytes(tmp_path: Path) -> None:
    data = (FIXTURES / "bare-trace.json").read_bytes().replace(b"A100", b"A\xff100")
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    result = read(path)
    line = data[: data.index(b"\xff")].count(b"\n") + 1
    assert result.stats.problems[0] == (
        f"{path}:{line}",
        "invalid UTF-8 bytes replaced (with U+FFFD): 1 byte in the input",
    )
    # The byte is replaced and counted, not a skipped line: the one document is read.
    assert (result.stats.lines, result.stats.records, result.stats.skipped) == (1, 1, 0)
    assert result.stats.ignored[UTF8_REPLACED] == 1
    assert result.spans.height == 2  # the rest is read, the byte replaced


def test_sniff() -> None:
    for name in ("wrapper.json", "bare-trace.json", "spans-array.json", "traces.jsonl"):
        assert jaeger_json.sniff((FIXTURES / name).read_bytes())
    assert not jaeger_json.sniff(b'[{"traceId": "1", "id": "2", "localEndpoint": {}}]')
    assert not jaeger_json.sniff(b'{"resourceSpans": [{"traceID": "1", "spanID": "2"}]}')
    assert not jaeger_json.sniff(b'{"context": {"trace_id": "0x1", "span_id": "0x2"}}')
    assert not jaeger_json.sniff(b'{"level": "info", "traceID": "1", "spanID": "2", "msg": "x"}')


def test_through_ingest() -> None:
    telemetry = load([str(FIXTURES / "wrapper.json")])
    assert telemetry.inputs[0].format == "jaeger-json"
    assert telemetry.spans.height == 8
