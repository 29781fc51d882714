"""Dumps written by the real OpenTelemetry SDK and real loggers read back exactly.

``tests/acceptance/realdumps/make_real_dumps.py`` runs an instrumented pipeline once per session and writes
the console, Zipkin and OTLP/JSON span files, the OTel log records, structlog /
python-json-logger / loguru lines, and ``truth.json`` taken from the SDK's in-memory exporters
and from the values handed to the loggers. Every expectation here comes from that truth file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

for module in (
    "opentelemetry.sdk",
    "opentelemetry.exporter.zipkin.json",
    "opentelemetry.exporter.otlp.proto.common",
    "google.protobuf",
    "structlog",
    "pythonjsonlogger",
    "loguru",
):
    pytest.importorskip(module, reason="install the test extra: pip install -e '.[test]'")

from ml_tracelens import ingest  # noqa: E402  (after the skips: no point importing otherwise)
from ml_tracelens.ingest.pipeline import load_analysed  # noqa: E402
from ml_tracelens.schema import attribute  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "realdumps" / "make_real_dumps.py"
SPAN_FILES = ("spans.otlp.jsonl", "spans.console.json", "spans.zipkin.json")
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "status_message",
)
GATEWAY_STAGES = (
    "validate",
    "fetch_features",
    "profile_lookup",
    "preprocess",
    "model.inference",
    "postprocess",
)


@pytest.fixture(scope="session")
def real_dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("realdumps")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def truth(real_dumps: Path) -> dict[str, Any]:
    return json.loads((real_dumps / "truth.json").read_text())


def truth_spans(truth: dict[str, Any]) -> pl.DataFrame:
    rows = [{c: s[c] for c in SPAN_COLUMNS} for s in truth["spans"]]
    return pl.DataFrame(
        rows, schema={c: pl.Int64 if c.endswith("_ns") else pl.String for c in SPAN_COLUMNS}
    )


def in_line_order(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(pl.col("source").str.extract(r":(\d+)(?:#\d+)?$").cast(pl.Int64))


def test_the_pipeline_produced_what_the_tests_rely_on(truth: dict[str, Any]) -> None:
    spans = truth["spans"]
    assert len(spans) == 4 * 10 - 1  # four requests; the failing one has no postprocess
    assert all(s["start_ns"] % 1000 == 0 and s["end_ns"] % 1000 == 0 for s in spans)
    assert Counter(s["service"] for s in spans) == {
        "gateway": 27,
        "feature-store": 8,
        "model-server": 4,
    }
    errors = [s for s in spans if s["status"] == "error"]
    assert [s["name"] for s in errors] == ["predict", "model.inference", "POST /predict"]
    assert {s["status_message"] for s in errors} == {
        "RuntimeError: CUDA out of memory: tried to allocate 1.5 GiB"
    }
    # fetch_features and profile_lookup ran on two threads at the same time, in every request
    for trace_id in {s["trace_id"] for s in spans}:
        pair = {s["name"]: s for s in spans if s["trace_id"] == trace_id}
        fetch, profile = pair["fetch_features"], pair["profile_lookup"]
        assert fetch["parent_id"] == profile["parent_id"] == pair["POST /predict"]["span_id"]
        assert fetch["start_ns"] < profile["end_ns"]
        assert profile["start_ns"] < fetch["end_ns"]


@pytest.mark.parametrize("name", SPAN_FILES)
def test_span_table_matches_the_sdk(real_dumps: Path, truth: dict[str, Any], name: str) -> None:
    telemetry = ingest.load([str(real_dumps / name)])
    spans = telemetry.spans
    got = spans.select(SPAN_COLUMNS).with_columns(pl.col("status").cast(pl.String))
    assert got.sort("span_id").equals(truth_spans(truth).sort("span_id"))
    assert spans.get_column("duration_ns").equals(
        spans.get_column("end_ns") - spans.get_column("start_ns"), check_names=False
    )
    assert spans.get_column("source").null_count() == 0
    assert telemetry.derived_spans == 0
    assert sum(i.stats.skipped for i in telemetry.inputs) == 0


@pytest.mark.parametrize("name", SPAN_FILES)
def test_span_kinds_and_attributes_read_as_the_sdk_recorded_them(
    real_dumps: Path, truth: dict[str, Any], name: str
) -> None:
    spans = ingest.load([str(real_dumps / name)]).spans.sort("span_id")
    expected = sorted(truth["spans"], key=lambda s: s["span_id"])
    kinds = [s["kind"] for s in expected]
    if name == "spans.zipkin.json":  # Zipkin has no INTERNAL kind: the encoder writes none
        kinds = [None if k == "internal" else k for k in kinds]
    assert spans.get_column("kind").cast(pl.String).to_list() == kinds
    for key in ("request.id", "model.version", "db.statement"):
        want = [None if key not in s["attributes"] else str(s["attributes"][key]) for s in expected]
        assert spans.select(attribute(key)).to_series().to_list() == want, key


def test_otlp_log_records_match_the_sdk(real_dumps: Path, truth: dict[str, Any]) -> None:
    logs = in_line_order(ingest.load([str(real_dumps / "spans.otlp.jsonl")]).logs)
    expected = truth["otel_logs"]
    assert logs.height == len(expected) == 5
    assert logs.get_column("time_ns").to_list() == [r["time_ns"] for r in expected]
    assert logs.get_column("level").to_list() == [r["level"].lower() for r in expected]
    assert logs.get_column("message").to_list() == [r["message"] for r in expected]
    # protobuf's JSON writes the ids as base64; they must come back as the SDK's hex
    assert logs.get_column("trace_id").to_list() == [r["trace_id"] for r in expected]
    assert logs.get_column("span_id").to_list() == [r["span_id"] for r in expected]


#: file, whether the lines carry trace and span ids, how far the written time may lie below
#: the call (its resolution) and above it (float seconds)
LOGGERS = {
    "structlog": ("app.structlog.jsonl", True, True, 1_000, 0),
    "python-json-logger": ("app.jsonlogger.jsonl", False, False, 1_000_000, 0),
    "loguru": ("app.loguru.jsonl", True, False, 1_000, 1_000),
}


@pytest.mark.parametrize("library", list(LOGGERS))
def test_log_lines_match_what_was_logged(
    real_dumps: Path, truth: dict[str, Any], library: str
) -> None:
    file, has_trace, has_span, below, above = LOGGERS[library]
    logs = in_line_order(ingest.load([str(real_dumps / file)]).logs)
    expected = truth["log_lines"]
    assert logs.height == len(expected) == 27
    for row, want in zip(logs.iter_rows(named=True), expected, strict=True):
        where = f"{row['source']} ({want['message']}, {want['stage']})"
        assert row["level"] == want["level"], where
        assert row["message"] == want["message"], where
        assert row["correlation_id"] == want["request_id"], where
        assert row["trace_id"] == (want["trace_id"] if has_trace else None), where
        assert row["span_id"] == (want["span_id"] if has_span else None), where
        assert row["stage"] == want["stage"], where
        assert row["duration_ns"] == want["duration_ns"], where
        assert row["error_message"] == want["error"], where
        low = want["before_ns"] // below * below
        assert low <= row["time_ns"] <= want["after_ns"] + above, where


@pytest.mark.parametrize("library", list(LOGGERS))
def test_logs_alone_become_the_gateway_stages(
    real_dumps: Path, truth: dict[str, Any], library: str
) -> None:
    telemetry = ingest.load([str(real_dumps / LOGGERS[library][0])])
    spans = telemetry.spans
    stages = spans.filter(pl.col("parent_id").is_not_null())
    got = sorted(stages.select("name", "duration_ns").iter_rows())
    want = sorted(
        (s["name"], s["end_ns"] - s["start_ns"])
        for s in truth["spans"]
        if s["service"] == "gateway" and s["name"] in GATEWAY_STAGES
    )
    assert got == want
    assert spans.filter(pl.col("parent_id").is_null()).height == len(truth["requests"])
    failed = stages.filter(pl.col("status") == "error").get_column("name").to_list()
    assert failed == ["model.inference"]


def test_the_three_loggers_give_one_critical_path(real_dumps: Path, truth: dict[str, Any]) -> None:
    # The same run logged by structlog and loguru (microsecond times) and python-json-logger
    # (asctime, whole milliseconds). The microsecond logs must rebuild the same trees and so the
    # same critical path. This run's stages last 1 to 5 ms with sub-millisecond gaps, so at a
    # 1 ms resolution short neighbours nest within the slack: only the longest stage is still
    # pinned down there (how the others nest depends on this run's timing).
    shares = {}
    for library, (file, *_) in LOGGERS.items():
        _, analysis = load_analysed([str(real_dumps / file)], use_cache=False)
        spans = analysis.spans
        total = spans.filter(pl.col("parent_id").is_null()).get_column("duration_ns").sum()
        shares[library] = {
            name: cp / total for name, cp in spans.group_by("name").agg(pl.sum("cp_ns")).iter_rows()
        }
    assert shares["structlog"].keys() == shares["loguru"].keys()
    assert shares["structlog"].keys() == shares["python-json-logger"].keys()
    # fetch_features and profile_lookup start together (on two threads): which nests under the
    # other is the time-ambiguous case algorithms.md leaves to the timestamps, and each library
    # stamps its line apart (microseconds later under load). Their sum is pinned down.
    together = ("fetch_features", "profile_lookup")
    for library in ("structlog", "loguru"):
        shares[library]["fetch_features + profile_lookup"] = sum(
            shares[library].pop(stage) for stage in together
        )
    for stage, share in shares["structlog"].items():
        assert shares["loguru"][stage] == pytest.approx(share, abs=0.005), stage
    coarse = shares["python-json-logger"]
    assert coarse["model.inference"] == pytest.approx(
        shares["structlog"]["model.inference"], abs=0.02
    )
    # The sections of each request's critical path still partition it at 1 ms.
    assert sum(coarse.values()) == pytest.approx(1.0, abs=1e-9)
