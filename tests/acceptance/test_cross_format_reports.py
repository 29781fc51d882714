"""The same workload read from OTLP, Jaeger and Zipkin gives the same reports."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.conftest import SAMPLE_DATA

runner = CliRunner()


def _report(command: str, name: str, *extra: str) -> dict:
    result = runner.invoke(app, [command, str(SAMPLE_DATA / name), "-f", "json", "-q", *extra])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("command", ["latency", "errors", "bottlenecks"])
def test_otlp_and_jaeger_give_identical_reports(command: str) -> None:
    otlp = _report(command, "traces.otlp.jsonl")
    jaeger = _report(command, "traces.jaeger.json")
    for key in set(otlp) - {"inputs", "warnings"}:
        assert otlp[key] == jaeger[key], key


def test_zipkin_agrees_on_every_stage_it_shares() -> None:
    # Zipkin adds the gateway's CLIENT half of the model-server call (a shared id), so it has
    # one more stage; every other stage's statistics are the same spans, hence equal.
    otlp = {row["stage"]: row for row in _report("latency", "traces.otlp.jsonl")["rows"]}
    zipkin = {row["stage"]: row for row in _report("latency", "traces.zipkin.json")["rows"]}
    extra = set(zipkin) - set(otlp)
    assert extra == {"POST /v1/models/intent-classifier:predict"}
    for stage, row in otlp.items():
        for key in ("count", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "errors"):
            assert zipkin[stage][key] == pytest.approx(row[key]), (stage, key)
    requests_otlp = _report("latency", "traces.otlp.jsonl")["requests"]
    requests_zipkin = _report("latency", "traces.zipkin.json")["requests"]
    assert requests_zipkin == pytest.approx(requests_otlp)


def test_latency_matches_the_generator_truth() -> None:
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())
    report = _report("latency", "traces.otlp.jsonl")
    rows = {row["stage"]: row for row in report["rows"]}
    stages = truth["stages"]
    assert set(rows) == set(stages)
    for stage, expected in stages.items():
        assert rows[stage]["count"] == expected["count"], stage
        assert rows[stage]["errors"] == expected["errors"], stage
        for p in (50, 95):
            assert rows[stage][f"p{p}_ms"] == pytest.approx(expected[f"p{p}_ms"]), (stage, p)
