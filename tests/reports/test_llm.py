"""`tracelens llm`: every metric equals a computation with numpy over the raw attributes of the
dump (read here with json, not by tracelens), on the shipped sample, its log lines and its
ground truth; options, filters and hostile values."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import ml_tracelens as tl
from ml_tracelens.cli import app
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.reports.llm import ROW_KEYS
from tests.conftest import REPO
from tests.factories import otlp_span, write_otlp_lines

SAMPLE = REPO / "sample_data" / "llm.otlp.jsonl"
LOGS = REPO / "sample_data" / "llm.log.jsonl"
TRUTH = json.loads((REPO / "sample_data" / "llm_truth.json").read_text())

CONTRACT_KEYS = [
    "model",
    "requests",
    "errors",
    "error_rate",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "queue_p50_ms",
    "queue_p95_ms",
    "queue_share",
    "input_tokens_p50",
    "input_tokens_p95",
    "input_tokens_total",
    "output_tokens_p50",
    "output_tokens_p95",
    "output_tokens_total",
    "output_tps_p50",
    "finish_reasons",
]


def _value(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    (kind, raw), *_ = value.items()
    return int(raw) if kind == "intValue" else raw


def raw_requests() -> list[dict[str, Any]]:
    """Per trace of the sample, straight from the JSON: the server span's attributes with the
    client span's, its duration, the client's duration and whether either failed."""
    spans: dict[str, list[dict[str, Any]]] = {}
    for line in SAMPLE.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    spans.setdefault(span["traceId"], []).append(span)
    out = []
    for trace in spans.values():
        by_name = {s["name"].split()[0]: s for s in trace}
        server, client = by_name["llm_request"], by_name["chat"]
        attrs = {a["key"]: _value(a["value"]) for a in client["attributes"]}
        attrs.update({a["key"]: _value(a["value"]) for a in server["attributes"]})

        def duration_s(span: dict[str, Any]) -> float:
            return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9

        attrs["_duration_s"] = duration_s(server)
        attrs["_client_s"] = duration_s(client)
        attrs["_error"] = any(s["status"].get("code") == 2 for s in (server, client))
        out.append(attrs)
    return out


def expected_row(model: str) -> dict[str, Any]:
    reqs = [r for r in raw_requests() if r["gen_ai.response.model"] == model]

    def values(key: str) -> np.ndarray:
        return np.array([r[key] for r in reqs if key in r], dtype=float)

    e2e = np.array([r.get("gen_ai.latency.e2e", r["_duration_s"]) for r in reqs]) * 1000
    ttft = values("gen_ai.latency.time_to_first_token") * 1000
    queue = values("gen_ai.latency.time_in_queue") * 1000
    with_out = [r for r in reqs if "gen_ai.usage.completion_tokens" in r]
    tpot = np.array(
        [
            (r["gen_ai.latency.e2e"] - r["gen_ai.latency.time_to_first_token"])
            / (r["gen_ai.usage.completion_tokens"] - 1)
            * 1000
            for r in with_out
            if r["gen_ai.usage.completion_tokens"] >= 2
        ]
    )
    tps = np.array(
        [r["gen_ai.usage.completion_tokens"] / r["gen_ai.latency.e2e"] for r in with_out]
    )
    prompt, completion = (
        values("gen_ai.usage.prompt_tokens"),
        values("gen_ai.usage.completion_tokens"),
    )
    with_queue = [r for r in reqs if "gen_ai.latency.time_in_queue" in r]
    reasons = Counter(
        r["gen_ai.response.finish_reasons"][0]
        for r in reqs
        if "gen_ai.response.finish_reasons" in r
    )
    errors = sum(r["_error"] for r in reqs)
    return {
        "model": model,
        "requests": len(reqs),
        "errors": errors,
        "error_rate": errors / len(reqs),
        **{f"e2e_p{p}_ms": np.percentile(e2e, p) for p in (50, 95, 99)},
        **{f"ttft_p{p}_ms": np.percentile(ttft, p) for p in (50, 95, 99)},
        **{f"tpot_p{p}_ms": np.percentile(tpot, p) for p in (50, 95)},
        **{f"queue_p{p}_ms": np.percentile(queue, p) for p in (50, 95)},
        "queue_share": sum(r["gen_ai.latency.time_in_queue"] for r in with_queue)
        / sum(r["gen_ai.latency.e2e"] for r in with_queue),
        **{f"input_tokens_p{p}": np.percentile(prompt, p) for p in (50, 95)},
        "input_tokens_total": int(prompt.sum()),
        **{f"output_tokens_p{p}": np.percentile(completion, p) for p in (50, 95)},
        "output_tokens_total": int(completion.sum()),
        "output_tps_p50": np.percentile(tps, 50),
        "finish_reasons": {k: n / sum(reasons.values()) for k, n in reasons.items()},
    }


def assert_rows_equal(actual: dict[str, Any], expected: dict[str, Any], rel: float = 1e-9) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert actual[key] == pytest.approx(value, rel=rel), key
        elif isinstance(value, str | int) and not isinstance(value, bool):
            assert actual[key] == value, key
        else:
            assert actual[key] == pytest.approx(value, rel=rel), key


@pytest.fixture(scope="module")
def sample() -> tl.AnalysedTelemetry:
    return tl.load([str(SAMPLE)], cache=False)


def test_the_rows_carry_exactly_the_contract_keys(sample: tl.AnalysedTelemetry) -> None:
    document = json.loads(tl.llm(sample).to_json())
    for row in document["rows"]:
        assert list(row) == CONTRACT_KEYS
    assert tuple(CONTRACT_KEYS[1:]) == ROW_KEYS


@pytest.mark.parametrize("model", sorted(TRUTH["models"]))
def test_every_metric_equals_numpy_over_the_raw_attributes(
    sample: tl.AnalysedTelemetry, model: str
) -> None:
    rows = {r["model"]: r for r in json.loads(tl.llm(sample).to_json())["rows"]}
    assert_rows_equal(rows[model], expected_row(model))


@pytest.mark.parametrize("model", sorted(TRUTH["models"]))
def test_the_sample_agrees_with_its_ground_truth(sample: tl.AnalysedTelemetry, model: str) -> None:
    truth = TRUTH["models"][model]
    row = {r["model"]: r for r in json.loads(tl.llm(sample).to_json())["rows"]}[model]
    assert row["requests"] == len(truth["e2e_us"])
    assert row["errors"] == sum(truth["failed"])
    assert row["e2e_p95_ms"] == pytest.approx(np.percentile(truth["e2e_us"], 95) / 1000)
    ttft = [v for v in truth["ttft_us"] if v is not None]
    assert row["ttft_p99_ms"] == pytest.approx(np.percentile(ttft, 99) / 1000)
    assert row["input_tokens_total"] == sum(truth["input_tokens"])
    assert row["output_tokens_total"] == sum(v for v in truth["output_tokens"] if v)


def test_client_and_server_spans_count_once(sample: tl.AnalysedTelemetry) -> None:
    result = tl.llm(sample)
    assert result.data["llm_requests"] == TRUTH["requests"] == 200
    assert result.data["paired_requests"] == 200
    total = sum(r["output_tokens_total"] for r in result.tables["rows"].to_dicts())
    assert total == sum(
        v for m in TRUTH["models"].values() for v in m["output_tokens"] if v is not None
    )
    clients = {r["model"]: r for r in result.tables["clients"].to_dicts()}
    for model, truth in TRUTH["models"].items():
        assert clients[model]["client_e2e_p50_ms"] == pytest.approx(
            np.percentile(truth["client_e2e_us"], 50) / 1000
        )


def test_the_log_lines_give_the_same_tokens_and_ttft() -> None:
    rows = {r["model"]: r for r in json.loads(tl.llm(tl.load([str(LOGS)])).to_json())["rows"]}
    for model, truth in TRUTH["models"].items():
        row = rows[model]
        ttft = [v / 1000 for v in truth["ttft_us"] if v is not None]
        assert row["requests"] == len(truth["failed"])
        assert row["errors"] == sum(truth["failed"])
        assert row["ttft_p95_ms"] == pytest.approx(np.percentile(ttft, 95))
        assert row["input_tokens_total"] == sum(truth["input_tokens"])
        # no e2e attribute on a log line: e2e is the line's duration, the client's call
        assert row["e2e_p50_ms"] == pytest.approx(np.percentile(truth["client_e2e_us"], 50) / 1000)
        done = [not failed for failed in truth["failed"]]
        queue = np.array(truth["queue_us"])[done] / 1000
        assert row["queue_p95_ms"] == pytest.approx(np.percentile(queue, 95))
        client = np.array(truth["client_e2e_us"])[done] / 1000
        assert row["queue_share"] == pytest.approx(queue.sum() / client.sum())


def test_log_lines_with_stage_times_get_derived_stages() -> None:
    t = tl.load([str(LOGS)])
    stages = tl.latency(t).rows.filter(pl.col("stage").is_in(["queue", "prefill", "decode"]))
    decode = stages.filter(pl.col("stage") == "decode").row(0, named=True)
    truth = [
        v / 1000
        for m in TRUTH["models"].values()
        for v, failed in zip(m["decode_us"], m["failed"], strict=True)
        if not failed and v
    ]
    # the logged call lasts longer than queue + prefill + decode (the network on both sides):
    # nothing is clipped, every decode stage lasts what its line says
    assert decode["count"] == len(truth)
    assert decode["p50_ms"] == pytest.approx(np.percentile(truth, 50))
    assert decode["p95_ms"] == pytest.approx(np.percentile(truth, 95))
    assert t.telemetry.llm_stage_spans == int(stages.get_column("count").sum())


def test_group_by_operation_and_provider(sample: tl.AnalysedTelemetry) -> None:
    rows = tl.llm(sample, by="operation,provider").tables["rows"].to_dicts()
    assert [(r["operation"], r["provider"], r["requests"]) for r in rows] == [("chat", "vllm", 200)]
    by_attr = tl.llm(sample, by="attr.gen_ai.request.max_tokens").tables["rows"]
    assert sum(by_attr.get_column("requests")) == 200


def test_filters_choose_the_spans_that_may_be_requests(sample: tl.AnalysedTelemetry) -> None:
    server_only = tl.llm(sample, services=["vllm"])
    assert server_only.data["llm_requests"] == 200
    # only the client spans selected: they are the requests, with the client's numbers
    clients = tl.llm(sample, services=["chat-app"])
    assert clients.data["paired_requests"] == 0
    assert clients.data["llm_requests"] == 200
    assert clients.tables["rows"].get_column("ttft_p50_ms").null_count() == 2


def test_an_unknown_group_key_and_no_llm_spans_are_usage_and_input_errors(
    sample: tl.AnalysedTelemetry,
) -> None:
    with pytest.raises(UsageError, match="model, operation, provider"):
        tl.llm(sample, by="colour")
    plain = tl.load([str(REPO / "sample_data" / "traces.otlp.jsonl")])
    with pytest.raises(InputError, match="no LLM request spans"):
        tl.llm(plain)


def test_hostile_values_are_ignored_and_counted_not_crashes(tmp_path: Path) -> None:
    spans = [
        otlp_span(
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            None,
            "llm_request",
            1_000_000_000,
            2_000_000_000,
            attributes={
                "gen_ai.response.model": "m\x1b[31mred",
                "gen_ai.latency.time_to_first_token": "fast",
                "gen_ai.usage.completion_tokens": "1e400",
                "gen_ai.latency.e2e": -1.0,
            },
        )
    ]
    path = write_otlp_lines(tmp_path / "bad.jsonl", [spans])
    result = CliRunner().invoke(app, ["llm", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "\x1b[31m" not in result.stdout
    assert "not non-negative numbers" in result.stderr
    assert "1 ttft" in result.stderr
    assert "1 e2e" in result.stderr
    assert result.stderr.count("not non-negative numbers") == 1


def test_the_cli_prints_every_format() -> None:
    for fmt in ("table", "json", "csv", "markdown"):
        result = CliRunner().invoke(app, ["llm", str(SAMPLE), "--format", fmt])
        assert result.exit_code == 0, result.stderr
        assert "llama-3-8b-instruct" in result.stdout


def test_check_budgets_measure_what_the_report_prints(sample: tl.AnalysedTelemetry) -> None:
    rows = {r["model"]: r for r in tl.llm(sample).tables["rows"].to_dicts()}
    llama, mixtral = rows["llama-3-8b-instruct"], rows["mixtral-8x7b-instruct"]
    budgets = [
        "llm.ttft.p95 < 500ms",
        "llm.tpot.p50 <= 40ms",
        "llm.queue_share < 20%",
        "llm.output_tps.p50 >= 30",
        "llama-3-8b-instruct:llm.ttft.p99 < 1s",
        "mixtral-8x7b-instruct:llm.output_tps.p50 >= 30",
        "mixtral-8x7b-instruct:llm.queue_share < 20%",
        "gpt-4:llm.e2e.p50 < 1s",
    ]
    result = tl.check(sample, budgets)
    got = {r["budget"]: r for r in result.rows.to_dicts()}
    assert got["llama-3-8b-instruct:llm.ttft.p99 < 1s"]["actual"] == pytest.approx(
        llama["ttft_p99_ms"]
    )
    assert got["mixtral-8x7b-instruct:llm.output_tps.p50 >= 30"]["actual"] == pytest.approx(
        mixtral["output_tps_p50"]
    )
    assert not got["mixtral-8x7b-instruct:llm.output_tps.p50 >= 30"]["passed"]
    assert got["mixtral-8x7b-instruct:llm.queue_share < 20%"]["actual"] == pytest.approx(
        mixtral["queue_share"]
    )
    # over all requests: numpy over the raw attributes of both models
    raw = raw_requests()
    ttft = [
        r["gen_ai.latency.time_to_first_token"] * 1000
        for r in raw
        if "gen_ai.latency.time_to_first_token" in r
    ]
    assert got["llm.ttft.p95 < 500ms"]["actual"] == pytest.approx(np.percentile(ttft, 95))
    assert got["llm.ttft.p95 < 500ms"]["passed"]
    assert "not in the data" in got["gpt-4:llm.e2e.p50 < 1s"]["note"]
    assert not result.passed


def test_check_llm_budgets_on_a_dump_without_llm_spans_fail_with_a_note() -> None:
    plain = tl.load([str(REPO / "sample_data" / "traces.otlp.jsonl")])
    (row,) = tl.check(plain, ["llm.ttft.p95<1s"]).rows.to_dicts()
    assert not row["passed"]
    assert "no LLM request spans" in row["note"]


SLOWER = REPO / "sample_data" / "llm.slower.otlp.jsonl"


def test_diff_compares_each_models_measures_and_gates_on_them() -> None:
    rule = "mixtral-8x7b-instruct:llm.tpot:p50>+10%"
    result = CliRunner().invoke(
        app,
        ["diff", str(SAMPLE), str(SLOWER), "--bootstrap", "4000", "--fail-on", rule,
         "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    rows = {(r["stage"], r["metric"]): r for r in json.loads(result.stdout)["rows"]}
    for model in TRUTH["models"]:
        for measure in ("e2e", "ttft", "tpot", "queue"):
            assert (f"{model}:llm.{measure}", "p50") in rows
    tpot = rows[("mixtral-8x7b-instruct:llm.tpot", "p50")]
    assert tpot["baseline"] == pytest.approx(expected_row("mixtral-8x7b-instruct")["tpot_p50_ms"])
    current = tl.llm(tl.load([str(SLOWER)], cache=False)).tables["rows"].to_dicts()
    slower = {r["model"]: r for r in current}["mixtral-8x7b-instruct"]
    assert tpot["current"] == pytest.approx(slower["tpot_p50_ms"])
    assert tpot["ci_low"] > 0
    assert tpot["significant"]
    assert tpot["regression"]
    # the same request counts once per measure: no double count from the client span
    assert rows[("mixtral-8x7b-instruct:llm.e2e", "count")]["baseline"] == len(
        TRUTH["models"]["mixtral-8x7b-instruct"]["e2e_us"]
    )


def test_diff_of_dumps_without_llm_spans_has_no_llm_rows() -> None:
    plain = tl.load([str(REPO / "sample_data" / "traces.otlp.jsonl")])
    stages = set(tl.diff(plain, plain, replicates=100).rows.get_column("stage").to_list())
    assert not any(s and ":llm." in s for s in stages)


def test_the_generator_reproduces_the_shipped_llm_files(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = REPO / "sample_data" / "generate_llm.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True)
    for name in ("llm.otlp.jsonl", "llm.slower.otlp.jsonl", "llm.log.jsonl", "llm_truth.json"):
        assert (tmp_path / name).read_bytes() == (REPO / "sample_data" / name).read_bytes(), name


def write_custom_log(path: Path) -> Path:
    lines = [
        {
            "ts": f"2026-03-02T12:00:0{i}.500Z",
            "req": f"r{i}",
            "step": "generate",
            "took_ms": 1000 + 100 * i,
            "engine_model": "tiny" if i % 2 else "big",
            "first_tok": 0.05 * (i + 1),
            "in_tok": 10 * i + 5,
            "out_tok": 20 + i,
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


CUSTOM_FIELDS = [
    "--field", "correlation_id=req", "--field", "stage=step", "--field", "duration=took_ms",
    "--field", "time=ts", "--field", "llm.ttft=first_tok:s", "--field", "llm.input_tokens=in_tok",
    "--field", "llm.output_tokens=out_tok", "--field", "llm.model=engine_model",
]  # fmt: skip


def test_field_options_name_the_llm_keys_of_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_custom_log(tmp_path / "custom.jsonl")
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    runs = [
        CliRunner().invoke(app, ["llm", str(path), *CUSTOM_FIELDS, "--format", "json"])
        for _ in range(2)  # cold, then from the cache
    ]
    assert runs[0].exit_code == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert any((tmp_path / "cache").iterdir())
    rows = {r["model"]: r for r in json.loads(runs[0].stdout)["rows"]}
    big = rows["big"]  # lines 0, 2, 4
    e2e = np.array([1000, 1200, 1400])
    ttft = np.array([50, 150, 250])
    out = np.array([20, 22, 24])
    assert big["requests"] == 3
    assert big["ttft_p50_ms"] == pytest.approx(150)
    assert big["tpot_p50_ms"] == pytest.approx(np.percentile((e2e - ttft) / (out - 1), 50))
    assert big["input_tokens_total"] == 5 + 25 + 45
    assert big["output_tps_p50"] == pytest.approx(np.percentile(out / (e2e / 1000), 50))
    assert json.loads(runs[0].stdout)["fields"]["ttft"] == ["first_tok"]
    budget = CliRunner().invoke(
        app, ["check", str(path), *CUSTOM_FIELDS, "--budget", "big:llm.ttft.p50<=150ms"]
    )
    assert budget.exit_code == 0, budget.stdout + budget.stderr


def test_an_unknown_llm_field_is_a_usage_error(tmp_path: Path) -> None:
    path = write_custom_log(tmp_path / "custom.jsonl")
    result = CliRunner().invoke(app, ["llm", str(path), "--field", "llm.colour=x"])
    assert result.exit_code == 2
    assert "unknown LLM field" in result.stderr
    assert "llm.ttft" in result.stderr


def test_a_budget_on_the_exact_boundary_of_an_integer_percentile_passes(tmp_path: Path) -> None:
    # ttft of 0.1 s, 0.2 s, 0.3 s: p50 is 200 ms exactly, whatever floats make of 0.2
    spans = [
        otlp_span(
            f"{i + 1:032x}",
            f"{i + 1:016x}",
            None,
            "llm_request",
            1_000_000_000,
            2_000_000_000,
            attributes={"gen_ai.latency.time_to_first_token": (i + 1) / 10},
        )
        for i in range(3)
    ]
    path = write_otlp_lines(tmp_path / "three.jsonl", [spans])
    t = tl.load([str(path)])
    (row,) = tl.check(t, ["llm.ttft.p50<=200ms"]).rows.to_dicts()
    assert row["actual"] == 200.0
    assert row["passed"]
    (row,) = tl.check(t, ["llm.ttft.p50<200ms"]).rows.to_dicts()
    assert not row["passed"]


def test_summary_json_says_which_keys_the_llm_fields_came_from() -> None:
    document = json.loads(runner_json("summary", str(SAMPLE)))
    keys: set[str] = set()
    for line in SAMPLE.read_text().splitlines():
        for resource in json.loads(line).get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    keys.update(a["key"] for a in span.get("attributes", []))
    assert document["llm_fields"]["ttft"] == ["gen_ai.latency.time_to_first_token"]
    assert all(set(found) <= keys for found in document["llm_fields"].values())
    # Each server span with queue, prefill and decode times gets those three stages.
    spans = tl.load(SAMPLE, cache=False).spans
    derived = spans.filter(pl.col("name").is_in(["queue", "prefill", "decode"]))
    assert document["llm_stage_spans"] == derived.height > 0
    assert document["llm_spans"] == TRUTH["requests"] * 2  # a client and a server span each


def runner_json(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return result.stdout
