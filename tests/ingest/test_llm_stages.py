"""Derived LLM stages at load time: added under LLM spans, counted, and switched off."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ml_tracelens import ingest
from ml_tracelens.readers.base import ReadOptions

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "llm.otlp.jsonl"


def test_the_sample_gets_queue_prefill_decode_under_each_server_span() -> None:
    t = ingest.load([str(SAMPLE)])
    stages = t.spans.filter(pl.col("attributes") == '{"tracelens.derived":"llm"}')
    assert t.llm_stage_spans == stages.height > 0
    assert set(stages.get_column("name")) == {"queue", "prefill", "decode"}
    parents = t.spans.join(
        stages.select("trace_id", span_id="parent_id"), on=["trace_id", "span_id"], how="semi"
    )
    assert set(parents.get_column("name")) == {"llm_request"}
    assert set(stages.get_column("service")) == {"vllm"}
    # the client span, the server span: every LLM span of the sample, stages not among them
    assert t.llm_spans == 400
    assert t.llm_fields["ttft_ns"] == ["gen_ai.latency.time_to_first_token"]
    assert t.llm_fields["input_tokens"] == [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
    ]


def test_no_derived_stages_when_turned_off() -> None:
    t = ingest.load([str(SAMPLE)], options=ReadOptions(derived_stages=False))
    assert t.llm_stage_spans == 0
    assert t.spans.height == 600
    assert t.llm_spans == 400


def test_a_parquet_copy_keeps_the_stages_once(tmp_path: Path) -> None:
    from ml_tracelens.readers.parquet import write_parquet

    t = ingest.load([str(SAMPLE)])
    out = tmp_path / "llm.parquet"
    write_parquet(t.spans, t.logs, out)
    again = ingest.load([str(out)])
    assert again.spans.height == t.spans.height  # the children now cover the times
    assert again.llm_stage_spans == 0
