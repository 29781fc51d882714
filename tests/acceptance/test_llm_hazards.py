"""LLM dumps mutated (the fuzzer's mutations of tests/acceptance/_fuzz_mutations.py) and LLM
attributes of every wrong type: `llm`, LLM budgets and `show` give a report or a one-line error,
never a traceback, a hang or an escaped exception (tests/_robustness.py checks each call)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from tests._robustness import run_cli
from tests.acceptance._fuzz_mutations import mutate
from tests.conftest import SAMPLE_DATA
from tests.factories import otlp_span, write_otlp_lines

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _seeds() -> list[bytes]:
    otlp = (SAMPLE_DATA / "llm.otlp.jsonl").read_bytes().split(b"\n")[:2]
    logs = (SAMPLE_DATA / "llm.log.jsonl").read_bytes().split(b"\n")[:20]
    return [b"\n".join(otlp) + b"\n", b"\n".join(logs) + b"\n"]


@pytest.mark.parametrize("number", range(24))
def test_mutated_llm_dumps_never_crash(number: int, tmp_path: Path) -> None:
    rng = random.Random(f"llm:{number}")
    seeds = _seeds()
    seed = seeds[number % 2]
    data, names, gzipped = mutate(rng, seed, [s for s in seeds if s is not seed])
    path = tmp_path / ("case.jsonl.gz" if gzipped else "case.jsonl")
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
    commands = [
        ["llm", str(path), "--format", rng.choice(("table", "json", "csv", "markdown"))],
        ["llm", str(path), "--by", "operation,attr.gen_ai.request.max_tokens", "--no-cache"],
        ["check", str(path), "--budget", "llm.ttft.p95<1s", "--budget", "x:llm.queue_share<5%"],
        ["latency", str(path), "--no-derived-stages"],
    ]
    problems = [p for args in commands for p in run_cli(args).problems]
    assert not problems, (names, problems)


WRONG_VALUES = [
    "soon", "", " ", "1e999", "-0.5", "NaN", "Infinity", True, False, None, [], [1, "a"],
    {"k": 1}, 10**30, -(10**30), "\x1b[31mred", "0x1f", "1_000",
]  # fmt: skip


@pytest.mark.parametrize("value", WRONG_VALUES, ids=repr)
def test_every_llm_attribute_of_a_wrong_type_is_ignored(value: object, tmp_path: Path) -> None:
    keys = (
        "gen_ai.latency.time_to_first_token", "gen_ai.latency.time_in_queue",
        "gen_ai.latency.time_in_model_prefill", "gen_ai.latency.time_in_model_decode",
        "gen_ai.latency.e2e", "gen_ai.usage.output_tokens", "gen_ai.usage.input_tokens",
        "gen_ai.response.model", "gen_ai.response.finish_reasons", "gen_ai.operation.name",
    )  # fmt: skip
    attributes = {key: value for key in keys if value is not None}
    attributes["gen_ai.usage.prompt_tokens"] = 3  # one usable marker
    spans = [
        otlp_span(TRACE, "b7ad6b7169203331", None, "chat", 10**18, 10**18 + 10**9),
        otlp_span(
            TRACE,
            "c7ad6b7169203332",
            "b7ad6b7169203331",
            "llm_request",
            10**18,
            10**18 + 10**9,
            attributes=attributes,
        ),
    ]
    path = write_otlp_lines(tmp_path / "odd.jsonl", [spans])
    for args in (
        ["llm", str(path), "--format", "json"],
        ["check", str(path), "--budget", "llm.tpot.p50<1s"],
        ["show", TRACE, str(path)],
        ["diff", str(path), str(path), "--bootstrap", "100"],
    ):
        outcome = run_cli(args)
        assert not outcome.problems, (args, outcome.problems)
        # A value past int64 makes the OTLP reader skip the span (warned): then no LLM span is
        # left, which is said in one line.
        no_llm = outcome.exit_code == 2 and "no LLM request spans" in outcome.stderr
        assert outcome.exit_code in (0, 1) or no_llm, (args, outcome.stderr)
        assert "\x1b[31m" not in outcome.stdout
