"""The cache under other commands: a concurrent prune (issue 14, item 8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import cache, pipeline
from ml_tracelens.cli import app

DEMO = "otlp/otel-demo-capture.otlp.jsonl"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(directory))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    return directory


@pytest.fixture
def dump(shared_fixtures: Path, tmp_path: Path) -> Path:
    path = tmp_path / "dump.jsonl"
    path.write_bytes((shared_fixtures / DEMO).read_bytes())
    return path


def _key(dump: Path) -> str:
    key = cache.cache_key([str(dump)], input_format=None, options=pipeline.ReadOptions())
    assert key is not None
    return key


def _entry_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def _prune_everything(directory: Path) -> None:
    cache.prune(directory, max_bytes=0)
    assert not _entry_files(directory)


# --- readers survive a concurrent prune (item 8) ----------------------------------------------


def _pruned_after(function: Callable[..., Any], directory: Path) -> Callable[..., Any]:
    """``function``, followed by another command's prune of the whole cache."""

    def then_pruned(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        _prune_everything(directory)
        return result

    return then_pruned


@pytest.mark.parametrize(
    ("module", "step"),
    [
        (cache, "_entry"),  # the record is read, the data files are not yet
        (pipeline, "load_cached_or_raw"),  # the scans are set up, the report queries them next
    ],
)
def test_show_survives_a_prune_of_the_entry_it_reads(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch, module: Any, step: str
) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["traces", str(dump), "-f", "json", "-q", "--no-cache"])
    trace_id = json.loads(listing.stdout)["rows"][0]["trace_id"]
    args = ["show", trace_id, str(dump), "-f", "json"]
    fresh = runner.invoke(app, [*args, "--no-cache"])
    pipeline.load_analysed([str(dump)])

    monkeypatch.setattr(module, step, _pruned_after(getattr(module, step), cache_dir))
    warm = runner.invoke(app, args)
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout


def test_a_scan_outlives_a_prune_of_its_entry(cache_dir: Path, dump: Path) -> None:
    telemetry, analysis = pipeline.load_analysed([str(dump)])
    hit = cache.scan(_key(dump))
    assert hit is not None
    _, spans, logs = hit
    _prune_everything(cache_dir)  # while the report is still querying the scans
    trace_id = analysis.spans["trace_id"][0]
    one_trace = spans.filter(pl.col("trace_id") == trace_id).collect()
    assert one_trace.equals(analysis.spans.filter(pl.col("trace_id") == trace_id))
    assert logs.collect().equals(telemetry.logs)


def test_load_survives_a_prune_between_the_record_and_the_data(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, expected = pipeline.load_analysed([str(dump)], use_cache=False)
    pipeline.load_analysed([str(dump)])
    monkeypatch.setattr(cache, "_entry", _pruned_after(cache._entry, cache_dir))
    assert cache.load(_key(dump)) is None
    _, analysis = pipeline.load_analysed([str(dump)])
    assert analysis.spans.equals(expected.spans)
