"""`tracelens show ID`: id resolution, the JSON contract, log attachment, the waterfall view.

Expected numbers are worked out by hand from the hand-built dump below (offsets, self time and
critical path follow algorithms.md; its third critical-path vector is the core of trace T1) or
counted with plain ``json`` over the shared fixtures.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.exceptions import NotFound
from ml_tracelens.render import OutputFormat, emit
from ml_tracelens.reports import show as request
from ml_tracelens.schema import empty_logs, logs_from_columns
from tests.factories import (
    MS,
    T1,
    T2,
    T3,
    T4,
    A,
    B,
    C,
    D,
    make_spans,
    ms_log,
    ms_span,
    predict_request,
    write_by_service,
)

runner = CliRunner()


def demo_dump(path: Path) -> Path:
    """T1: A[0,100] gateway root; B[10,70](A); C[25,45](B); D[30,50](B) failing with "boom"."""
    spans = [
        *predict_request(),
        (
            "gateway",
            ms_span(T3, A, None, "POST /predict", 2000, 2010, attrs={"request_id": "req-dup"}),
        ),
        (
            "gateway",
            ms_span(T4, A, None, "POST /predict", 3000, 3010, attrs={"request_id": "req-dup"}),
        ),
    ]
    logs = [
        ("cache", ms_log(T1, C, 30, "cache miss")),  # by span id, though D is innermost at 30
        ("model-server", ms_log(T1, None, 47, "tokenizer failed", "ERROR")),  # by time: D
        ("gateway", ms_log(T1, None, 95, "responding")),  # by time: A
        ("gateway", ms_log(T1, None, 150, "after the request")),  # covered by no span
        ("gateway", ms_log(T2, None, 1001, "health ok")),  # another trace: not shown
    ]
    return write_by_service(path / "dump.otlp.jsonl", spans, logs)


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    return demo_dump(tmp_path)


def show(*args: str) -> Any:
    return runner.invoke(app, ["show", *args])


def show_json(*args: str) -> dict[str, Any]:
    result = show(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# --- id resolution ----------------------------------------------------------------------------


def test_full_uppercase_and_prefix_ids_name_the_same_trace(dump: Path) -> None:
    for ident, how in ((T1, "trace_id"), (T1.upper(), "trace_id"), ("4BF92F35", "prefix")):
        document = show_json(ident, str(dump))
        assert document["trace_id"] == T1
        assert document["matched_by"] == how
        assert document["span_count"] == 4


def test_ambiguous_prefix_lists_both_traces_and_exits_2(dump: Path) -> None:
    result = show("4bf92f", str(dump))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert T1 in result.stderr.replace("\n", "")
    assert T2 in result.stderr.replace("\n", "")
    assert result.stderr.count("error:") == 1
    with pytest.raises(NotFound) as caught:  # one message line (the console may wrap it)
        request.build(
            spans=make_spans([(A, None, 0, 1)], trace_id=T1).vstack(
                make_spans([(A, None, 0, 1)], trace_id=T2)
            ),
            logs=empty_logs(),
            ident="4bf92f",
        )
    assert "\n" not in str(caught.value)
    assert T1 in str(caught.value)
    assert T2 in str(caught.value)


def test_prefix_shorter_than_six_digits_is_not_a_prefix(dump: Path) -> None:
    result = show("4bf92", str(dump))
    assert result.exit_code == 2
    assert "'4bf92' is too short for a trace id prefix: prefixes need at least 6 hex digits" in (
        result.stderr
    )
    assert "too short" not in show("4bf92f", str(dump)).stderr


def test_an_id_only_log_records_carry_says_so() -> None:
    spans = make_spans([(A, None, 0, 10)], trace_id=T1)
    logs = logs_from_columns(
        {
            "time_ns": [5, 6],
            "level": ["info", "info"],
            "message": ["received", "queued"],
            "trace_id": [T2, T2],
            "correlation_id": ["corr-9", "corr-9"],
        }
    )
    with pytest.raises(NotFound) as raised:
        request.build(spans=spans, logs=logs, ident="corr-9")
    message = str(raised.value)
    assert message == (
        f"no spans for 'corr-9': it appears only in 2 log records (trace {T2}), "
        "and `show` draws spans"
    )
    assert "request id" not in message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (
            {"timestamp": "yesterday", "duration_ms": 5},
            "those records name stages but were not made spans (unreadable time): "
            "`tracelens summary` counts the lines by reason",
        ),
        (
            {"timestamp": "2026-03-02T09:00:00Z", "duration_ms": -5},
            "those records name stages but were not made spans",
        ),
        (
            {"timestamp": "2026-03-02T09:00:00Z"},
            "those records name stages but no duration: map their duration key with "
            "--field duration=KEY",
        ),
    ],
)
def test_a_request_whose_stage_lines_were_not_spans_says_why(
    line: dict[str, object], said: str, tmp_path: Path
) -> None:
    path = tmp_path / "app.log.jsonl"
    path.write_text(json.dumps({"request_id": "r-1", "stage": "infer", **line}) + "\n")
    result = show("r-1", str(path))
    assert result.exit_code == 2
    assert said in result.stderr


def test_a_request_id_attribute_of_a_span_names_its_trace(dump: Path) -> None:
    document = show_json("req-8f3a", str(dump))
    assert document["trace_id"] == T1
    assert document["matched_by"] == "correlation_id"
    assert document["correlation_ids"] == ["req-8f3a"]


def test_correlation_id_on_several_traces_lists_them(dump: Path) -> None:
    result = show("req-dup", str(dump))
    assert result.exit_code == 2
    assert T3 in result.stderr
    assert T4 in result.stderr
    assert T1 not in result.stderr


def test_an_attribute_named_by_id_attr_names_its_trace(tmp_path: Path) -> None:
    spans = [("api", ms_span(T1, A, None, "root", 0, 10, attrs={"job.key": "job-7"}))]
    path = write_by_service(tmp_path / "d.jsonl", spans)
    assert show("job-7", str(path)).exit_code == 2
    document = show_json("job-7", str(path), "--id-attr", "job.key")
    assert document["trace_id"] == T1


def test_unknown_id_exits_2_with_the_closest_ids(dump: Path) -> None:
    result = show(T1[:-1] + "7", str(dump))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1
    line = result.stderr.replace("\n", "")
    assert "closest" in line
    assert T1 in line
    result = show("req-8f3b", str(dump))
    assert result.exit_code == 2
    assert "req-8f3a" in result.stderr


def test_a_correlation_id_of_a_log_line_names_its_trace() -> None:
    spans = make_spans([(A, None, 0, 10)], trace_id=T1)
    logs = logs_from_columns(
        {
            "time_ns": [5],
            "level": ["info"],
            "message": ["received"],
            "trace_id": [T1],
            "correlation_id": ["corr-55"],
        }
    )
    report = request.build(spans=spans, logs=logs, ident="corr-55")
    assert report.payload.trace_id == T1
    assert report.payload.matched_by == "correlation_id"
    assert report.payload.correlation_ids == ["corr-55"]
    with pytest.raises(NotFound, match="corr-55"):
        request.build(spans=spans, logs=logs, ident="corr-56")


def test_show_finds_a_trace_by_the_correlation_id_of_a_log_line(tmp_path: Path) -> None:
    from ml_tracelens.readers.parquet import write_parquet

    spans = make_spans([(A, None, 0, 10)], trace_id=T1)
    logs = logs_from_columns(
        {
            "time_ns": [5],
            "level": ["warn"],
            "message": ["slow"],
            "correlation_id": [T1 + "-x"],
            "trace_id": [T1],
        }
    )
    path = tmp_path / "dump.parquet"
    write_parquet(spans, logs, path)
    document = show_json(T1 + "-x", str(path))
    assert document["trace_id"] == T1
    assert [log["message"] for log in document["logs"]] == ["slow"]


# --- the JSON contract against the hand-built trace -------------------------------------------


def test_the_json_holds_the_root_and_each_span_with_the_times_worked_out_by_hand(
    dump: Path,
) -> None:
    document = show_json(T1, str(dump))
    assert document["report"] == "show"
    assert document["root"] == {
        "span_id": A,
        "stage": "POST /predict",
        "service": "gateway",
        "start": "2023-11-14T22:13:20.000000Z",
        "duration_ms": 100.0,
        "error": True,  # the root has no status of its own and D failed
    }
    spans = document["spans"]
    assert [s["span_id"] for s in spans] == [A, B, C, D]  # tree order, siblings by start
    required = {
        "span_id",
        "parent_id",
        "stage",
        "service",
        "start_offset_ms",
        "duration_ms",
        "self_ms",
        "cp_ms",
        "error",
        "error_message",
        "attributes",
    }
    assert all(required <= set(s) for s in spans)
    # By hand: self = duration - union of children; critical path per algorithms.md vector 3.
    expected = {
        A: (None, 0.0, 100.0, 40.0, 40.0, False, None),
        B: (A, 10.0, 60.0, 35.0, 40.0, False, None),
        C: (B, 25.0, 20.0, 20.0, 0.0, False, None),
        D: (B, 30.0, 20.0, 20.0, 20.0, True, "boom"),
    }
    for s in spans:
        got = (
            s["parent_id"],
            s["start_offset_ms"],
            s["duration_ms"],
            s["self_ms"],
            s["cp_ms"],
            s["error"],
            s["error_message"],
        )
        assert got == pytest.approx(expected[s["span_id"]]), s["span_id"]
    assert spans[0]["attributes"]["request.id"] == "req-8f3a"
    assert spans[0]["attributes"]["service.name"] == "gateway"
    assert spans[3]["stage"] == "tokenize"
    assert spans[3]["service"] == "model-server"


def test_logs_attach_by_span_id_then_by_time(dump: Path) -> None:
    logs = show_json(T1, str(dump))["logs"]
    assert [(log["message"], log["span_id"], log["attached_by"]) for log in logs] == [
        ("cache miss", C, "span_id"),
        ("tokenizer failed", D, "time"),
        ("responding", A, "time"),
        ("after the request", None, None),
    ]
    assert [log["offset_ms"] for log in logs] == pytest.approx([30.0, 47.0, 95.0, 150.0])
    assert logs[1]["level"] == "error"
    assert logs[0]["time"] == "2023-11-14T22:13:20.030000Z"
    assert {"time", "level", "message", "span_id"} <= set(logs[0])


def test_waterfall_interleaves_logs_under_their_spans(dump: Path) -> None:
    result = show(T1, str(dump))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if needle in line)
        for needle in (
            "POST /predict",
            "model.inference",
            "redis GET",
            "cache miss",
            "tokenize",
            "tokenizer failed",
            "responding",
            "after the request",
        )
    ]
    assert order == sorted(order)
    tokenize = next(line for line in lines if "tokenize " in line)
    assert "✗ boom" in tokenize
    # Critical-path time is shown for D (20 ms), not for C (off the path).
    redis = next(line for line in lines if "redis GET" in line)
    assert "░" in redis
    assert "█" not in redis
    assert "█" in tokenize


# --- big-trace options ------------------------------------------------------------------------


def test_depth_limits_the_spans_shown_but_keeps_every_log_line(dump: Path) -> None:
    document = show_json(T1, str(dump), "--depth", "1")
    assert [s["span_id"] for s in document["spans"]] == [A, B]
    assert document["span_count"] == 4
    assert document["spans_shown"] == 2
    assert len(document["logs"]) == 4  # the JSON keeps every log line of the request
    text = show(T1, str(dump), "--depth", "1").stdout
    assert "2 spans below" in text
    assert "redis GET" not in text
    assert "cache miss" in text  # a hidden span's log moves up to the shown ancestor


def test_critical_only_keeps_path_spans_and_their_ancestors() -> None:
    # A[0,100] -> B[0,100] -> C[0,100]: C owns the whole path, A and B have 0 critical time but
    # stay as C's ancestors; X[10,20](B) is off the path (C ends last).
    spans = make_spans(
        [("A", None, 0, 100), ("B", "A", 0, 100), ("C", "B", 0, 100), ("X", "B", 10, 20)],
        scale=MS,
    )
    report = request.build(spans=spans, logs=empty_logs(), ident="t1", critical_only=True)
    assert [s["span_id"] for s in report.tables[0].rows] == ["A", "B", "C"]
    assert [s["cp_ms"] for s in report.tables[0].rows] == [0.0, 0.0, 100.0]


def test_critical_only_shows_the_path_spans_and_their_ancestors(dump: Path) -> None:
    document = show_json(T1, str(dump), "--critical-only")
    assert [s["span_id"] for s in document["spans"]] == [A, B, D]


def test_collapse_folds_repeated_sibling_stages() -> None:
    rows = [("R", None, 0, 100, {"name": "handler"})]
    for i, (start, end) in enumerate([(10, 20), (20, 35), (35, 40), (40, 80)]):
        rows.append((f"g{i}", "R", start, end, {"name": "redis GET"}))
    rows.append(("m", "R", 80, 95, {"name": "model"}))
    rows.append(("sub", "g3", 50, 60, {"name": "inner"}))
    spans = make_spans(rows, scale=MS)
    text = _terminal(request.build(spans=spans, logs=empty_logs(), ident="t1", collapse=True))
    group = [line for line in text.splitlines() if "redis GET" in line]
    assert len(group) == 1
    assert "redis GET ×4" in group[0]
    # total 10+15+5+40 = 70, mean 17.5, max 40
    assert "total 70.0ms, mean 17.5ms, max 40.0ms" in group[0]
    assert "inner" not in text
    assert "model" in text
    plain = _terminal(request.build(spans=spans, logs=empty_logs(), ident="t1"))
    assert sum("redis GET" in line for line in plain.splitlines()) == 4


def test_ten_thousand_deep_chain_renders_without_recursion() -> None:
    n = 10_000
    rows = [(f"s{i}", f"s{i - 1}" if i else None, i, 2 * n - i) for i in range(n)]
    report = request.build(spans=make_spans(rows), logs=empty_logs(), ident="t1")
    assert report.tables[0].rows[-1]["depth"] == n - 1
    text = _terminal(report)
    assert sum(1 for line in text.splitlines() if re.search(r" s\d+ .*\|", line)) == n
    assert "[9999] s9999" in text
    limited = request.build(spans=make_spans(rows), logs=empty_logs(), ident="t1", depth=3)
    assert "9,996 spans below" in _terminal(limited)


def test_control_characters_and_markup_are_shown_literally() -> None:
    evil = "evil\x1b[2J[bold red]x[/]\x07"
    spans = make_spans(
        [
            (
                "A",
                None,
                0,
                10,
                {
                    "name": evil,
                    "service": "svc\u202e",
                    "status": "error",
                    "status_message": "bad\rthing",
                },
            )
        ]
    )
    logs = logs_from_columns(
        {
            "time_ns": [5],
            "level": ["info"],
            "message": ["[link=x]hi[/link]\x1b]8;;"],
            "trace_id": ["t1"],
        }
    )
    text = _terminal(request.build(spans=spans, logs=logs, ident="t1", attrs=True))
    assert "evil\\x1b[2J[bold red]x[/]\\x07" in text
    assert "svc\\u202e" in text
    assert "bad\\x0dthing" in text
    assert "[link=x]hi[/link]\\x1b]8;;" in text
    assert not any(ch in text for ch in "\x1b\x07\r\u202e")


def _terminal(report: Any) -> str:
    out = io.StringIO()
    emit(report, OutputFormat.TABLE, stdout=out)
    return out.getvalue()


# --- real fixtures ----------------------------------------------------------------------------


def test_a_zipkin_trace_shows_each_shared_id_as_a_server_under_its_client(
    shared_fixtures: Path,
) -> None:
    path = shared_fixtures / "zipkin" / "smartthings-oauth-authorization.json"
    records = json.loads(path.read_text())
    (trace_id,) = {r["traceId"] for r in records}
    (root,) = [r for r in records if not r.get("parentId")]
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_id[r["id"]].append(r)
    shared = [
        rid
        for rid, rs in by_id.items()
        if len(rs) == 2 and {r.get("kind") for r in rs} == {"CLIENT", "SERVER"}
    ]
    assert shared  # SOURCES.md: 45 ids shared by a client and a server half

    document = show_json(trace_id, str(path))
    spans = document["spans"]
    assert document["span_count"] == len(records) == len(spans)
    assert document["root"]["stage"] == root["name"]
    assert document["root"]["duration_ms"] == pytest.approx(root["duration"] / 1000)
    assert document["error_spans"] == sum("error" in r.get("tags", {}) for r in records)
    index = {s["span_id"]: s for s in spans}
    position = {s["span_id"]: n for n, s in enumerate(spans)}
    for rid in shared:
        server = index[rid]
        assert server["kind"] == "server"
        client = index[server["parent_id"]]
        assert client["kind"] == "client"
        assert server["depth"] == client["depth"] + 1
        assert position[client["span_id"]] < position[rid]  # drawn under its client half
    text = show(trace_id, str(path)).stdout
    assert root["name"] in text
    assert "✗ 401" in text


def test_a_demo_trace_shows_its_spans_and_its_logs_by_span_id(shared_fixtures: Path) -> None:
    path = shared_fixtures / "otlp" / "otel-demo-capture.otlp.jsonl"
    span_ids: dict[str, set[str]] = defaultdict(set)
    records: dict[str, list[dict]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        document = json.loads(line)
        for rs in document.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    span_ids[s["traceId"].lower()].add(s["spanId"].lower())
        for rl in document.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    if r.get("traceId"):
                        records[r["traceId"].lower()].append(r)
    with_logs = [t for t in records if t in span_ids]
    trace_id = max(with_logs, key=lambda t: (len(span_ids[t]), t))

    document = show_json(trace_id, str(path))
    assert document["span_count"] == len(span_ids[trace_id])
    assert {s["span_id"] for s in document["spans"]} == span_ids[trace_id]
    expected = sorted((r["spanId"].lower(), r["body"]["stringValue"]) for r in records[trace_id])
    got = sorted((log["span_id"], log["message"]) for log in document["logs"])
    assert got == expected
    assert all(log["attached_by"] == "span_id" for log in document["logs"])
    text = show(trace_id[:8], str(path)).stdout
    message = records[trace_id][0]["body"]["stringValue"]
    assert message[:40] in text


def test_a_request_id_of_the_sample_traces_names_its_trace(tmp_path: Path) -> None:
    from tests.conftest import SAMPLE_DATA

    path = SAMPLE_DATA / "traces.otlp.jsonl"
    wanted = None
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    for a in s.get("attributes", []):
                        if a["key"] == "request.id" and wanted is None:
                            wanted = (a["value"]["stringValue"], s["traceId"].lower())
    assert wanted is not None
    request_id, trace_id = wanted
    document = show_json(request_id, str(path))
    assert document["trace_id"] == trace_id
    assert request_id in document["correlation_ids"]


def test_attrs_shows_attributes_and_events() -> None:
    events = json.dumps([{"name": "cache.miss", "time_ns": 5 * MS, "attributes": {"key": "u:1"}}])
    spans = make_spans(
        [("A", None, 0, 10, {"attributes": {"model.version": "v2"}, "events": events})], scale=MS
    )
    text = _terminal(request.build(spans=spans, logs=empty_logs(), ident="t1", attrs=True))
    assert "model.version = v2" in text
    assert "cache.miss +5.00ms" in text
    assert "u:1" in text
    assert "model.version" not in _terminal(
        request.build(spans=spans, logs=empty_logs(), ident="t1")
    )


def test_json_spans_carry_no_internal_keys(dump: Path) -> None:
    spans = show_json(T1, str(dump))["spans"]
    assert spans
    assert not [k for s in spans for k in s if k.startswith("_")]


def test_log_at_a_boundary_belongs_to_the_span_ending_there() -> None:
    spans = make_spans(
        [("R", None, 0, 20), ("S1", "R", 0, 10), ("S2", "R", 10, 20), ("X", "S2", 12, 14)]
    )
    logs = logs_from_columns(
        {
            "time_ns": [10, 13, 15, 14],
            "level": ["info"] * 4,
            "message": ["s1 done", "inside x", "s2 busy", "x done"],
            "trace_id": ["t1"] * 4,
        }
    )
    rows = request.build(spans=spans, logs=logs, ident="t1").tables[1].rows
    assert [(r["message"], r["span_id"]) for r in rows] == [
        ("s1 done", "S1"),
        ("inside x", "X"),
        ("x done", "X"),
        ("s2 busy", "S2"),
    ]


def test_the_application_log_lines_of_a_request_attach_to_its_stages() -> None:
    from tests.conftest import SAMPLE_DATA

    lines = [json.loads(x) for x in (SAMPLE_DATA / "app.log.jsonl").read_text().splitlines()]
    request_id = lines[0]["request_id"]
    mine = [x for x in lines if x.get("request_id") == request_id]
    (trace_id,) = {x["trace_id"] for x in mine}
    document = show_json(
        request_id, str(SAMPLE_DATA / "traces.otlp.jsonl"), str(SAMPLE_DATA / "app.log.jsonl")
    )
    assert document["trace_id"] == trace_id
    assert sorted(log["time"] for log in document["logs"]) == sorted(x["timestamp"] for x in mine)
    assert all(log["span_id"] is not None for log in document["logs"])
    # A "stage finished" line belongs to the span of the stage it names.
    stage_of_span = {s["span_id"]: s["stage"] for s in document["spans"]}
    stage_at = {x["timestamp"]: x.get("stage") for x in mine}
    named = [log for log in document["logs"] if stage_at[log["time"]]]
    assert named
    assert all(stage_of_span[log["span_id"]] == stage_at[log["time"]] for log in named)


def test_a_request_known_from_logs_alone_shows_its_stages_under_a_derived_root() -> None:
    from tests.conftest import SAMPLE_DATA

    path = SAMPLE_DATA / "stages.log.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    request_id = lines[0]["request_id"]
    mine = [x for x in lines if x.get("request_id") == request_id]
    staged = [x for x in mine if x.get("stage") and x.get("latency_ms") is not None]
    document = show_json(request_id, str(path))
    assert document["trace_id"] == request_id
    text = show(request_id, str(path)).stdout
    assert "None" not in text  # the lines name no service
    # every stage line becomes a span, under one derived root per request (log_spans.py)
    assert document["span_count"] == len(staged) + 1
    assert sorted(s["stage"] for s in document["spans"][1:]) == sorted(x["stage"] for x in staged)
    assert len(document["logs"]) == len(mine)


def test_log_naming_its_stage_attaches_to_that_stage() -> None:
    # P[1,8] and F[2,10] both cover t=8 at the same depth; the line says stage "P".
    spans = make_spans([("R", None, 0, 20), ("P", "R", 1, 8), ("F", "R", 2, 10)])
    logs = logs_from_columns(
        {
            "time_ns": [8, 8],
            "level": ["info", "info"],
            "message": ["P finished", "no stage"],
            "trace_id": ["t1", "t1"],
            "stage": ["P", None],
        }
    )
    rows = request.build(spans=spans, logs=logs, ident="t1").tables[1].rows
    assert [(r["message"], r["span_id"]) for r in rows] == [("P finished", "P"), ("no stage", "F")]
