from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import ingest
from ml_tracelens.cli import app
from ml_tracelens.exceptions import MalformedInput
from ml_tracelens.readers.base import ReadOptions
from ml_tracelens.readers.support import otlp_chunks
from ml_tracelens.schema import attributes_dict, with_attribute_columns
from tests.factories import otlp_document, otlp_span

DEMO = "otlp/otel-demo-capture.otlp.jsonl"


def _independent_counts(path: Path) -> dict[str, object]:
    """Count the demo capture with plain json, knowing nothing of tracelens."""
    spans, logs, metrics, errors, services, traces = 0, 0, 0, 0, set(), set()
    first_span = None
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            for ss in rs.get("scopeSpans", []):
                for span in ss["spans"]:
                    spans += 1
                    services.add(attrs["service.name"]["stringValue"])
                    traces.add(span["traceId"].lower())
                    errors += span.get("status", {}).get("code") == 2
                    first_span = first_span or span
        for rl in doc.get("resourceLogs", []):
            for sl in rl["scopeLogs"]:
                logs += len(sl["logRecords"])
        metrics += "resourceMetrics" in doc
    return {
        "spans": spans,
        "logs": logs,
        "metrics": metrics,
        "errors": errors,
        "services": services,
        "traces": len(traces),
        "first": first_span,
    }


def test_demo_capture_counts_match_an_independent_pass(shared_fixtures: Path) -> None:
    path = shared_fixtures / DEMO
    expected = _independent_counts(path)
    telemetry = ingest.load([str(path)])
    spans = telemetry.spans
    assert spans.height == expected["spans"] == 547  # SOURCES.md: about 547 spans
    assert telemetry.logs.height == expected["logs"]
    assert spans.get_column("trace_id").n_unique() == expected["traces"] == 141
    assert set(spans.get_column("service").unique()) == expected["services"]
    assert len(expected["services"]) == 8
    # An exception event without a status would also count; here every error has code 2.
    assert spans.filter(pl.col("status") == "error").height >= expected["errors"] == 107
    (summary,) = telemetry.inputs
    assert summary.format == "otlp-json"
    assert summary.stats.ignored["metrics documents"] == expected["metrics"] == 40
    assert summary.stats.skipped == 0
    assert summary.stats.lines == 97 == summary.stats.records


def test_the_first_span_of_the_demo_capture_reads_exactly(shared_fixtures: Path) -> None:
    path = shared_fixtures / DEMO
    first = _independent_counts(path)["first"]
    spans = ingest.load([str(path)]).spans
    row = spans.filter(pl.col("span_id") == first["spanId"].lower()).row(0, named=True)
    assert row["trace_id"] == first["traceId"].lower()
    assert row["name"] == first["name"]
    assert row["start_ns"] == int(first["startTimeUnixNano"])
    assert row["end_ns"] == int(first["endTimeUnixNano"])
    assert row["duration_ns"] == int(first["endTimeUnixNano"]) - int(first["startTimeUnixNano"])
    assert row["parent_id"] == (first.get("parentSpanId") or None)


def predict_span(**overrides: Any) -> dict[str, Any]:
    """The gateway's root span: upper-case ids, times above 2**53, its end a JSON number."""
    name = overrides.pop("name", "POST /predict")
    fields: dict[str, Any] = {"endTimeUnixNano": 1700000000120000003, "status": {}, **overrides}
    return otlp_span(
        "5B8EFFF798038103D269B633813FC60C",
        "EEE19B7EC3C1B174",
        None,
        name,
        1700000000000000001,
        1700000000120000003,
        **fields,
    )


