"""Issue 14: inputs that lost data with exit 0. Each test builds its input by hand, so the
expected counts are known before tracelens reads it: what is read plus what is counted as
skipped or altered must add up to what was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ml_tracelens import ingest
from ml_tracelens.exceptions import MalformedInput
from ml_tracelens.readers.base import DEEP_VALUES_DROPPED, UTF8_REPLACED, ReadOptions
from ml_tracelens.schema import attributes_dict, with_attribute_columns
from tests._robustness import fails, ok
from tests.conftest import SAMPLE_DATA
from tests.factories import MS, T0, TRACE, console_span, otlp_document, otlp_span, sid


def _kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def _kvlist_nested(levels: int) -> dict[str, Any]:
    """An AnyValue holding ``levels`` kvlistValues one inside the other (4 JSON levels each)."""
    value: dict[str, Any] = {"stringValue": "bottom"}
    for level in range(levels):
        value = {"kvlistValue": {"values": [_kv(f"level{level}", value)]}}
    return value


def _strict_read(path: Path) -> str:
    with pytest.raises(MalformedInput) as caught:
        ingest.load([str(path)], options=ReadOptions(strict=True))
    return str(caught.value)


# -- 1. a deeply nested attribute ---------------------------------------------------------------


def _deep_attribute_dump(tmp_path: Path) -> Path:
    root_attributes = [
        _kv("request.id", {"stringValue": "req-5b8e"}),
        _kv("http.route", {"stringValue": "/predict"}),
        _kv("payload", _kvlist_nested(40)),  # 160 levels, past the default limit of 128
    ]
    root = otlp_span(TRACE, sid(0), None, "POST /predict", T0, T0 + 5 * MS)
    root["attributes"] = root_attributes
    child = otlp_span(TRACE, sid(1), sid(0), "model.forward", T0 + MS, T0 + 4 * MS)
    child["attributes"] = [_kv("http.route", {"stringValue": "/internal"})]
    path = tmp_path / "deep.otlp.jsonl"
    other = otlp_span("1" * 32, sid(2), None, "GET /health", T0, T0 + MS)
    path.write_bytes(
        orjson.dumps(otlp_document([root, child], service="gateway"))
        + b"\n"
        + orjson.dumps(otlp_document([other], service="gateway"))
        + b"\n"
    )
    return path


def test_a_too_deep_attribute_value_costs_only_itself(tmp_path: Path) -> None:
    path = _deep_attribute_dump(tmp_path)
    telemetry = ingest.load([str(path)])
    root = telemetry.spans.filter(span_id=sid(0))
    assert telemetry.spans.height == 3
    values = with_attribute_columns(root, {"id": "request.id", "route": "http.route"})
    assert values.select("id", "route").row(0) == ("req-5b8e", "/predict")
    kept = attributes_dict(root["attributes"][0], root["resource"][0])
    assert kept == {"request.id": "req-5b8e", "http.route": "/predict", "service.name": "gateway"}
    stats = telemetry.inputs[0].stats
    assert (stats.lines, stats.records, stats.skipped, stats.skipped_items) == (2, 2, 0, 0)
    assert stats.ignored == {DEEP_VALUES_DROPPED: 1}
    assert stats.problems[0][0] == f"{path}:1#span 0"
    assert "'payload'" in stats.problems[0][1]
    assert any(DEEP_VALUES_DROPPED in w and f"{path}:1#span 0" in w for w in telemetry.warnings)
    assert f"{path}:1#span 0" in _strict_read(path)


def test_show_and_group_by_find_the_attributes_beside_a_too_deep_one(tmp_path: Path) -> None:
    path = _deep_attribute_dump(tmp_path)
    shown = ok("show", "req-5b8e", "--format", "json", "--no-cache", str(path))
    assert sid(0) in shown.stdout
    grouped = orjson.loads(
        ok("latency", "--by", "attr.http.route", "--format", "json", str(path)).stdout
    )
    counts = {row["http.route"]: row["count"] for row in grouped["rows"]}
    assert counts == {"/predict": 1, "/internal": 1, None: 1}


def test_a_too_deep_resource_attribute_keeps_the_service(tmp_path: Path) -> None:
    document = otlp_document(
        [otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)], service="gateway"
    )
    document["resourceSpans"][0]["resource"]["attributes"].append(
        _kv("host.labels", _kvlist_nested(40))
    )
    path = tmp_path / "deep-resource.otlp.jsonl"
    path.write_bytes(orjson.dumps(document) + b"\n" + orjson.dumps(document) + b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.spans["service"].to_list() == ["gateway"]  # the two copies merge
    assert telemetry.inputs[0].stats.ignored == {DEEP_VALUES_DROPPED: 2}
    assert telemetry.inputs[0].stats.problems[0][0] == f"{path}:1#resource 0"


@pytest.mark.parametrize("layout", ["one document", "lines"])
def test_a_resource_attribute_of_the_wrong_type_costs_no_span(tmp_path: Path, layout: str) -> None:
    document = otlp_document([otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)], service="flagd")
    document["resourceSpans"][0]["resource"]["attributes"] += [
        _kv("service.version", {"intValue": "not a number"}),
        _kv("host.name", {"stringValue": "h1"}),
    ]
    line = orjson.dumps(document)
    path = tmp_path / "odd-resource.otlp.json"
    # One document is read the lenient way; several lines take the typed path.
    path.write_bytes(line + b"\n" if layout == "one document" else line + b"\n" + line + b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.spans["service"].to_list() == ["flagd"]
    assert (telemetry.inputs[0].stats.skipped, telemetry.inputs[0].stats.skipped_items) == (0, 0)
    kept = attributes_dict(telemetry.spans["attributes"][0], telemetry.spans["resource"][0])
    assert kept["host.name"] == "h1"
    assert orjson.loads(kept["service.version"]) == {"intValue": "not a number"}


# -- 3. one malformed span in a Collector line ------------------------------------------------

_BREAKAGES = {
    "no spanId": lambda span: span.pop("spanId"),
    "no traceId": lambda span: span.pop("traceId"),
    "boolean start": lambda span: span.update(startTimeUnixNano=True),
    "list start": lambda span: span.update(startTimeUnixNano=["1700000000000000000"]),
    "object start": lambda span: span.update(startTimeUnixNano={"ns": 1}),
}


@pytest.mark.parametrize("breakage", list(_BREAKAGES))
def test_one_malformed_span_costs_only_itself_in_a_collector_line(
    tmp_path: Path, breakage: str
) -> None:
    lines = []
    for line in range(3):
        spans = [
            otlp_span(f"{line + 1:032x}", sid(i), None, "op", T0 + i, T0 + i + MS)
            for i in range(350)
        ]
        _BREAKAGES[breakage](spans[17])
        lines.append(orjson.dumps(otlp_document(spans)))
    path = tmp_path / "collector.otlp.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    telemetry = ingest.load([str(path)])
    stats = telemetry.inputs[0].stats
    assert telemetry.spans.height == 3 * 349
    assert (stats.lines, stats.records, stats.skipped, stats.skipped_items) == (3, 3, 0, 3)
    assert [location for location, _ in stats.problems] == [
        f"{path}:{line}#span 17" for line in (1, 2, 3)
    ]
    assert sid(17) not in telemetry.spans["span_id"].to_list()
    assert f"{path}:1#span 17" in _strict_read(path)


def test_a_boolean_time_in_a_small_line_costs_only_its_span(tmp_path: Path) -> None:
    good = otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)
    bad = otlp_span(TRACE, sid(1), sid(0), "child", T0, T0 + MS)
    bad["endTimeUnixNano"] = False
    path = tmp_path / "small.otlp.jsonl"
    path.write_bytes(orjson.dumps(otlp_document([good, bad])) + b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.spans["span_id"].to_list() == [sid(0)]
    assert telemetry.inputs[0].stats.problems == [
        (
            f"{path}:1#span 1",
            "malformed OTLP span (endTimeUnixNano is not a time in nanoseconds: False)",
        )
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kind", [2], "kind is not a number or a name: list"),
        ("status", "broken", "status is not an object but str"),
        ("events", {"name": "x"}, "events is not a list but dict"),
        ("links", [7], "a link is not an object but int"),
    ],
)
def test_a_wrong_typed_span_field_is_named_in_the_skip_reason(
    tmp_path: Path, field: str, value: Any, reason: str
) -> None:
    bad = otlp_span(TRACE, sid(1), sid(0), "child", T0, T0 + MS)
    bad[field] = value
    path = tmp_path / "typed.otlp.jsonl"
    root = otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)
    path.write_bytes(orjson.dumps(otlp_document([root, bad])) + b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.spans["span_id"].to_list() == [sid(0)]
    assert telemetry.inputs[0].stats.problems == [
        (f"{path}:1#span 1", f"malformed OTLP span ({reason})")
    ]


def test_bad_bytes_beside_a_malformed_span_cost_the_line_once(tmp_path: Path) -> None:
    good = otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)
    malformed = otlp_span(TRACE, sid(1), sid(0), "child", T0, T0 + MS)
    malformed["startTimeUnixNano"] = True
    latin1 = otlp_span(TRACE, sid(2), sid(0), "other", T0, T0 + MS)
    latin1["attributes"] = [_kv("user", {"stringValue": "@@"})]
    line = orjson.dumps(otlp_document([good, malformed, latin1])).replace(b"@@", b"Jos\xe9")
    path = tmp_path / "latin1.otlp.jsonl"
    path.write_bytes(orjson.dumps(otlp_document([good])) + b"\n" + line + b"\n")
    telemetry = ingest.load([str(path)])
    stats = telemetry.inputs[0].stats
    # The second line is skipped whole, and its malformed span is not counted a second time.
    assert (stats.lines, stats.records, stats.skipped, stats.skipped_items) == (2, 1, 1, 0)
    assert telemetry.inputs[0].spans == 1
    assert stats.problems == [(f"{path}:2", "invalid UTF-8")]


def test_a_malformed_span_in_a_whole_document_costs_only_itself(tmp_path: Path) -> None:
    spans = [otlp_span(TRACE, sid(i), None, "op", T0, T0 + MS) for i in range(4)]
    del spans[2]["traceId"]
    path = tmp_path / "pretty.otlp.json"
    path.write_bytes(orjson.dumps(otlp_document(spans), option=orjson.OPT_INDENT_2))
    stats = ingest.load([str(path)]).inputs[0].stats
    assert (stats.records, stats.skipped, stats.skipped_items) == (1, 0, 1)
    assert stats.problems == [(f"{path}:1#span 2", "malformed OTLP span (missing traceId)")]


def test_a_span_read_apart_keeps_its_position_on_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = []
    for line in range(6):
        spans = [otlp_span(f"{line + 1:032x}", sid(i), None, "op", T0, T0 + MS) for i in range(5)]
        if line == 4:
            spans[3]["startTimeUnixNano"] = True
        lines.append(orjson.dumps(otlp_document(spans)))
    path = tmp_path / "parallel.otlp.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setenv("TRACELENS_PARALLEL_MIN_MB", "0")
    monkeypatch.setenv("TRACELENS_WORKERS", "2")
    telemetry = ingest.load([str(path)])
    assert telemetry.spans.height == 29
    assert telemetry.inputs[0].stats.problems[0][0] == f"{path}:5#span 3"


# -- 2. times beyond what Int64 nanoseconds hold --------------------------------------------------


def _log_line(time: str, request: str) -> bytes:
    fields = {"timestamp": time, "level": "info", "message": "done", "request_id": request}
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    "time",
    [
        "0001-01-01T00:00:00Z",
        "1500-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2262-04-12T00:00:00Z",
    ],
)
def test_a_log_time_beyond_int64_is_unreadable_not_wrapped(tmp_path: Path, time: str) -> None:
    path = tmp_path / "app.log.jsonl"
    path.write_bytes(
        _log_line("2026-11-26T08:00:00Z", "r1") + b"\n" + _log_line(time, "r2") + b"\n"
    )
    logs = ingest.load([str(path)]).logs.sort("correlation_id")
    # 2026-11-26T08:00:00Z: 20,783 days after 1970-01-01, plus 8 hours.
    assert logs["time_ns"].to_list() == [(20_783 * 86_400 + 8 * 3600) * 10**9, None]
    assert logs["unread_reason"].to_list() == [None, "unreadable time"]


def test_the_last_nanosecond_int64_holds_is_still_a_time(tmp_path: Path) -> None:
    path = tmp_path / "edge.log.jsonl"
    path.write_bytes(_log_line("2262-04-11T23:47:16.854775807Z", "r1") + b"\n")
    assert ingest.load([str(path)]).logs["time_ns"].to_list() == [2**63 - 1]


def test_one_hostile_log_time_does_not_move_the_end_of_the_dump(tmp_path: Path) -> None:
    lines = [_log_line(f"2026-11-26T08:{minute:02d}:00Z", f"r{minute}") for minute in range(20)]
    lines.append(_log_line("1500-01-01T00:00:00Z", "hostile"))
    path = tmp_path / "app.log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    logs = ingest.load([str(path)]).logs
    assert logs["time_ns"].max() == (20_783 * 86_400 + 8 * 3600 + 19 * 60) * 10**9


def test_a_console_time_beyond_int64_skips_its_object(tmp_path: Path) -> None:
    end = "2023-11-14T22:13:20.000001Z"
    objects = [
        console_span(0, "2023-11-14T22:13:20.000000Z", end),
        console_span(1, "1500-01-01T00:00:00.000000Z", end),
    ]
    path = tmp_path / "times.console.txt"
    path.write_text(
        "\n".join(orjson.dumps(o, option=orjson.OPT_INDENT_2).decode() for o in objects)
    )
    telemetry = ingest.load([str(path)])
    assert telemetry.spans["start_ns"].to_list() == [T0]
    stats = telemetry.inputs[0].stats
    assert (stats.lines, stats.records, stats.skipped) == (2, 1, 1)
    assert "start_time is out of the range" in stats.problems[0][1]


@pytest.mark.parametrize("bound", ["0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "200000d"])
def test_since_and_until_beyond_int64_are_usage_errors(tmp_path: Path, bound: str) -> None:
    path = tmp_path / "one.otlp.jsonl"
    path.write_bytes(
        orjson.dumps(otlp_document([otlp_span(TRACE, sid(0), None, "r", T0, T0 + MS)]))
    )
    for option in ("--since", "--until"):
        failed = fails("latency", option, bound, "--no-cache", str(path))
        assert "outside the times telemetry can hold" in failed.stderr


# -- 4. invalid UTF-8 in a whole-document input ---------------------------------------------------


def test_one_invalid_byte_in_a_jaeger_download_is_replaced_and_counted(tmp_path: Path) -> None:
    data = (SAMPLE_DATA / "traces.jaeger.json").read_bytes()
    expected_spans = sum(len(trace["spans"]) for trace in orjson.loads(data)["data"])
    at = data.index(b'"operationName":"') + len(b'"operationName":"')
    path = tmp_path / "download.json"
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    telemetry = ingest.load([str(path)])
    stats = telemetry.inputs[0].stats
    assert telemetry.inputs[0].spans == expected_spans
    assert (stats.lines, stats.records, stats.skipped, stats.skipped_items) == (1, 1, 0, 0)
    assert stats.ignored[UTF8_REPLACED] == 2
    assert telemetry.spans["name"].str.starts_with("\ufffd\ufffd").sum() == 1
    assert any(UTF8_REPLACED in w for w in telemetry.warnings)
    message = _strict_read(path)
    assert f"{path}:1: {UTF8_REPLACED}: 2 bytes" in message


def test_an_intact_document_passes_strict(tmp_path: Path) -> None:
    path = tmp_path / "download.json"
    path.write_bytes((SAMPLE_DATA / "traces.jaeger.json").read_bytes())
    stats = ingest.load([str(path)], options=ReadOptions(strict=True)).inputs[0].stats
    assert (stats.problems, stats.ignored) == ([], {})


def test_a_malformed_jaeger_trace_counts_each_of_its_spans(tmp_path: Path) -> None:
    def trace(number: int, processes: Any) -> dict[str, Any]:
        spans = [
            {
                "traceID": f"{number + 1:032x}",
                "spanID": sid(i),
                "operationName": "op",
                "startTime": 1_700_000_000_000_000,
                "duration": 10,
                "processID": "p1",
            }
            for i in range(4)
        ]
        return {"traceID": f"{number + 1:032x}", "spans": spans, "processes": processes}

    good = {"p1": {"serviceName": "svc"}}
    path = tmp_path / "traces.json"
    path.write_bytes(orjson.dumps({"data": [trace(0, good), trace(1, ["not", "an object"])]}))
    telemetry = ingest.load([str(path)])
    stats = telemetry.inputs[0].stats
    assert (telemetry.spans.height, stats.skipped_items) == (4, 4)
    assert stats.problems[0][0] == f"{path}#data[1]"
