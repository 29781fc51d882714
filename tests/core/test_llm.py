"""LLM serving metrics (algorithms.md, "LLM serving metrics"): the alias table, the definitions
on hand-computed vectors, the derived stages' layout and the client/server pairing."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core import llm, llm_stages
from ml_tracelens.schema import SPAN_SCHEMA
from tests.factories import make_spans

S = 1_000_000_000
MS = 1_000_000


def vllm(seconds: dict[str, float], **extra: object) -> dict[str, object]:
    attrs: dict[str, object] = {f"gen_ai.latency.{k}": v for k, v in seconds.items()}
    attrs.update(extra)
    return attrs


def test_the_algorithms_md_vector() -> None:
    # e2e 2.0 s, ttft 0.2 s, 91 output tokens -> tpot 20 ms, output_tps 45.5
    spans = make_spans(
        [
            (
                "r",
                None,
                0,
                3 * S,  # the span's own duration is not e2e when e2e is given
                {
                    "attributes": vllm(
                        {"e2e": 2.0, "time_to_first_token": 0.2},
                        **{"gen_ai.usage.completion_tokens": 91},
                    )
                },
            )
        ]
    )
    found = llm.llm_spans(spans)
    row = llm.with_metrics(found.frame).row(0, named=True)
    assert row["e2e_req_ns"] == 2 * S
    assert row["ttft_ns"] == 200 * MS
    assert row["tpot_ns"] == pytest.approx(20 * MS)
    assert row["output_tps"] == pytest.approx(45.5)


@pytest.mark.parametrize(
    ("output", "tpot"),
    [(None, None), (0, None), (1, None), (2, 1_800 * MS), (11, 180 * MS)],
)
def test_tpot_needs_two_output_tokens(output: int | None, tpot: float | None) -> None:
    attrs: dict[str, object] = {"gen_ai.latency.time_to_first_token": 0.2}
    if output is not None:
        attrs["gen_ai.usage.output_tokens"] = output
    spans = make_spans([("r", None, 0, 2 * S, {"attributes": attrs})])
    row = llm.with_metrics(llm.llm_spans(spans).frame).row(0, named=True)
    # no e2e attribute: the span's duration (2 s) is e2e
    assert row["e2e_req_ns"] == 2 * S
    assert row["tpot_ns"] == (pytest.approx(tpot) if tpot is not None else None)


def test_spellings_map_to_one_column_each_and_are_reported() -> None:
    spans = make_spans(
        [
            ("v", None, 0, S, {"attributes": {"gen_ai.usage.prompt_tokens": 10}}),
            ("o", None, 0, S, {"attributes": {"llm.token_count.prompt": "12"}}),
            ("s", None, 0, S, {"attributes": {"gen_ai.usage.input_tokens": 14}}),
            ("l", None, 0, S, {"attributes": {"prompt_tokens": "16", "ttft_ms": "120.5"}}),
            ("x", None, 0, S, {"attributes": {"model": "resnet"}}),  # not an LLM span
        ]
    )
    found = llm.llm_spans(spans)
    by_id = {r["span_id"]: r for r in found.frame.iter_rows(named=True)}
    assert set(by_id) == {"v", "o", "s", "l"}
    assert {k: r["input_tokens"] for k, r in by_id.items()} == {
        "v": 10.0,
        "o": 12.0,
        "s": 14.0,
        "l": 16.0,
    }
    assert by_id["l"]["ttft_ns"] == 120_500_000  # ms spelling
    assert found.found["input_tokens"] == [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "prompt_tokens",
    ]


def test_otlp_list_attributes_and_finish_reason_arrays() -> None:
    attributes = (
        '[{"key":"gen_ai.response.model","value":{"stringValue":"m1"}},'
        '{"key":"gen_ai.usage.output_tokens","value":{"intValue":"7"}},'
        '{"key":"gen_ai.latency.time_in_queue","value":{"doubleValue":0.25}},'
        '{"key":"gen_ai.response.finish_reasons","value":{"arrayValue":{"values":'
        '[{"stringValue":"length"},{"stringValue":"stop"}]}}}]'
    )
    spans = make_spans(
        [
            ("a", None, 0, S, {"attributes": attributes}),
            ("b", None, 0, S, {"attributes": {"finish_reason": "stop", "output_tokens": 3}}),
            ("c", None, 0, S, {"attributes": {"gen_ai.response.finish_reasons": ["eos"]}}),
        ]
    )
    rows = {r["span_id"]: r for r in llm.llm_spans(spans).frame.iter_rows(named=True)}
    assert rows["a"]["model"] == "m1"
    assert rows["a"]["output_tokens"] == 7.0
    assert rows["a"]["queue_ns"] == 250 * MS
    assert rows["a"]["finish_reason"] == "length"
    assert rows["b"]["finish_reason"] == "stop"
    assert rows["c"]["finish_reason"] == "eos"


def test_bad_values_are_left_out_and_counted_not_crashes() -> None:
    spans = make_spans(
        [
            (
                "r",
                None,
                0,
                S,
                {
                    "attributes": {
                        "gen_ai.latency.time_to_first_token": "soon",
                        "gen_ai.usage.output_tokens": -4,
                        "gen_ai.latency.e2e": "NaN",
                        "gen_ai.usage.input_tokens": [1, 2],
                    }
                },
            )
        ]
    )
    found = llm.llm_spans(spans)
    row = llm.with_metrics(found.frame).row(0, named=True)
    assert row["ttft_ns"] is None
    assert row["output_tokens"] is None
    assert row["e2e_ns"] is None
    assert row["e2e_req_ns"] == S
    assert found.unusable == {"ttft_ns": 1, "output_tokens": 1, "e2e_ns": 1, "input_tokens": 1}


def test_every_marker_key_passes_the_cheap_first_filter() -> None:
    texts = pl.Series([f'{{"{key}": 1}}' for key in llm.MARKER_KEYS])
    assert pl.select(llm.mentions_llm(pl.lit(texts))).to_series().all()


def test_derived_stages_are_laid_out_in_time_and_clipped_to_the_span() -> None:
    # queue 10, prefill 30, decode 80 in a span [100, 200]: decode is cut at 200
    spans = make_spans(
        [
            (
                "r",
                None,
                100 * MS,
                200 * MS,
                {
                    "attributes": vllm(
                        {
                            "time_in_queue": 0.010,
                            "time_in_model_prefill": 0.030,
                            "time_in_model_decode": 0.080,
                        }
                    ),
                    "service": "vllm",
                },
            )
        ]
    )
    made = llm_stages.derived_stages(spans, llm.llm_spans(spans).frame, schema=SPAN_SCHEMA)
    rows = {r["name"]: r for r in made.iter_rows(named=True)}
    assert {n: (r["start_ns"] // MS, r["end_ns"] // MS) for n, r in rows.items()} == {
        "queue": (100, 110),
        "prefill": (110, 140),
        "decode": (140, 200),
    }
    assert {r["parent_id"] for r in rows.values()} == {"r"}
    assert {r["service"] for r in rows.values()} == {"vllm"}
    assert {r["attributes"] for r in rows.values()} == {llm_stages.DERIVED_STAGE_MARK}


def test_a_missing_stage_time_starts_the_next_stage_earlier_and_past_the_end_none() -> None:
    spans = make_spans(
        [
            (
                "r",
                None,
                0,
                50 * MS,
                {
                    "attributes": vllm(
                        {
                            "time_in_model_prefill": 0.030,
                            "time_in_model_decode": 0.010,
                            "time_in_queue": 0.0,
                        }
                    )
                },
            ),
            (
                "late",
                None,
                0,
                5 * MS,
                {"attributes": vllm({"time_in_queue": 0.005, "time_in_model_decode": 0.5})},
            ),
        ]
    )
    made = llm_stages.derived_stages(spans, llm.llm_spans(spans).frame, schema=SPAN_SCHEMA)
    got = {
        (r["parent_id"], r["name"]): (r["start_ns"] // MS, r["end_ns"] // MS)
        for r in made.iter_rows(named=True)
    }
    # zero-length queue: no span; prefill from the start
    assert got == {("r", "prefill"): (0, 30), ("r", "decode"): (30, 40), ("late", "queue"): (0, 5)}


def test_no_derived_stages_under_a_span_whose_children_cover_the_time() -> None:
    times = vllm({"time_in_queue": 0.010, "time_in_model_decode": 0.050})
    spans = make_spans(
        [
            ("covered", None, 0, 100 * MS, {"attributes": times}),
            ("child", "covered", 20 * MS, 40 * MS),
            ("free", None, 0, 100 * MS, {"attributes": times}),
            ("after", "free", 70 * MS, 90 * MS),  # past the stages' 60 ms: no overlap
        ]
    )
    made = llm_stages.derived_stages(spans, llm.llm_spans(spans).frame, schema=SPAN_SCHEMA)
    assert set(made.get_column("parent_id")) == {"free"}


def test_client_and_server_spans_of_one_request_count_once() -> None:
    client = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 11,
    }
    server = vllm(
        {"e2e": 1.0, "time_to_first_token": 0.1},
        **{"gen_ai.usage.prompt_tokens": 100, "gen_ai.usage.completion_tokens": 11},
    )
    spans = make_spans(
        [
            ("root", None, 0, 2 * S),
            ("client", "root", 0, int(1.5 * S), {"attributes": client, "status": "error"}),
            ("hop", "client", 0, int(1.4 * S)),  # a proxy between them
            ("server", "hop", 0, int(1.2 * S), {"attributes": server}),
            ("alone", "root", 0, S, {"attributes": client}),  # another call, no server span
        ]
    )
    found = llm.llm_spans(spans)
    reqs = llm.requests(found.frame, spans)
    rows = {r["span_id"]: r for r in reqs.iter_rows(named=True)}
    assert set(rows) == {"server", "alone"}
    server_row = rows["server"]
    assert server_row["e2e_req_ns"] == S  # the server's numbers
    assert server_row["client_e2e_ns"] == int(1.5 * S)
    assert server_row["operation"] == "chat"
    assert server_row["model"] == "m"
    assert server_row["paired"]
    assert server_row["error"]
    assert server_row["tpot_ns"] == pytest.approx(90 * MS)
    assert not rows["alone"]["paired"]
    assert rows["alone"]["client_e2e_ns"] is None
    assert reqs.get_column("output_tokens").sum() == 22  # not 33: counted once


def test_a_parent_cycle_does_not_hang_the_ancestor_walk() -> None:
    attrs = {"gen_ai.usage.output_tokens": 2}
    spans = make_spans(
        [
            ("a", "b", 0, S, {"attributes": attrs}),
            ("b", "c", 0, S),
            ("c", "a", 0, S, {"attributes": attrs}),
        ]
    )
    found = llm.llm_spans(spans)
    nearest = llm.nearest_llm_ancestors(found.frame, spans)
    assert sorted(nearest.rows()) == [("t1", "a", "c"), ("t1", "c", "a")]


def test_attribute_values_reads_both_forms_escapes_and_the_resource() -> None:
    frame = pl.DataFrame(
        {
            "attributes": [
                '[{"key":"gen_ai.request.model","value":{"stringValue":"a\\"b\\u00e9"}},'
                '{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]',
                '{"ttft_ms": 1.5, "gen_ai.request.model": "plain", "other": "ttft_ms"}',
                '{"gen_ai.response.finish_reasons": ["length", "stop"]}',
                "{}",
            ],
            "resource": pl.Series(
                [None, None, None, '{"gen_ai.request.model": "from-resource"}'],
                dtype=pl.Categorical(),
            ),
        }
    )
    got = llm.attribute_values(
        frame,
        {
            "m": "gen_ai.request.model",
            "i": "gen_ai.usage.input_tokens",
            "t": "ttft_ms",
            "f": "gen_ai.response.finish_reasons",
        },
    )
    assert got.get_column("m").to_list() == ['a"bé', "plain", None, "from-resource"]
    assert got.get_column("i").to_list() == ["12", None, None, None]
    assert got.get_column("t").to_list() == [None, "1.5", None, None]
    assert pl.select(llm.first_reason(pl.lit(got.get_column("f")))).to_series().to_list() == [
        None,
        None,
        "length",
        None,
    ]
    assert got.columns == ["attributes", "resource", "m", "i", "t", "f"]


_TIMES = st.one_of(st.none(), st.integers(min_value=0, max_value=5_000))


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=10_000),
    length=st.integers(min_value=1, max_value=10_000),
    queue=_TIMES,
    prefill=_TIMES,
    decode=_TIMES,
)
def test_derived_stages_tile_the_start_of_their_span(
    start: int, length: int, queue: int | None, prefill: int | None, decode: int | None
) -> None:
    # times in µs on the span, written as vLLM's seconds
    attrs = {
        f"gen_ai.latency.{key}": value / 1e6
        for key, value in (
            ("time_in_queue", queue),
            ("time_in_model_prefill", prefill),
            ("time_in_model_decode", decode),
        )
        if value is not None
    }
    if not attrs:
        attrs = {"gen_ai.usage.output_tokens": 3}
    spans = make_spans([("r", None, start, start + length, {"attributes": attrs})], scale=1000)
    made = llm_stages.derived_stages(spans, llm.llm_spans(spans).frame, schema=SPAN_SCHEMA)
    rows = sorted(made.iter_rows(named=True), key=lambda r: r["start_ns"])
    span_start, span_end = start * 1000, (start + length) * 1000
    # in order, back to back from the span's start, inside the span, none empty
    cursor = span_start
    for row in rows:
        assert row["start_ns"] == cursor
        assert span_start <= row["start_ns"] < row["end_ns"] <= span_end
        assert row["duration_ns"] == row["end_ns"] - row["start_ns"]
        cursor = row["end_ns"]
    expected = {
        name
        for name, value in (("queue", queue), ("prefill", prefill), ("decode", decode))
        if value
    }
    laid = 0
    for name, value in (("queue", queue), ("prefill", prefill), ("decode", decode)):
        if value and laid * 1000 < length * 1000:
            laid += value
        elif value:
            expected.discard(name)  # starts at or after the span's end: clipped away
    assert {r["name"] for r in rows} == expected


def test_the_server_span_without_an_e2e_attribute_uses_its_own_duration() -> None:
    spans = make_spans(
        [
            ("client", None, 0, 3 * S, {"attributes": {"gen_ai.latency.e2e": 2.9,
                                                       "gen_ai.usage.output_tokens": 5}}),
            ("server", "client", 0, 2 * S, {"attributes": {"gen_ai.usage.completion_tokens": 5}}),
        ]
    )  # fmt: skip
    (row,) = llm.requests(llm.llm_spans(spans).frame, spans).iter_rows(named=True)
    assert row["span_id"] == "server"
    assert row["e2e_req_ns"] == 2 * S
    assert row["client_e2e_ns"] == int(2.9 * S)
    assert row["output_tps"] == pytest.approx(2.5)
