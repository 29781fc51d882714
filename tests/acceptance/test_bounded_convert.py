"""`convert --dataset` beyond the memory budget (ingest/bounded_convert.py): written a group of
traces at a time, the dataset is the one a conversion read at once writes, file for file."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.ingest import bounded
from ml_tracelens.ingest.bounded_convert import groups_for
from ml_tracelens.ingest.inputs import resolve
from ml_tracelens.readers import dataset
from tests.acceptance.test_bounded import SOURCES as GROUPED_SOURCES
from tests.conftest import SAMPLE_DATA

runner = CliRunner()
#: Below the smallest source: each is converted in several groups (a group is a quarter).
SMALL_BUDGET = "400K"
SOURCES = {
    **GROUPED_SOURCES,
    # The same dump twice: every span a duplicate, merged.
    "twice": [SAMPLE_DATA / "traces.otlp.jsonl", SAMPLE_DATA / "traces.otlp.jsonl"],
}


def convert(
    monkeypatch: pytest.MonkeyPatch, budget: str | None, directory: Path, *paths: Path
) -> str:
    if budget is None:
        monkeypatch.delenv(bounded.BUDGET_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(bounded.BUDGET_VARIABLE, budget)
    result = runner.invoke(app, ["convert", *map(str, paths), "--dataset", str(directory)])
    assert result.exit_code == 0, result.stderr
    return result.stderr.replace(str(directory), "DATASET")


def files(directory: Path) -> dict[str, pl.DataFrame]:
    return {
        str(p.relative_to(directory)): pl.read_parquet(p)
        for p in sorted(directory.rglob("part-*.parquet"))
    }


def assert_same_dataset(a: Path, b: Path, *, dense: bool = True) -> None:
    manifest_a, manifest_b = dataset.read_manifest(a), dataset.read_manifest(b)
    assert manifest_a == manifest_b
    files_a, files_b = files(a), files(b)
    assert files_a.keys() == files_b.keys()
    for name, frame in files_a.items():
        other = files_b[name]
        if dense:
            assert frame.equals(other), name
        else:
            # Merged duplicates leave their numbers out: the same rows, in the same order.
            assert frame.drop("_seq").equals(other.drop("_seq")), name


@pytest.mark.parametrize("source", SOURCES)
def test_converted_in_groups_is_the_dataset_converted_at_once(
    source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = SOURCES[source]
    if not all(p.exists() for p in paths):
        pytest.skip(f"{source}: fixture missing")
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, SMALL_BUDGET)
    groups = groups_for(resolve([str(p) for p in paths]), dataset.DEFAULT_BUCKETS)
    assert groups is not None
    assert groups > 1
    assert dataset.DEFAULT_BUCKETS % groups == 0
    at_once = convert(monkeypatch, None, tmp_path / "at-once", *paths)
    in_groups = convert(monkeypatch, SMALL_BUDGET, tmp_path / "in-groups", *paths)
    assert in_groups == at_once  # the same warnings and counts
    assert_same_dataset(tmp_path / "at-once", tmp_path / "in-groups", dense=source != "twice")


def test_appending_after_merged_duplicates_keeps_the_reading_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    otlp, logs = SAMPLE_DATA / "traces.otlp.jsonl", SAMPLE_DATA / "app.log.jsonl"
    copy = tmp_path / "copy.otlp.jsonl"
    copy.write_bytes(otlp.read_bytes())
    for budget, name in ((None, "at-once"), (SMALL_BUDGET, "in-groups")):
        convert(monkeypatch, budget, tmp_path / name, otlp, copy)
        convert(monkeypatch, budget, tmp_path / name, logs)
    assert_same_dataset(tmp_path / "at-once", tmp_path / "in-groups", dense=False)
    # Numbered after every row before it: no two rows share a number.
    seq = pl.concat(
        [f.select("_seq") for f in files(tmp_path / "in-groups").values()], how="vertical"
    ).get_column("_seq")
    assert seq.n_unique() == seq.len()
    monkeypatch.delenv(bounded.BUDGET_VARIABLE)
    for command in ("latency", "show"):
        args = [command, *(["req-eaf584"] if command == "show" else [])]
        reports = [
            runner.invoke(app, [*args, str(tmp_path / d), "--format", "json", "-q"]).stdout
            for d in ("at-once", "in-groups")
        ]
        assert reports[0] == reports[1].replace("in-groups", "at-once")


def test_a_dataset_among_the_inputs_is_read_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    convert(monkeypatch, None, tmp_path / "first", SAMPLE_DATA / "traces.otlp.jsonl")
    monkeypatch.setenv(bounded.BUDGET_VARIABLE, SMALL_BUDGET)
    assert groups_for(resolve([str(tmp_path / "first")]), 64) is None


def test_strict_refuses_a_bad_stage_line_in_groups_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lines = (SAMPLE_DATA / "stages.log.jsonl").read_text().splitlines()
    record = json.loads(lines[3])
    duration_key = next(k for k in record if "duration" in k or k.endswith("_ms"))
    record[duration_key] = -5
    lines[3] = json.dumps(record)
    dump = tmp_path / "stages.log.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    outcomes = []
    for budget in (None, SMALL_BUDGET):
        if budget is None:
            monkeypatch.delenv(bounded.BUDGET_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(bounded.BUDGET_VARIABLE, budget)
        target = tmp_path / f"dataset-{budget}"
        result = runner.invoke(app, ["convert", str(dump), "--dataset", str(target), "--strict"])
        outcomes.append((result.exit_code, result.stderr))
        assert not dataset.is_dataset(target)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] != 0
