"""Inputs beyond the memory budget, analysed a group of traces at a time (ingest/bounded.py):
every report answers as it does on the inputs read at once, every line is accounted for the
same way, and datasets are read a group of buckets at a time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ml_tracelens import api
from ml_tracelens.cli import app
from ml_tracelens.exceptions import UsageError
from ml_tracelens.ingest import bounded
from ml_tracelens.ingest.inputs import resolve
from tests.conftest import SAMPLE_DATA, SHARED_FIXTURES

runner = CliRunner()
#: A budget that makes every sample several groups (a group is a quarter of it).
SMALL_BUDGET = "200K"
SOURCES = {
    "otlp": [SAMPLE_DATA / "traces.otlp.jsonl"],
    "logs": [SAMPLE_DATA / "app.log.jsonl"],
    "zipkin": [SAMPLE_DATA / "traces.zipkin.json"],
    "llm": [SAMPLE_DATA / "llm.otlp.jsonl"],
    "stage-and-app-logs": [SAMPLE_DATA / "stages.log.jsonl", SAMPLE_DATA / "app.log.jsonl"],
    "demo": [SHARED_FIXTURES / "otlp" / "otel-demo-capture.otlp.jsonl"],
}
COMMANDS: dict[str, tuple[str, ...]] = {
    "latency": ("latency",),
    "latency-where": ("latency", "--by", "service", "--where", "duration_ms > 5"),
    "latency-by-keys": ("latency", "--by", "service,kind,attr.model.version"),
    "errors": ("errors",),
    "bottlenecks": ("bottlenecks",),
    "summary": ("summary",),
    "why": ("why", "--slow", "p90", "--all"),
}


def report(args: list[str], monkeypatch: pytest.MonkeyPatch, budget: str | None) -> Any:
    if budget is None:
        monkeypatch.delenv(bounded.BUDGET_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(bounded.BUDGET_VARIABLE, budget)
    result = runner.invoke(app, [*args, "--format", "json", "--no-cache", "-q"])
    return result.exit_code, json.loads(result.stdout) if result.stdout else None


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-12 relative: groups sum the same values in another order."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_report_in_groups_is_the_report_read_at_once(
    source: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(p) for p in SOURCES[source]]
    if not all(Path(p).exists() for p in paths):
        pytest.skip(f"{source}: fixture missing")
    args = [COMMANDS[command][0], *paths, *COMMANDS[command][1:]]
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, SMALL_BUDGET)
    groups = bounded.plan(resolve(paths))
    assert groups is not None
    assert groups > 1
    at_once = report(args, monkeypatch, None)
    in_groups = report(args, monkeypatch, SMALL_BUDGET)
    assert in_groups[0] == at_once[0]
    # The inputs block too: every line read or skipped the same way.
    assert_same(in_groups[1], at_once[1])


def test_workers_read_ranges_and_analyse_groups_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A dump with unreadable lines, read in ranges by worker processes: the skipped lines keep
    # their place in the whole file.
    lines = (SAMPLE_DATA / "traces.otlp.jsonl").read_bytes().splitlines(keepends=True)
    lines[10] = b'{"resourceSpans": [ not json\n'
    lines[40] = b"\x00\x01 binary\n"
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(lines))
    monkeypatch.setenv("TRACELENS_PARALLEL_MIN_MB", "0.01")
    for command in ("summary", "latency", "errors"):
        at_once = report([command, str(dump)], monkeypatch, None)
        in_groups = report([command, str(dump)], monkeypatch, SMALL_BUDGET)
        assert_same(in_groups, at_once)
    warnings = " ".join(at_once[1]["warnings"])
    assert f"{dump}:11" in warnings
    assert at_once[1]["inputs"][0]["skipped"] == 2


def test_a_dataset_is_read_a_group_of_buckets_at_a_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dump = SAMPLE_DATA / "traces.otlp.jsonl"
    directory = tmp_path / "dataset"
    converted = runner.invoke(app, ["convert", str(dump), "--dataset", str(directory), "-q"])
    assert converted.exit_code == 0, converted.stderr
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, SMALL_BUDGET)
    groups = bounded.plan(resolve([str(directory)]))
    # A divisor of the 64 buckets: a trace's bucket decides its group.
    assert groups is not None
    assert groups > 1
    assert 64 % groups == 0
    for command in ("latency", "bottlenecks", "errors"):
        on_dump = report([command, str(dump)], monkeypatch, None)
        on_dataset = report([command, str(directory)], monkeypatch, SMALL_BUDGET)
        on_dump[1].pop("inputs")
        on_dataset[1].pop("inputs")
        assert_same(on_dataset, on_dump)


def test_inputs_within_the_budget_are_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bounded.BUDGET_VARIABLE, raising=False)
    assert bounded.plan(resolve([str(SAMPLE_DATA / "traces.otlp.jsonl")])) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("512M", 512 * 2**20),
        ("2G", 2 * 2**30),
        ("1.5 GiB", 3 * 2**29),
        ("64k", 2**16),
    ],
)
def test_the_budget_reads_sizes(text: str, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, text)
    assert bounded.memory_budget() == size


def test_a_budget_that_is_no_size_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, "lots")
    with pytest.raises(UsageError, match="512M"):
        bounded.memory_budget()
    result = runner.invoke(app, ["latency", str(SAMPLE_DATA / "traces.otlp.jsonl"), "--no-cache"])
    assert result.exit_code == 2
    assert "TRACELENS_MEMORY_BUDGET" in result.stderr


def test_a_dataset_and_a_dump_together_are_grouped_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The dataset's buckets and the dump's spilled traces meet in the same groups: a trace
    # whose spans are in both (here: the same requests twice, merged as duplicates) is whole.
    otlp, logs = SAMPLE_DATA / "traces.otlp.jsonl", SAMPLE_DATA / "app.log.jsonl"
    directory = tmp_path / "dataset"
    converted = runner.invoke(app, ["convert", str(otlp), "--dataset", str(directory), "-q"])
    assert converted.exit_code == 0, converted.stderr
    for command in ("latency", "errors", "summary"):
        at_once = report([command, str(directory), str(logs), str(otlp)], monkeypatch, None)
        in_groups = report([command, str(directory), str(logs), str(otlp)], monkeypatch, "300K")
        assert_same(in_groups, at_once)
    # Every span of the dump is also in the dataset: each is merged once, and said once.
    read = next(i["spans"] for i in in_groups[1]["inputs"] if i["path"] == str(otlp))
    merged = [w for w in in_groups[1]["warnings"] if "duplicate spans" in w]
    assert merged == [f"{read:,} duplicate spans (identical content) merged"]


def test_latency_summaries_give_the_report_of_the_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    # Beyond the budget the latency command keeps parts of each group, not spans: the report,
    # its distributions (the terminal's sparklines, the HTML histograms) included, is the one
    # the spans give.
    paths = [str(SAMPLE_DATA / "traces.otlp.jsonl"), str(SAMPLE_DATA / "stages.log.jsonl")]
    by = ("stage", "attr.model.version")
    monkeypatch.delenv(bounded.BUDGET_VARIABLE, raising=False)
    at_once = api.latency(api.load(paths, cache=False), by=by, distribution=True)
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, SMALL_BUDGET)
    loaded = api.load(paths, cache=False, summarise=api.LatencySummarise(by))
    assert loaded.spans.is_empty()
    assert len(loaded.analysis.summaries) > 1
    in_groups = api.latency(loaded, by=by, distribution=True)
    assert_same(json.loads(in_groups.to_json()), json.loads(at_once.to_json()))
    assert in_groups.report.view == at_once.report.view
    with pytest.raises(UsageError, match="without summarise"):
        api.latency(loaded, by=by, services=["gateway"])
    with pytest.raises(UsageError, match="summaries were taken by"):
        api.latency(loaded, by="service")


def test_a_bad_grouping_is_refused_before_reading() -> None:
    with pytest.raises(UsageError, match=r"attr\.KEY"):
        api.LatencySummarise(("nonsense",))