def test_ids_times_kind_and_status_are_normalised(tmp_path: Path) -> None:
    error_span = predict_span(
        spanId="0000000000000002",
        parentSpanId="EEE19B7EC3C1B174",
        name="model.inference",
        kind="SPAN_KIND_INTERNAL",
        status={"code": "STATUS_CODE_ERROR"},
        events=[
            {
                "name": "exception",
                "timeUnixNano": "1700000000050000000",
                "attributes": [{"key": "exception.message", "value": {"stringValue": "CUDA OOM"}}],
            }
        ],
        attributes=[
            {"key": "model.version", "value": {"stringValue": "v2"}},
            {"key": "batch", "value": {"intValue": "8"}},
        ],
    )
    path = tmp_path / "one.json"
    path.write_text(
        json.dumps(otlp_document([predict_span(), error_span], service="gateway"), indent=2)
    )
    spans = ingest.load([str(path)]).spans.sort("start_ns")
    root, child = spans.rows(named=True)
    assert root["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert root["parent_id"] is None
    assert root["kind"] == "server"
    assert root["start_ns"] == 1700000000000000001  # above 2**53: exact, never via float
    assert root["duration_ns"] == 120000002
    assert root["status"] == "unset"
    assert child["parent_id"] == "eee19b7ec3c1b174"
    assert child["status"] == "error"
    assert child["status_message"] == "CUDA OOM"
    assert json.loads(child["attributes"]) == {
        "service.name": "gateway",
        "model.version": "v2",
        "batch": 8,
    }


def test_older_instrumentation_library_spans_read_gzipped_too(tmp_path: Path) -> None:
    path = tmp_path / "old.json.gz"
    document = otlp_document(
        [predict_span()], service="gateway", scope_key="instrumentationLibrarySpans"
    )
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    assert ingest.load([str(path)]).spans.height == 1


def test_base64_ids_of_the_protobuf_json_mapping_read_as_hex(tmp_path: Path) -> None:
    import base64

    trace_bytes = bytes(range(16))
    span_bytes = bytes(range(8))
    span = predict_span(
        traceId=base64.b64encode(trace_bytes).decode(),
        spanId=base64.b64encode(span_bytes).decode(),
    )
    path = tmp_path / "b64.json"
    path.write_text(json.dumps(otlp_document([span], service="gateway")))
    row = ingest.load([str(path)]).spans.row(0, named=True)
    assert row["trace_id"] == trace_bytes.hex()
    assert row["span_id"] == span_bytes.hex()


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [', "truncated"),
        ('{"resourceSpans": [{"scopeSpans": {"spans": []}}]}', "scopeSpans is not a list"),
        ('{"resourceSpans": "nope"}', "malformed OTLP"),
        ("[1, 2]", "not an OTLP object"),
        ('{"something": 1}', "no resourceSpans"),
    ],
)
def test_bad_lines_are_counted_with_their_location(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    good = json.dumps(otlp_document([predict_span()], service="gateway"))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, bad_line, good.replace("EEE19B7EC3C1B174", "AB" * 8)]) + "\n")
    telemetry = ingest.load([str(path)])
    (summary,) = telemetry.inputs
    assert telemetry.spans.height == 2
    assert summary.stats.skipped == 1
    assert summary.stats.records + summary.stats.skipped == summary.stats.lines == 3
    location, why = summary.stats.problems[0]
    assert location == f"{path}:2"
    assert reason in why
    assert any("pass --strict" in w for w in telemetry.warnings)
    with pytest.raises(MalformedInput, match=f"{path}:2"):
        ingest.load([str(path)], options=ReadOptions(strict=True))


