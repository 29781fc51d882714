"""`--since`, `--until` and `--service` pushed down to a dataset's reads: only the traces holding
a span the filters keep are read, each whole, so the filtered reports are those of the dumps;
the spans left out are counted, never lost without a word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import api
from ml_tracelens.cli import app
from ml_tracelens.ingest import bounded
from ml_tracelens.readers import dataset
from tests.acceptance.test_dataset import convert_each
from tests.conftest import SAMPLE_DATA, SHARED_FIXTURES
from tests.factories import MS, T0, otlp_document, otlp_span, sid, write_jsonl

runner = CliRunner()
SOURCES = {
    "otlp": [SAMPLE_DATA / "traces.otlp.jsonl"],
    "llm": [SAMPLE_DATA / "llm.otlp.jsonl"],
    "demo": [SHARED_FIXTURES / "otlp" / "otel-demo-capture.otlp.jsonl"],
    # Stage log lines become spans, which the span table cannot tell of: read whole.
    "traces-and-stage-logs": [SAMPLE_DATA / "traces.otlp.jsonl", SAMPLE_DATA / "stages.log.jsonl"],
}
FILTERS = {
    "since": ("--since", "30s"),
    "until-iso": ("--until", "2026-03-02T09:00:10Z"),
    "service": ("--service", "profile-db"),
    "since-and-service": ("--since", "40s", "--service", "model-server"),
    "until-relative": ("--until", "20s"),
}
#: The commands that push filters down; others read a dataset whole (llm counts the stage
#: spans added to what it read, report and traces every trace).
COMMANDS = ("latency", "errors", "bottlenecks")


def run(*args: str) -> tuple[int, Any]:
    result = runner.invoke(app, [*args, "--format", "json", "--no-cache", "-q"])
    return result.exit_code, json.loads(result.stdout) if result.stdout else None


def answers(document: Any) -> Any:
    """The report without what says how much was read: its inputs and the warnings about
    the traces read."""
    return {k: v for k, v in document.items() if k not in ("inputs", "warnings")}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(SOURCES, tmp_path_factory)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("source", SOURCES)
def test_filtered_reports_on_the_dataset_are_those_on_the_dumps(
    datasets: dict[str, Path], source: str, filters: str, command: str
) -> None:
    if source not in datasets:
        pytest.skip(f"{source}: fixture missing")
    on_dumps = run(command, *map(str, SOURCES[source]), *FILTERS[filters])
    on_dataset = run(command, str(datasets[source]), *FILTERS[filters])
    assert on_dataset[0] == on_dumps[0]
    if on_dumps[0] in (0, 1):
        assert answers(on_dataset[1]) == answers(on_dumps[1])
        # Every span of the dataset read, or counted as left out.
        block = on_dataset[1]["inputs"][0]
        left_out = block["ignored"].get(dataset.LEFT_OUT, 0)
        assert block["spans"] + left_out == dataset.read_manifest(datasets[source]).spans


@pytest.mark.parametrize(
    "pushdown",
    [{"since": "30s"}, {"until": "2026-03-02T09:00:10Z"}, {"services": ["model-server"]}],
)
def test_only_the_traces_the_filters_keep_a_span_of_are_read(
    datasets: dict[str, Path], pushdown: api.SpanFilters
) -> None:
    whole = api.load(datasets["otlp"], cache=False)
    read = api.load(datasets["otlp"], cache=False, pushdown=pushdown)
    assert read.spans.height < whole.spans.height
    assert api.latency(read, **pushdown).rows.equals(api.latency(whole, **pushdown).rows)
    # The traces read are whole: every span of theirs is read.
    traces = read.spans.get_column("trace_id").unique().implode()
    assert whole.spans.filter(pl.col("trace_id").is_in(traces)).height == read.spans.height


def test_commands_that_count_every_trace_read_the_dataset_whole(
    datasets: dict[str, Path],
) -> None:
    for command in ("traces", "llm"):
        code, document = run(command, str(datasets["llm"]), *FILTERS["since"])
        assert code == 0
        assert dataset.LEFT_OUT not in document["inputs"][0]["ignored"]


def test_stage_logs_keep_the_spans_whole(datasets: dict[str, Path]) -> None:
    directory = datasets["traces-and-stage-logs"]
    whole = api.load(directory, cache=False)
    read = api.load(directory, cache=False, pushdown={"since": "30s"})
    assert read.spans.height == whole.spans.height


def test_a_time_back_from_the_end_counts_from_the_last_span_even_when_its_trace_is_not_kept(
    tmp_path: Path,
) -> None:
    # Trace a ends last (100 s) but starts first; trace b lies in 50-60 s. --since 45s is
    # 55 s: b's late span is kept. Read without a, the end would be 60 s and the bound 15 s.
    spans = [
        otlp_span("a" * 32, sid(0), None, "long", T0, T0 + 100_000 * MS),
        otlp_span("b" * 32, sid(1), None, "request", T0 + 50_000 * MS, T0 + 60_000 * MS),
        otlp_span("b" * 32, sid(2), sid(1), "late", T0 + 56_000 * MS, T0 + 59_000 * MS),
        otlp_span("c" * 32, sid(3), None, "early", T0 + 10_000 * MS, T0 + 20_000 * MS),
    ]
    dump = write_jsonl(tmp_path / "dump.jsonl", [otlp_document(spans)])
    directory = tmp_path / "dataset"
    converted = runner.invoke(app, ["convert", str(dump), "--dataset", str(directory), "-q"])
    assert converted.exit_code == 0, converted.stderr
    on_dump = run("latency", str(dump), "--since", "45s")
    on_dataset = run("latency", str(directory), "--since", "45s")
    assert answers(on_dataset[1]) == answers(on_dump[1])
    assert [r["stage"] for r in on_dataset[1]["rows"]] == ["late"]
    # Trace c has no kept span and does not end last: left out.
    assert on_dataset[1]["inputs"][0]["ignored"] == {dataset.LEFT_OUT: 1}


def test_pushed_down_in_groups_beyond_the_budget(
    datasets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = datasets["otlp"]
    filters = FILTERS["since-and-service"]
    on_dump = run("latency", *map(str, SOURCES["otlp"]), *filters)
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, "200K")
    in_groups = run("latency", str(directory), *filters)
    assert answers(in_groups[1]) == answers(on_dump[1])
    block = in_groups[1]["inputs"][0]
    assert block["ignored"][dataset.LEFT_OUT] > 0
    assert block["spans"] + block["ignored"][dataset.LEFT_OUT] == (
        dataset.read_manifest(directory).spans
    )
