"""Many small inputs are read together (one frame for all, not one per file) and give exactly
what reading them one by one gives: the same rows in the same order, and each input listed with
its own format and counts (issue 14, item 14): OTLP files of one document or of several lines,
and JSON-lines logs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from ml_tracelens import ingest, schema
from ml_tracelens.cli import app
from ml_tracelens.durations import NS_PER_MS as MS
from ml_tracelens.durations import NS_PER_US as US
from ml_tracelens.exceptions import InputError, MalformedInput
from ml_tracelens.ingest import sources
from ml_tracelens.readers import json_logs
from ml_tracelens.readers.base import DEEP_VALUES_DROPPED
from ml_tracelens.readers.support import log_fields
from ml_tracelens.readers.support.log_problems import BOM, COLLISIONS
from tests.factories import T0, otlp_document, otlp_log, otlp_span


def _span(index: int, **fields: Any) -> dict[str, Any]:
    start = T0 + index * 1000
    trace, span = f"{index:032x}", f"{index + 1:016x}"
    return otlp_span(trace, span, None, f"op{index % 3}", start, start + 500, **fields)


def _log_document(message: str) -> dict[str, Any]:
    record = otlp_log("0" * 31 + "7", None, T0, message, "ERROR")
    return otlp_document(None, service=None, logs=[record])


def _directory(root: Path) -> Path:
    """Small inputs of every shape the OTLP reader meets, in a known name order."""
    root.mkdir()
    for index in range(40):
        # one document per file, on one line: the common case of an exporter writing a file
        # per batch
        (root / f"a{index:03d}.json").write_text(json.dumps(otlp_document([_span(index)])))
    # a pretty-printed document, ids in base64 (the protobuf JSON mapping)
    base64_span = _span(100, traceId="AAAAAAAAAAAAAAAAAAAAZA==", spanId="AAAAAAAAAGU=")
    (root / "b-pretty.json").write_text(json.dumps(otlp_document([base64_span]), indent=2))
    # line-based: the typed path, with a truncated line
    lines = [json.dumps(otlp_document([_span(200 + i)], service="lines")) for i in range(3)]
    (root / "c-lines.jsonl").write_text("\n".join([*lines, '{"resourceSpans": [']) + "\n")
    # a malformed span beside a good one: skipped on its own
    (root / "d-bad-span.json").write_text(
        json.dumps(otlp_document([_span(300), _span(301, startTimeUnixNano=True)]))
    )
    (root / "e-logs.json").write_text(json.dumps(_log_document("boom")))
    (root / "f-empty.json").write_text("")
    (root / "g-notes.json").write_text(json.dumps({"hello": "world"}))
    (root / "h-last.json").write_text(json.dumps(otlp_document([_span(400), _span(401)])))
    return root


def _unbatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "BATCH_INPUT_BYTES", -1)


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
        (directory / f"s{index:02d}.json").write_text(json.dumps(otlp_document([_span(index)])))
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
        lines = [json.dumps(otlp_document([_span(1000 + 10 * index + i)])) for i in range(2)]
        (root / f"l{index:03d}.jsonl").write_text("\n".join(lines) + "\n")
    deep = _span(500, attributes=[{"key": "deep", "value": {"x": "@DEEP@"}}])
    deep_line = json.dumps(otlp_document([deep])).replace('"@DEEP@"', "[" * 200 + "]" * 200)
    bad_utf8 = json.dumps(otlp_document([_span(501, attributes=[{"key": "s", "value": "@"}])]))
    bad_utf8_line = bad_utf8.encode().replace(b'"@"', b'{"stringValue": "\xff"}')
    (root / "m-mixed.jsonl").write_bytes(
        b"\n".join(
            [
                json.dumps(otlp_document([_span(502)])).encode(),
                bad_utf8_line,
                deep_line.encode(),
                json.dumps(otlp_document([_span(503), _span(504, spanId=7)])).encode(),
                b'{"resourceSpans": [',
            ]
        )
        + b"\n"
    )
    for index in range(5):
        lines = [json.dumps(otlp_document([_span(2000 + 10 * index + i)])) for i in range(3)]
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
    from ml_tracelens.readers.support import otlp_chunks

    calls = []
    canonical = otlp_chunks.canonical_from_batch

    def counting(batch: Any, source_name: Any) -> Any:
        calls.append(len(batch))
        return canonical(batch, source_name)

    monkeypatch.setattr(otlp_chunks, "canonical_from_batch", counting)
    loaded = ingest.load([str(directory)])
    assert len(calls) == 1
    assert loaded.spans.height == 30 * 2 + 2 + 1 + 15


# --- JSON-lines logs ---------------------------------------------------------------------------

LOG_T0_MS = 1_764_147_136_000


def _record(index: int, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": f"2026-11-26T08:52:{index % 60:02d}.{index % 1000:03d}Z",
        "level": "info",
        "request_id": f"r-{index}",
        **fields,
    }


def _log_lines(*records: Any) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records
    )


def _log_directory(root: Path) -> Path:
    """Small JSON-lines logs of the shapes a lone read accounts for, in a known name order."""
    root.mkdir()
    for index in range(40):
        (root / f"a{index:03d}.jsonl").write_bytes(
            _log_lines(
                _record(index, stage="infer", duration_ms=12.5 + index),
                _record(index, event="done", user=f"u{index % 3}"),
            )
        )
    (root / "b-bad.jsonl").write_bytes(
        _log_lines(
            b'{"event": "cut',
            _record(1, message="ok"),
            b"",
            b"   ",
            b"42",
            b"[" * 200 + b"]" * 200,
            *(_record(2 + i, message="after") for i in range(5)),
            b'{"truncated": ',
        )
    )
    (root / "c-unread.jsonl").write_bytes(
        _log_lines(
            _record(3, timestamp="2026-02-30T00:00:00Z", stage="a", duration_ms=1),
            _record(4, stage="b", duration_ms="fast"),
            _record(5, stage="c", duration_ms=-4),
            _record(6, timestamp="yesterday", stage="d", duration_ms="slow"),
        )
    )
    (root / "d-bom-crlf.jsonl").write_bytes(
        BOM + _log_lines(_record(7, message="bom"), _record(8)).replace(b"\n", b"\r\n")
    )
    (root / "e-collide.jsonl").write_bytes(
        _log_lines({"a.b": 1, "a": {"b": 2}, "log.level": "warn", "log": {"level": "x"}})
    )
    (root / "f-no-telemetry.jsonl").write_bytes(_log_lines({"foo": 1}, {"bar": {"baz": 2}}))
    (root / "g-wide.jsonl").write_bytes(
        _log_lines(_record(9, **{f"own{k}": k for k in range(1_200)}), _record(10, step="x"))
    )
    (root / "h-errors.jsonl").write_bytes(
        _log_lines(
            _record(11, stage="s", duration_ms=3, error={"type": "ValueError", "message": "boom"}),
            _record(12, stage="t", duration_ms=4, status_code=503),
            _record(13, stage="u", duration_ms=5, exception="Traceback...\nKeyError: 'x'"),
            _record(14, stage="v", duration_ms=6, error=False, extra={"error": "no"}),
        )
    )
    (root / "i-otlp.json").write_text(json.dumps(otlp_document([_span(7)])))
    (root / "j-empty.jsonl").write_text("")
    (root / "k-step.jsonl").write_bytes(
        _log_lines(_record(15, step="embed", took=250), _record(16, step="infer", took=900))
    )
    for index in range(5):
        (root / f"z{index}.jsonl").write_bytes(_log_lines(_record(100 + index, msg="tail")))
    return root


def _same(together: Any, one_by_one: Any) -> None:
    assert_frame_equal(together.spans, one_by_one.spans)
    assert_frame_equal(together.logs, one_by_one.logs)
    assert together.inputs == one_by_one.inputs
    assert together.warnings == one_by_one.warnings
    assert together.derived_spans == one_by_one.derived_spans


@pytest.mark.parametrize(
    "field_map", [{}, {"stage": "step", "duration": "took:us"}, {"trace_id": "request_id"}]
)
@pytest.mark.parametrize("lone_above", [None, 300])
def test_logs_read_together_equal_one_by_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field_map: dict[str, str],
    lone_above: int | None,
) -> None:
    directory = _log_directory(tmp_path / "logs")
    if lone_above is not None:
        # Inputs with more text than this are read on their own, in their place in the batch.
        monkeypatch.setattr(json_logs, "BATCH_INPUT_BYTES", lone_above)
    options = ingest.ReadOptions(field_map=field_map)
    together = ingest.load([str(directory)], options=options)
    _unbatched(monkeypatch)
    one_by_one = ingest.load([str(directory)], options=options)
    _same(together, one_by_one)


def test_each_log_input_keeps_its_own_accounting(tmp_path: Path) -> None:
    directory = _log_directory(tmp_path / "logs")
    loaded = ingest.load([str(directory)], options=ingest.ReadOptions(field_map={"stage": "step"}))
    by_name = {Path(summary.path).name: summary for summary in loaded.inputs}
    bad = by_name["b-bad.jsonl"].stats
    assert (bad.lines, bad.records, bad.skipped, bad.ignored) == (12, 8, 4, {"blank lines": 2})
    assert [where for where, _ in bad.problems] == [
        f"{directory}/b-bad.jsonl:{n}" for n in (1, 5, 6, 12)
    ]
    unread = by_name["c-unread.jsonl"].stats.ignored
    assert unread == {
        "unreadable time values (kept in attributes)": 2,
        "unreadable duration values (kept in attributes)": 3,
    }
    assert by_name["e-collide.jsonl"].stats.ignored == {COLLISIONS: 2}
    assert by_name["f-no-telemetry.jsonl"].format == "unknown"
    assert by_name["f-no-telemetry.jsonl"].logs == 0
    assert any(
        "keys seen: bar.baz, foo" in w for w in by_name["f-no-telemetry.jsonl"].stats.warnings
    )
    assert by_name["j-empty.jsonl"].format == "empty"
    assert by_name["i-otlp.json"].spans == 1
    # --field stage=step: warned about by each input whose lines lack the key
    warned = [s for s in by_name.values() if s.stats.warnings and s.format == "json-logs"]
    assert "k-step.jsonl" not in {Path(s.path).name for s in warned}
    assert "g-wide.jsonl" not in {Path(s.path).name for s in warned}
    assert len(warned) == 40 + 5 + 5  # a*, b to e, h, z*
    sources = loaded.logs.get_column("source").to_list()
    assert sources[:2] == [f"{directory}/a000.jsonl:1", f"{directory}/a000.jsonl:2"]
    assert f"{directory}/b-bad.jsonl:7" in sources
    assert loaded.logs.height == sum(s.logs for s in loaded.inputs)


def test_strict_and_explicit_inputs_fail_as_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _log_directory(tmp_path / "logs")
    cases = [
        ([str(directory)], ingest.ReadOptions(strict=True)),
        (
            [str(directory / "a000.jsonl"), str(directory / "f-no-telemetry.jsonl")],
            ingest.ReadOptions(),
        ),
    ]
    errors = []
    for paths, options in cases:
        with pytest.raises(InputError) as together:
            ingest.load(paths, options=options)
        errors.append(str(together.value))
    _unbatched(monkeypatch)
    for (paths, options), error in zip(cases, errors, strict=True):
        with pytest.raises(InputError) as one_by_one:
            ingest.load(paths, options=options)
        assert str(one_by_one.value) == error
    assert errors[0].startswith(f"{directory}/b-bad.jsonl:1: ")
    assert "no telemetry recognised in" in errors[1]


def test_small_log_inputs_are_mapped_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    for index in range(50):
        (directory / f"s{index:02d}.jsonl").write_bytes(
            _log_lines(_record(index, stage="x", duration_ms=1), _record(index, msg="m"))
        )
    calls: list[int] = []
    map_logs = log_fields.map_logs

    def counting(raw: pl.DataFrame, **kwargs: Any) -> Any:
        calls.append(raw.height)
        return map_logs(raw, **kwargs)

    monkeypatch.setattr(log_fields, "map_logs", counting)
    loaded = ingest.load([str(directory)])
    assert calls == [100]
    assert loaded.logs.height == 100
    assert loaded.derived_spans == 50


_KEY = st.sampled_from(
    ["timestamp", "level", "msg", "request_id", "stage", "duration_ms", "error", "a", "a.b", "ö"]
)
_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**18)
    | st.sampled_from(["2026-11-26T08:52:16Z", "2026-02-30T00:00:00Z", "12ms", "x", "", "ERROR"]),
    lambda inner: st.dictionaries(_KEY, inner, max_size=2) | st.lists(inner, max_size=2),
    max_leaves=4,
)
_LINE = st.dictionaries(_KEY, _VALUE, max_size=5).map(lambda d: json.dumps(d).encode()) | (
    st.sampled_from([b"", b" ", b"42", b'{"cut": ', b"\xff{}", b"[" * 150 + b"]" * 150])
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_LINE, min_size=1, max_size=5), min_size=1, max_size=6))
def test_any_small_log_inputs_read_together_equal_one_by_one(files: list[list[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        for index, lines in enumerate(files):
            (directory / f"f{index}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        try:
            together = ingest.load([str(directory)])
        except InputError as exc:
            together_error = str(exc)
        else:
            together_error = None
        budget = sources.BATCH_INPUT_BYTES
        sources.BATCH_INPUT_BYTES = -1
        try:
            one_by_one = ingest.load([str(directory)])
        except InputError as exc:
            alone_error: str | None = str(exc)
        else:
            alone_error = None
        finally:
            sources.BATCH_INPUT_BYTES = budget
        assert together_error == alone_error
        if together_error is None:
            _same(together, one_by_one)


def test_the_cli_reads_a_directory_of_small_logs_as_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _log_directory(tmp_path / "logs")
    runner = CliRunner()
    commands = [
        ["summary", str(directory), "--format", "json", "--no-cache"],
        ["latency", str(directory), "--format", "json", "--no-cache"],
        ["show", "r-11", str(directory), "--no-cache"],
    ]
    together = [runner.invoke(app, args) for args in commands]
    _unbatched(monkeypatch)
    one_by_one = [runner.invoke(app, args) for args in commands]
    for args, batched, alone in zip(commands, together, one_by_one, strict=True):
        assert batched.exit_code == alone.exit_code == 0, (args, batched.stderr)
        assert batched.stdout == alone.stdout
        assert batched.stderr == alone.stderr
    summary = json.loads(together[0].stdout)
    assert summary["log_records"] == sum(i["logs"] for i in summary["inputs"])
    assert "ValueError: boom" in together[2].stdout


def test_resolutions_of_a_batch_are_each_inputs_own() -> None:
    from ml_tracelens.ingest.log_spans import timestamp_resolution_ns

    times = [
        LOG_T0_MS * 10**6,
        LOG_T0_MS * 10**6 + 10**6,
        None,
        LOG_T0_MS * 10**6 + 1_000,
        5,
        None,
        None,
        -(10**6),
    ]
    counts = [2, 2, 1, 1, 0, 2]
    logs = pl.DataFrame({"time_ns": times}, schema={"time_ns": pl.Int64})
    expected, start = [], 0
    for count in counts:
        expected.append(timestamp_resolution_ns(logs.get_column("time_ns").slice(start, count)))
        start += count
    assert ingest.timestamp_resolutions(logs, counts) == expected == [MS, US, 0, 1 * 0, 0, MS]