def test_invalid_utf8_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    good = json.dumps(otlp_document([predict_span()], service="gateway")).encode()
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(good + b"\n" + b'{"resourceSpans": "\xff\xfe"}\n' + good + b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.inputs[0].stats.skipped == 1
    # The same span twice is one span (identical duplicates merge) and is counted as merged.
    assert telemetry.spans.height == 1
    assert telemetry.merged_duplicates == 1


def test_integer_and_string_codes_mixed_in_one_batch_read_alike(tmp_path: Path) -> None:
    # The SDK's MessageToJson writes "status": {} (code 0) beside {"code": "STATUS_CODE_OK"}.
    path = tmp_path / "mixed.jsonl"
    spans = [
        predict_span(status={}, kind=2),
        predict_span(
            spanId="00000000000000aa", status={"code": "STATUS_CODE_OK"}, kind="SPAN_KIND_CLIENT"
        ),
    ]
    path.write_text(
        json.dumps(otlp_document(spans, service="gateway"))
        + "\n"
        + json.dumps(otlp_document([predict_span(spanId="bb" * 8)], service="gateway"))
        + "\n"
    )
    frame = ingest.load([str(path)]).spans.sort("span_id")
    assert frame.get_column("status").to_list() == ["ok", "unset", "unset"]
    assert frame.get_column("kind").to_list() == ["client", "server", "server"]


def test_reading_in_small_chunks_changes_nothing(
    shared_fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo capture, with a line of invalid UTF-8 in attribute bytes near the end (the typed
    # decoder passes it; the chunk it lands in must drop that line whole).
    lines = (shared_fixtures / DEMO).read_bytes().splitlines()
    bad = json.dumps(
        otlp_document([predict_span(attributes={"k": "@@"})], service="gateway")
    ).encode()
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b"\n".join([*lines[:-3], bad.replace(b"@@", b"\xff\xfe"), *lines[-3:]]))
    whole = ingest.load([str(path)])
    monkeypatch.setattr(otlp_chunks, "FLUSH_SPANS", 5)
    chunked = ingest.load([str(path)])
    assert chunked.spans.equals(whole.spans)
    assert chunked.inputs == whole.inputs
    assert whole.inputs[0].stats.skipped == 1
    assert whole.inputs[0].stats.problems[0][0] == f"{path}:{len(lines) - 2}"


def test_resource_attributes_are_kept_once_per_resource(shared_fixtures: Path) -> None:
    path = shared_fixtures / DEMO
    expected: dict[tuple[str, str], dict[str, object]] = {}
    resources = set()
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            resource = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            resources.add(json.dumps(rs["resource"]["attributes"], sort_keys=True))
            for ss in rs.get("scopeSpans", []):
                for span in ss["spans"]:
                    own = {a["key"]: a["value"] for a in span.get("attributes", [])}
                    expected[(span["traceId"].lower(), span["spanId"].lower())] = resource | own
    spans = ingest.load([str(path)]).spans
    assert spans.schema["resource"] == pl.Categorical()
    assert spans.get_column("resource").n_unique() == len(resources)
    for row in spans.iter_rows(named=True):
        got = attributes_dict(row["attributes"], row["resource"])
        want = expected[(row["trace_id"], row["span_id"])]
        assert set(got) == set(want)
        for key, value in want.items():
            if "stringValue" in value:
                assert got[key] == value["stringValue"]


def test_span_attributes_win_over_resource_ones(tmp_path: Path) -> None:
    def span(n: int, **extra: Any) -> dict[str, Any]:
        return predict_span(spanId=f"{n:016x}", traceId=f"{n:032x}", **extra)

    on_host_a = otlp_document([span(1)], service="gateway", resource={"host.name": "a"})
    on_host_b = otlp_document(
        [span(2), span(3), span(4, attributes={"host.name": "override"})],
        service="gateway",
        resource={"host.name": "b"},
    )
    document = {"resourceSpans": on_host_a["resourceSpans"] + on_host_b["resourceSpans"]}
    path = tmp_path / "hosts.jsonl"
    path.write_text(json.dumps(document) + "\n")
    frame = with_attribute_columns(ingest.load([str(path)]).spans, {"host": "host.name"})
    hosts = dict(zip(frame.get_column("span_id"), frame.get_column("host"), strict=True))
    assert hosts == {f"{n:016x}": h for n, h in ((1, "a"), (2, "b"), (3, "b"), (4, "override"))}
    runner = CliRunner()
    result = runner.invoke(app, ["latency", str(path), "--by", "attr.host.name", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    counts = {row["host.name"]: row["count"] for row in json.loads(result.stdout)["rows"]}
    assert counts == {"a": 1, "b": 2, "override": 1}
    where = ["--where", "attr.host.name = 'b'", "-f", "json"]
    result = runner.invoke(app, ["latency", str(path), *where])
    assert json.loads(result.stdout)["rows"][0]["count"] == 2
    result = runner.invoke(app, ["show", f"{4:032x}", str(path), "--attrs", "-f", "json"])
    shown = json.loads(result.stdout)["spans"][0]["attributes"]
    assert shown == {"service.name": "gateway", "host.name": "override"}


def test_a_request_id_held_by_the_resource_still_names_its_trace(tmp_path: Path) -> None:
    # Odd but legal: a one-request process (a batch job) with its request id on the resource.
    document = otlp_document(
        [predict_span(traceId="a" * 32, spanId=f"{7:016x}")],
        service="batch",
        resource={"request.id": "req-from-resource"},
    )
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps(document) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["show", "req-from-resource", str(path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["trace_id"], shown["matched_by"]) == ("a" * 32, "correlation_id")
    listing = json.loads(runner.invoke(app, ["traces", str(path), "-f", "json"]).stdout)
    assert listing["rows"][0]["correlation_id"] == "req-from-resource"
