"""LLM serving on real exporter output: ``realdumps/make_llm_dumps.py`` runs the OpenTelemetry SDK
once per session (a chat client span calling a vLLM-style server span through the real
propagator) and exports the spans as OTLP/JSON, console and Zipkin; `tracelens llm` must give,
from each, the numbers numpy computes over the attributes the SDK recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import ml_tracelens as tl

SCRIPT = Path(__file__).resolve().parent / "realdumps" / "make_llm_dumps.py"
FILES = ("llm.otlp.jsonl", "llm.console.json", "llm.zipkin.json")


@pytest.fixture(scope="session")
def llm_dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llmdumps")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return out


def expected(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model, from the SDK's own spans: the server span's numbers, the client's where the
    server has none (the finish reasons), one request per server span."""
    spans = truth["spans"]
    clients = {s["span_id"]: s for s in spans if s["kind"] == "client"}
    out: dict[str, dict[str, Any]] = {}
    for model in sorted({s["attributes"].get("gen_ai.response.model") for s in spans} - {None}):
        servers = [
            s
            for s in spans
            if s["name"] == "llm_request" and s["attributes"]["gen_ai.response.model"] == model
        ]
        a = [s["attributes"] for s in servers]
        client_of = [clients[s["parent_id"]] for s in servers]
        e2e = np.array([x["gen_ai.latency.e2e"] for x in a]) * 1000
        done = [x for x in a if "gen_ai.usage.completion_tokens" in x]
        ttft = np.array([x["gen_ai.latency.time_to_first_token"] for x in done]) * 1000
        tpot = np.array(
            [
                (x["gen_ai.latency.e2e"] - x["gen_ai.latency.time_to_first_token"])
                / (x["gen_ai.usage.completion_tokens"] - 1)
                * 1000
                for x in done
                if x["gen_ai.usage.completion_tokens"] >= 2
            ]
        )
        reasons = Counter(
            c["attributes"]["gen_ai.response.finish_reasons"][0]
            for c in client_of
            if "gen_ai.response.finish_reasons" in c["attributes"]
        )
        errors = sum(
            s["status"] == "error" or c["status"] == "error"
            for s, c in zip(servers, client_of, strict=True)
        )
        out[model] = {
            "requests": len(servers),
            "errors": errors,
            "e2e_p95_ms": np.percentile(e2e, 95),
            "ttft_p50_ms": np.percentile(ttft, 50),
            "ttft_p99_ms": np.percentile(ttft, 99),
            "tpot_p50_ms": np.percentile(tpot, 50),
            "queue_share": sum(x["gen_ai.latency.time_in_queue"] for x in a)
            / sum(x["gen_ai.latency.e2e"] for x in a),
            "input_tokens_total": sum(x["gen_ai.usage.prompt_tokens"] for x in a),
            "output_tokens_total": sum(x["gen_ai.usage.completion_tokens"] for x in done),
            "output_tps_p50": np.percentile(
                [x["gen_ai.usage.completion_tokens"] / x["gen_ai.latency.e2e"] for x in done], 50
            ),
            "finish_reasons": {k: n / sum(reasons.values()) for k, n in reasons.items()},
        }
    return out


@pytest.mark.parametrize("name", FILES)
def test_llm_report_equals_numpy_over_the_sdk_attributes(llm_dumps: Path, name: str) -> None:
    truth = json.loads((llm_dumps / "truth.json").read_text())
    t = tl.load([str(llm_dumps / name)], cache=False)
    rows = {r["model"]: r for r in json.loads(tl.llm(t).to_json())["rows"]}
    wanted = expected(truth)
    assert set(rows) == set(wanted)
    for model, values in wanted.items():
        for key, value in values.items():
            assert rows[model][key] == pytest.approx(value, rel=1e-9), (name, model, key)
    assert tl.llm(t).data["paired_requests"] == 12


@pytest.mark.parametrize("name", FILES)
def test_derived_stages_on_real_exports(llm_dumps: Path, name: str) -> None:
    t = tl.load([str(llm_dumps / name)], cache=False)
    stages = t.spans.filter(pl.col("attributes") == '{"tracelens.derived":"llm"}')
    # queue may be 0 µs on a request; prefill on every one, decode on those that decoded
    assert set(stages.get_column("name")) == {"queue", "prefill", "decode"}
    assert stages.filter(pl.col("name") == "prefill").height == 11  # the failed one has none
    assert t.telemetry.llm_stage_spans == stages.height
    latency = {r["stage"]: r for r in tl.latency(t).rows.to_dicts()}
    assert latency["decode"]["cp_share"] > 0.5


def test_budgets_and_diff_on_real_exports(llm_dumps: Path) -> None:
    truth = json.loads((llm_dumps / "truth.json").read_text())
    wanted = expected(truth)
    otlp = tl.load([str(llm_dumps / "llm.otlp.jsonl")], cache=False)
    zipkin = tl.load([str(llm_dumps / "llm.zipkin.json")], cache=False)
    model = "llama-3-8b-instruct"
    rows = tl.check(
        zipkin, [f"{model}:llm.ttft.p99 < 10s", "llm.output_tokens.total >= 1"]
    ).rows.to_dicts()
    assert rows[0]["actual"] == pytest.approx(wanted[model]["ttft_p99_ms"])
    assert rows[1]["actual"] == sum(w["output_tokens_total"] for w in wanted.values())
    assert all(r["passed"] for r in rows)
    # the same run exported twice: every LLM measure is there, nothing changed
    diff = tl.diff(otlp, zipkin, replicates=200, long=True).rows
    llm_rows = diff.filter(pl.col("stage").str.contains(":llm.", literal=True))
    assert llm_rows.height == 2 * 4 * 5  # models x measures x metrics
    assert llm_rows.filter(pl.col("metric") != "count").get_column("change").abs().max() == 0
    assert not llm_rows.get_column("significant").any()
