"""The shipped sample data: reproducible, self-consistent, and read correctly by tracelens.

Expected numbers come from ``sample_data/truth.json`` (the generator's own record of what it
drew) and from plain-``json`` passes over the files written here, never from tracelens' output.
The first group of tests needs no reader; the second reads every file with ``ingest.load``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ml_tracelens import ingest
from ml_tracelens.schema import attribute
from tests.conftest import SAMPLE_DATA

DATA_FILES = (
    "traces.otlp.jsonl",
    "traces.jaeger.json",
    "traces.zipkin.json",
    "app.log.jsonl",
    "stages.log.jsonl",
    "truth.json",
)
CLIENT_HALF = "POST /v1/models/intent-classifier:predict"
SPAN_KEY = ("trace_id", "span_id", "service", "name", "start_ns", "end_ns", "status")


@cache
def truth() -> dict[str, Any]:
    return json.loads((SAMPLE_DATA / "truth.json").read_text())


@cache
def loaded(*names: str) -> ingest.Telemetry:
    return ingest.load([str(SAMPLE_DATA / name) for name in names])


# ---------------------------------------------------------------- plain-json views of the files


def plain_otlp() -> list[dict[str, Any]]:
    spans = []
    for line in (SAMPLE_DATA / "traces.otlp.jsonl").read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            service = attrs["service.name"]["stringValue"]
            for scope in rs["scopeSpans"]:
                for s in scope["spans"]:
                    spans.append(
                        {
                            "trace_id": s["traceId"],
                            "span_id": s["spanId"],
                            "parent_id": s["parentSpanId"] or None,
                            "service": service,
                            "name": s["name"],
                            "start_us": int(s["startTimeUnixNano"]) // 1000,
                            "end_us": int(s["endTimeUnixNano"]) // 1000,
                            "exact_us": int(s["startTimeUnixNano"]) % 1000 == 0,
                            "message": s["status"].get("message"),
                            "attrs": {a["key"]: a["value"] for a in s["attributes"]},
                        }
                    )
    return spans


def plain_jaeger() -> list[dict[str, Any]]:
    spans = []
    for trace in json.loads((SAMPLE_DATA / "traces.jaeger.json").read_text())["data"]:
        for s in trace["spans"]:
            tags = {t["key"]: t["value"] for t in s["tags"]}
            refs = [r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"]
            spans.append(
                {
                    "trace_id": s["traceID"],
                    "span_id": s["spanID"],
                    "parent_id": refs[0] if refs else None,
                    "service": trace["processes"][s["processID"]]["serviceName"],
                    "name": s["operationName"],
                    "start_us": s["startTime"],
                    "end_us": s["startTime"] + s["duration"],
                    "message": tags.get("otel.status_description") if tags.get("error") else None,
                }
            )
    return spans


def plain_zipkin() -> list[dict[str, Any]]:
    return json.loads((SAMPLE_DATA / "traces.zipkin.json").read_text())


def span_tuples(spans: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    keys = ("trace_id", "span_id", "parent_id", "service", "name", "start_us", "end_us", "message")
    return {tuple(s[k] for k in keys) for s in spans}


def zipkin_as_plain(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": s["traceId"],
            "span_id": s["id"],
            "parent_id": s.get("parentId"),
            "service": s["localEndpoint"]["serviceName"],
            "name": s["name"],
            "start_us": s["timestamp"],
            "end_us": s["timestamp"] + s["duration"],
            "message": s["tags"].get("error"),
        }
        for s in spans
    ]


def utc_us(text: str, fmt: str) -> int:
    moment = datetime.strptime(text, fmt).replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---------------------------------------------------------------- the files themselves


def test_generator_reproduces_the_shipped_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLE_DATA / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in DATA_FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DATA / name).read_bytes(), name


def test_generator_options_change_the_workload(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--requests", "20", "--log-requests", "5", "--seed", "7"]
    subprocess.run([sys.executable, str(SAMPLE_DATA / "generate.py"), *args], check=True)
    small = json.loads((tmp_path / "truth.json").read_text())
    assert small["requests"] == 20
    assert small["stages_log"]["requests"] == 5
    assert small["seed"] == 7
    assert (tmp_path / "traces.zipkin.json").read_bytes() != (
        SAMPLE_DATA / "traces.zipkin.json"
    ).read_bytes()


def test_sample_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE_DATA.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024


def test_truth_matches_the_otlp_file_counted_by_hand() -> None:
    spans = plain_otlp()
    t = truth()
    assert all(s["exact_us"] for s in spans)  # the µs grid every format relies on
    assert len(spans) == t["spans"]
    durations: dict[str, list[int]] = defaultdict(list)
    errors: Counter[str] = Counter()
    for s in spans:
        durations[s["name"]].append(s["end_us"] - s["start_us"])
        errors[s["name"]] += s["message"] is not None
    assert set(durations) == set(t["stages"])
    for name, stage in t["stages"].items():
        assert sorted(durations[name]) == sorted(stage["durations_us"]), name
        assert errors[name] == stage["errors"], name
    roots = [s for s in spans if s["parent_id"] is None]
    assert len(roots) == t["requests"] == 350
    assert sum(r["message"] is not None for r in roots) == t["request_errors"]
    assert len({r["attrs"]["request.id"]["stringValue"] for r in roots}) == t["requests"]
    # a few percent fail, and some error spans (profile lookups) do not fail their request
    assert 0.01 < t["request_errors"] / t["requests"] < 0.06
    assert t["requests_with_error_spans"] > t["request_errors"]


def test_truth_percentiles_agree_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    for stages in (truth()["stages"], truth()["stages_log"]["stages"]):
        for name, stage in stages.items():
            values = np.array(stage["durations_us"]) / 1000
            assert stage["p50_ms"] == pytest.approx(np.percentile(values, 50), abs=1e-9), name
            assert stage["p95_ms"] == pytest.approx(np.percentile(values, 95), abs=1e-9), name


def test_the_otlp_samples_model_versions_and_confidences_are_the_truth() -> None:
    inference = [s for s in plain_otlp() if s["name"] == "model.inference"]
    versions = Counter(s["attrs"]["model.version"]["stringValue"] for s in inference)
    expected = truth()["model_versions"]
    assert versions == {v: item["count"] for v, item in expected.items()}
    assert 0.6 < versions["v1"] / len(inference) < 0.8
    for version, item in expected.items():
        confidences = [
            s["attrs"]["confidence"]["doubleValue"]
            for s in inference
            if s["attrs"]["model.version"]["stringValue"] == version and "confidence" in s["attrs"]
        ]
        assert sum(confidences) / len(confidences) == pytest.approx(item["confidence_mean"])
        assert sum(item["predictions"].values()) == len(confidences)
    # the later model-behaviour report relies on v2 being less confident
    assert expected["v2"]["confidence_mean"] < expected["v1"]["confidence_mean"] - 0.1


def test_trace_formats_state_the_same_spans() -> None:
    otlp = span_tuples(plain_otlp())
    assert span_tuples(plain_jaeger()) == otlp
    zipkin = plain_zipkin()
    clients = [s for s in zipkin if s["name"] == CLIENT_HALF]
    assert span_tuples(zipkin_as_plain([s for s in zipkin if s["name"] != CLIENT_HALF])) == otlp
    servers = {s["id"]: s for s in zipkin if s.get("shared")}
    assert len(clients) == len(servers) == truth()["zipkin"]["client_halves"]
    for client in clients:
        server = servers[client["id"]]
        assert server["name"] == "model.inference"
        assert client["kind"] == "CLIENT"
        assert server["kind"] == "SERVER"
        assert client["parentId"] == server["parentId"]
        assert client["timestamp"] < server["timestamp"]
        assert server["timestamp"] + server["duration"] < client["timestamp"] + client["duration"]
    assert len(zipkin) == truth()["zipkin"]["spans"]


def test_app_log_agrees_with_the_traces() -> None:
    spans = {(s["trace_id"], s["name"]): s for s in plain_otlp()}
    lines = [json.loads(line) for line in (SAMPLE_DATA / "app.log.jsonl").read_text().splitlines()]
    t = truth()["app_log"]
    assert len(lines) == t["lines"]
    assert Counter(line["level"] for line in lines) == t["levels"]
    stage_lines = [line for line in lines if "stage" in line]
    assert len(stage_lines) == t["stage_lines"]
    for line in stage_lines:
        span = spans[line["trace_id"], line["stage"]]
        assert round(line["duration_ms"] * 1000) == span["end_us"] - span["start_us"]
        assert utc_us(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") == span["end_us"]
        assert (line["level"] == "error") == (
            span["message"] is not None and line["stage"] != "profile_lookup"
        )
        if "error" in line:
            assert line["error"] == span["message"]
    times = [line["timestamp"] for line in lines]
    assert times == sorted(times)


def test_the_stages_log_holds_the_lines_durations_and_errors_of_the_truth() -> None:
    lines = [
        json.loads(line) for line in (SAMPLE_DATA / "stages.log.jsonl").read_text().splitlines()
    ]
    t = truth()["stages_log"]
    assert len(lines) == t["lines"]
    assert len({line["request_id"] for line in lines}) == t["requests"] == 200
    assert (
        len({line["request_id"] for line in lines if line["levelname"] == "ERROR"})
        == t["request_errors"]
    )
    for name, stage in t["stages"].items():
        mine = [line for line in lines if line["stage"] == name]
        assert sorted(round(line["latency_ms"] * 1000) for line in mine) == sorted(
            stage["durations_us"]
        )
        assert sum(line["levelname"] == "ERROR" for line in mine) == stage["errors"]


# ---------------------------------------------------------------- read by tracelens


def stage_table(spans: pl.DataFrame) -> dict[str, tuple[int, int, list[int]]]:
    rows = (
        spans.group_by("name")
        .agg(
            count=pl.len(),
            errors=(pl.col("status") == "error").sum(),
            durations=pl.col("duration_ns").sort(),
        )
        .iter_rows(named=True)
    )
    return {r["name"]: (r["count"], r["errors"], r["durations"]) for r in rows}


def expected_stage_table(stages: dict[str, Any]) -> dict[str, tuple[int, int, list[int]]]:
    return {
        name: (s["count"], s["errors"], sorted(d * 1000 for d in s["durations_us"]))
        for name, s in stages.items()
    }


@pytest.mark.parametrize("name", ["traces.otlp.jsonl", "traces.jaeger.json"])
def test_trace_dump_reads_to_the_truth(name: str) -> None:
    telemetry = loaded(name)
    spans = telemetry.spans
    t = truth()
    assert spans.height == t["spans"]
    assert telemetry.derived_spans == 0
    assert stage_table(spans) == expected_stage_table(t["stages"])
    services = dict(spans.select("name", "service").unique().iter_rows())
    assert services == {name: s["service"] for name, s in t["stages"].items()}
    roots = spans.filter(pl.col("parent_id").is_null())
    assert roots.height == t["requests"]
    assert roots.filter(pl.col("status") == "error").height == t["request_errors"]
    messages = set(spans.get_column("status_message").drop_nulls())
    assert messages == set(t["error_messages"])
    (summary,) = telemetry.inputs
    assert summary.stats.skipped == 0


def test_the_otlp_samples_logs_are_its_error_events_and_its_metrics_are_ignored() -> None:
    telemetry = loaded("traces.otlp.jsonl")
    t = truth()["otlp"]
    assert telemetry.logs.height == t["log_records"]
    (summary,) = telemetry.inputs
    assert summary.stats.lines == t["lines"]
    assert summary.stats.ignored == {"metrics documents": t["metrics_lines"]}
    error_spans = telemetry.spans.filter(pl.col("events").is_not_null()).select(
        "trace_id", "span_id", "status_message"
    )
    logs = telemetry.logs.select("trace_id", "span_id", status_message="message")
    assert logs.sort("span_id").equals(error_spans.sort("span_id"))


def test_zipkin_sample_reads_to_the_truth() -> None:
    spans = loaded("traces.zipkin.json").spans
    t = truth()
    assert spans.height == t["zipkin"]["spans"]
    clients = spans.filter(pl.col("name") == CLIENT_HALF)
    others = spans.filter(pl.col("name") != CLIENT_HALF)
    assert stage_table(others) == expected_stage_table(t["stages"])
    assert clients.height == t["zipkin"]["client_halves"]
    assert clients.filter(pl.col("status") == "error").height == t["zipkin"]["client_half_errors"]
    assert set(clients.get_column("service")) == {"gateway"}
    assert set(clients.get_column("kind")) == {"client"}
    # algorithms.md: the shared server half is the child of its client half, which hangs
    # under the root as the client did.
    servers = others.filter(pl.col("name") == "model.inference")
    joined = servers.join(
        clients,
        left_on=["trace_id", "parent_id"],
        right_on=["trace_id", "span_id"],
        suffix="_client",
    )
    assert joined.height == servers.height
    roots = spans.filter(pl.col("parent_id").is_null()).select("trace_id", root="span_id")
    assert (
        joined.join(roots, on="trace_id")
        .filter(pl.col("parent_id_client") != pl.col("root"))
        .is_empty()
    )


def comparable(spans: pl.DataFrame) -> pl.DataFrame:
    return spans.select(*SPAN_KEY, "parent_id", "status_message").sort("trace_id", "span_id")


def test_trace_formats_read_to_the_same_table() -> None:
    otlp = loaded("traces.otlp.jsonl").spans
    jaeger = loaded("traces.jaeger.json").spans
    zipkin = loaded("traces.zipkin.json").spans
    assert comparable(jaeger).equals(comparable(otlp))
    assert jaeger.sort("span_id").get_column("kind").equals(otlp.sort("span_id").get_column("kind"))
    # Zipkin: the same spans but for the extra client halves; the server halves hang under them.
    zipkin = zipkin.filter(pl.col("name") != CLIENT_HALF)
    key = [*SPAN_KEY, "status_message"]
    assert (
        zipkin.select(key)
        .sort("trace_id", "span_id")
        .equals(otlp.select(key).sort("trace_id", "span_id"))
    )
    same_parent = zipkin.filter(pl.col("name") != "model.inference").select("span_id", "parent_id")
    expected = otlp.filter(pl.col("name") != "model.inference").select("span_id", "parent_id")
    assert same_parent.sort("span_id").equals(expected.sort("span_id"))
    # Zipkin has no "internal" kind; every other kind agrees.
    kinds = otlp.filter(pl.col("kind") != "internal").select("span_id", "kind").sort("span_id")
    assert (
        zipkin.join(kinds, on="span_id", suffix="_otlp")
        .filter(pl.col("kind") != pl.col("kind_otlp"))
        .is_empty()
    )


@pytest.mark.parametrize("name", ["traces.otlp.jsonl", "traces.jaeger.json", "traces.zipkin.json"])
def test_loaded_percentiles_match_the_generator(name: str) -> None:
    spans = loaded(name).spans
    stats = (
        spans.group_by("name")
        .agg(
            p50=pl.col("duration_ns").quantile(0.5, "linear") / 1e6,
            p95=pl.col("duration_ns").quantile(0.95, "linear") / 1e6,
        )
        .iter_rows(named=True)
    )
    got = {r["name"]: (r["p50"], r["p95"]) for r in stats if r["name"] != CLIENT_HALF}
    assert set(got) == set(truth()["stages"])
    for stage, item in truth()["stages"].items():
        assert got[stage] == pytest.approx((item["p50_ms"], item["p95_ms"])), stage


@pytest.mark.parametrize("name", ["traces.otlp.jsonl", "traces.jaeger.json", "traces.zipkin.json"])
def test_every_trace_format_reads_the_model_versions_and_request_ids_of_the_truth(
    name: str,
) -> None:
    spans = loaded(name).spans.filter(pl.col("name") == "model.inference")
    versions = Counter(spans.select(attribute("model.version")).to_series())
    assert versions == {v: item["count"] for v, item in truth()["model_versions"].items()}
    requests = (
        loaded(name).spans.filter(pl.col("parent_id").is_null()).select(attribute("request.id"))
    )
    assert requests.to_series().n_unique() == truth()["requests"]


def test_app_log_reads_to_the_truth() -> None:
    telemetry = loaded("app.log.jsonl")
    logs = telemetry.logs
    t = truth()["app_log"]
    assert logs.height == t["lines"]
    levels = Counter(logs.get_column("level").replace({"warning": "warn"}))
    assert levels == {("warn" if k == "warning" else k): v for k, v in t["levels"].items()}
    raw = [json.loads(line) for line in (SAMPLE_DATA / "app.log.jsonl").read_text().splitlines()]
    expected = pl.DataFrame(
        {
            "time_ns": [utc_us(r["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") * 1000 for r in raw],
            "message": [r["event"] for r in raw],
            "trace_id": [r["trace_id"] for r in raw],
            "correlation_id": [r["request_id"] for r in raw],
            "stage": [r.get("stage") for r in raw],
            "duration_ns": [round(r["duration_ms"] * 1000) * 1000 for r in raw],
            "error_message": [r.get("error") for r in raw],
        }
    )
    assert logs.select(expected.columns).equals(expected)
    # A log dump alone: every stage line becomes a span. The file has no line of the request
    # itself, so a request of several sequential stages gets a derived root; a request that
    # stopped at its first stage has one line, and that line is its root.
    spans = telemetry.spans
    lines_per_request = Counter(r["request_id"] for r in raw if r.get("stage"))
    rooted = sum(1 for n in lines_per_request.values() if n > 1)
    assert 0 < rooted < t["requests"] == len(lines_per_request)
    assert telemetry.derived_roots == rooted
    assert telemetry.derived_spans == spans.height == t["stage_lines"] + rooted
    derived = {n: (c, e) for n, (c, e, _) in stage_table(spans).items()}
    want = {n: (s["count"], s["errors"]) for n, s in t["stages"].items()}
    assert derived == {**want, "request": (rooted, 0)}
    stages = spans.filter(pl.col("name") != "request")
    assert stage_table(stages) == {
        n: (c, t["stages"][n]["errors"], d)
        for n, (c, _, d) in expected_stage_table(truth()["stages"]).items()
        if n in t["stages"]
    }


def test_stages_log_alone_is_analysable() -> None:
    telemetry = loaded("stages.log.jsonl")
    t = truth()["stages_log"]
    raw = [json.loads(line) for line in (SAMPLE_DATA / "stages.log.jsonl").read_text().splitlines()]
    logs = telemetry.logs
    assert logs.height == t["lines"]
    # python-json-logger's asctime has no zone; conftest pins TZ=UTC, and the file is UTC.
    expected_times = [utc_us(r["asctime"], "%Y-%m-%d %H:%M:%S,%f") * 1000 for r in raw]
    assert logs.get_column("time_ns").to_list() == expected_times
    assert logs.get_column("correlation_id").to_list() == [r["request_id"] for r in raw]
    assert logs.get_column("error_message").to_list() == [r.get("error") for r in raw]
    spans = telemetry.spans
    roots = spans.filter(pl.col("parent_id").is_null())
    assert roots.height == t["requests"]
    stages = spans.filter(pl.col("parent_id").is_not_null())
    assert stage_table(stages) == expected_stage_table(t["stages"])
    assert set(stages.get_column("service")) == {t["service"]}
    # A request is in error when any of its spans is (algorithms.md: derived roots have no status).
    failed = stages.filter(pl.col("status") == "error").get_column("trace_id").n_unique()
    assert failed == t["request_errors"]


def test_traces_and_their_logs_together_are_not_counted_twice() -> None:
    telemetry = loaded("traces.otlp.jsonl", "app.log.jsonl")
    assert telemetry.derived_spans == 0
    assert telemetry.spans.height == truth()["spans"]
    assert telemetry.logs.height == truth()["app_log"]["lines"] + truth()["otlp"]["log_records"]
