"""Many small inputs are read together (one frame for all, not one per file) and give exactly
what reading them one by one gives: the same rows in the same order, and each input listed with
its own format and counts (issue 14, item 14): OTLP files of one document or of several
lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ml_tracelens import ingest, schema
from ml_tracelens.errors import MalformedInput
from ml_tracelens.readers.base import DEEP_VALUES_DROPPED


def _span(index: int, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": f"{index:032x}",
        "spanId": f"{index + 1:016x}",
        "parentSpanId": "",
        "name": f"op{index % 3}",
        "kind": 2,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + index * 1000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + index * 1000 + 500),
        **fields,
    }


def _document(*spans: dict[str, Any], service: str = "svc") -> dict[str, Any]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}


def _log_document(message: str) -> dict[str, Any]:
    record = {
        "timeUnixNano": "1700000000000000000",
        "severityText": "ERROR",
        "body": {"stringValue": message},
        "traceId": "0" * 31 + "7",
    }
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


def _directory(root: Path) -> Path:
    """Small inputs of every shape the OTLP reader meets, in a known name order."""
    root.mkdir()
    for index in range(40):
        # one document per file, on one line: the common case of an exporter writing a file
        # per batch
        (root / f"a{index:03d}.json").write_text(json.dumps(_document(_span(index))))
    # a pretty-printed document, ids in base64 (the protobuf JSON mapping)
    base64_span = _span(100, traceId="AAAAAAAAAAAAAAAAAAAAZA==", spanId="AAAAAAAAAGU=")
    (root / "b-pretty.json").write_text(json.dumps(_document(base64_span), indent=2))
    # line-based: the typed path, with a truncated line
    lines = [json.dumps(_document(_span(200 + i), service="lines")) for i in range(3)]
    (root / "c-lines.jsonl").write_text("\n".join([*lines, '{"resourceSpans": [']) + "\n")
    # a malformed span beside a good one: skipped on its own
    (root / "d-bad-span.json").write_text(
        json.dumps(_document(_span(300), _span(301, startTimeUnixNano=True)))
    )
    (root / "e-logs.json").write_text(json.dumps(_log_document("boom")))
    (root / "f-empty.json").write_text("")
    (root / "g-notes.json").write_text(json.dumps({"hello": "world"}))
    (root / "h-last.json").write_text(json.dumps(_document(_span(400), _span(401))))
    return root


def _unbatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "BATCH_INPUT_BYTES", -1)


def test_reading_together_equals_reading_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _directory(tmp_path / "dumps")
    together = ingest.load([str(directory)])
    _unbatched(monkeypatch)
    one_by_one = ingest.load([str(directory)])
    assert together.spans.equals(one_by_one.spans)
    assert together.logs.equals(one_by_one.logs)
    assert together.inputs == one_by_one.inputs
    assert together.warnings == one_by_one.warnings


def test_each_input_keeps_its_own_accounting(tmp_path: Path) -> None:
    directory = _directory(tmp_path / "dumps")
    loaded = ingest.load([str(directory)])
    by_name = {Path(summary.path).name: summary for summary in loaded.inputs}
    assert len(by_name) == 40 + 7
    assert all(by_name[f"a{i:03d}.json"].spans == 1 for i in range(40))
    lines = by_name["c-lines.jsonl"]
    assert (lines.spans, lines.stats.lines, lines.stats.records, lines.stats.skipped) == (
        3,
        4,
        3,
        1,
    )
    bad = by_name["d-bad-span.json"]
    assert (bad.spans, bad.stats.skipped_items) == (1, 1)
    assert (by_name["e-logs.json"].spans, by_name["e-logs.json"].logs) == (0, 1)
    assert by_name["f-empty.json"].format == "empty"
    assert by_name["g-notes.json"].format == "unknown"
    assert by_name["h-last.json"].spans == 2
    # each span's source names its own file, in the order of the files
    sources = loaded.spans.get_column("source").cast(pl.String).to_list()
    assert sources[:40] == [f"{directory}/a{i:03d}.json:1" for i in range(40)]
    assert sources[40] == f"{directory}/b-pretty.json:1"
    assert sources[-2:] == [f"{directory}/h-last.json:1"] * 2
    assert loaded.spans.height == sum(summary.spans for summary in loaded.inputs) == 47
    base64 = loaded.spans.filter(pl.col("source").cast(pl.String).str.contains("b-pretty"))
    # the 16 and 8 bytes of the ids, as hex
    assert base64.select("trace_id", "span_id").row(0) == ("0" * 30 + "64", "0" * 14 + "65")
    assert loaded.logs.get_column("source").to_list() == [f"{directory}/e-logs.json:1"]


def test_small_inputs_build_one_frame_not_one_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "dumps"
    directory.mkdir()
    for index in range(30):
        (directory / f"s{index:02d}.json").write_text(json.dumps(_document(_span(index))))
    frames_built = []
    build = schema.spans_from_columns

    def counting(columns: Any) -> pl.DataFrame:
        frames_built.append(len(columns["span_id"]))
        return build(columns)

    monkeypatch.setattr(schema, "spans_from_columns", counting)
    from ml_tracelens.readers import otlp_json

    monkeypatch.setattr(otlp_json, "spans_from_columns", counting)
    loaded = ingest.load([str(directory)])
    assert loaded.spans.height == 30
    assert frames_built == [30]


def test_strict_names_the_first_malformed_input_read_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _directory(tmp_path / "dumps")
    with pytest.raises(MalformedInput) as together:
        ingest.load([str(directory)], options=ingest.ReadOptions(strict=True))
    _unbatched(monkeypatch)
    with pytest.raises(MalformedInput) as one_by_one:
        ingest.load([str(directory)], options=ingest.ReadOptions(strict=True))
    assert str(together.value) == str(one_by_one.value)
    assert str(together.value).startswith(f"{directory}/c-lines.jsonl:4: ")


# --- line-based OTLP files: their typed spans are mapped together too ------------------------


def _lines_directory(root: Path) -> Path:
    """Small OTLP files of several lines each (the typed path), with a line of invalid UTF-8,
    an attribute nested too deep, a malformed span and a truncated line among them."""
    root.mkdir()
    for index in range(30):
        lines = [json.dumps(_document(_span(1000 + 10 * index + i))) for i in range(2)]
        (root / f"l{index:03d}.jsonl").write_text("\n".join(lines) + "\n")
    deep = _span(500, attributes=[{"key": "deep", "value": {"x": "@DEEP@"}}])
    deep_line = json.dumps(_document(deep)).replace('"@DEEP@"', "[" * 200 + "]" * 200)
    bad_utf8 = json.dumps(_document(_span(501, attributes=[{"key": "s", "value": "@"}])))
    bad_utf8_line = bad_utf8.encode().replace(b'"@"', b'{"stringValue": "\xff"}')
    (root / "m-mixed.jsonl").write_bytes(
        b"\n".join(
            [
                json.dumps(_document(_span(502))).encode(),
                bad_utf8_line,
                deep_line.encode(),
                json.dumps(_document(_span(503), _span(504, spanId=7))).encode(),
                b'{"resourceSpans": [',
            ]
        )
        + b"\n"
    )
    for index in range(5):
        lines = [json.dumps(_document(_span(2000 + 10 * index + i))) for i in range(3)]
        (root / f"n{index:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_line_based_inputs_read_together_equal_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _lines_directory(tmp_path / "dumps")
    together = ingest.load([str(directory)])
    mixed = next(s for s in together.inputs if s.path.endswith("m-mixed.jsonl"))
    assert (mixed.stats.lines, mixed.stats.skipped, mixed.stats.skipped_items) == (5, 2, 1)
    assert mixed.stats.ignored == {DEEP_VALUES_DROPPED: 1}
    _unbatched(monkeypatch)
    one_by_one = ingest.load([str(directory)])
    assert together.spans.equals(one_by_one.spans)
    assert together.inputs == one_by_one.inputs
    assert together.warnings == one_by_one.warnings


def test_line_based_inputs_are_mapped_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _lines_directory(tmp_path / "dumps")
    from ml_tracelens.readers import otlp_json

    calls = []
    canonical = otlp_json.canonical_from_batch

    def counting(batch: Any, source_name: Any) -> Any:
        calls.append(len(batch))
        return canonical(batch, source_name)

    monkeypatch.setattr(otlp_json, "canonical_from_batch", counting)
    loaded = ingest.load([str(directory)])
    assert len(calls) == 1
    assert loaded.spans.height == 30 * 2 + 2 + 1 + 15
