from __future__ import annotations

import json
import os
import stat
from pathlib import Path

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


def _entries(directory: Path) -> set[str]:
    return {p.name.split(".")[0] for p in directory.iterdir() if not p.name.startswith(".")}


def test_second_load_is_a_hit_with_identical_results(cache_dir: Path, dump: Path) -> None:
    telemetry, analysis = pipeline.load_analysed([str(dump)])
    assert len(_entries(cache_dir)) == 1
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    hit = cache.load(
        cache.cache_key([str(dump)], input_format=None, options=pipeline.ReadOptions())
    )
    assert hit is not None
    cached_telemetry, cached_analysis = hit
    assert cached_analysis.spans.equals(analysis.spans)
    assert cached_telemetry.logs.equals(telemetry.logs)
    assert cached_analysis.structure == analysis.structure
    assert cached_telemetry.inputs == telemetry.inputs


def test_changed_file_or_version_is_never_served_stale(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = pipeline.ReadOptions()
    first = cache.cache_key([str(dump)], input_format=None, options=options)
    pipeline.load_analysed([str(dump)])
    # Same size, different content and mtime: a different key, and the new content is read.
    lines = dump.read_bytes().splitlines(keepends=True)
    dump.write_bytes(b"".join(lines[:10]))
    os.utime(dump, ns=(1, 1))
    second = cache.cache_key([str(dump)], input_format=None, options=options)
    assert second != first
    telemetry, _ = pipeline.load_analysed([str(dump)])
    assert telemetry.spans.height < 547
    monkeypatch.setattr(cache, "__version__", "999.0")
    assert cache.cache_key([str(dump)], input_format=None, options=options) not in (first, second)


def test_unwritable_cache_never_fails_a_command(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    result = CliRunner().invoke(app, ["latency", str(dump), "-f", "json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"]


def test_no_cache_and_small_inputs_skip_the_cache(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "c"
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(directory))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    CliRunner().invoke(app, ["summary", str(dump), "-q", "--no-cache"])
    assert not directory.exists()
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "100")
    CliRunner().invoke(app, ["summary", str(dump), "-q"])
    assert not directory.exists()
    assert cache.cache_key(["-"], input_format=None, options=pipeline.ReadOptions()) is None


def test_prune_keeps_the_cache_under_its_limit(cache_dir: Path, dump: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_bytes(dump.read_bytes())
    pipeline.load_analysed([str(dump)])
    pipeline.load_analysed([str(other)])
    assert len(_entries(cache_dir)) == 2
    cache.prune(cache_dir, max_bytes=1)
    assert len(_entries(cache_dir)) == 0


def test_load_without_heavy_columns_leaves_them_on_disk(cache_dir: Path, dump: Path) -> None:
    _, analysis = pipeline.load_analysed([str(dump)])
    key = cache.cache_key([str(dump)], input_format=None, options=pipeline.ReadOptions())
    hit = cache.load(key, without=pipeline.HEAVY_COLUMNS)
    assert hit is not None
    telemetry, lean = hit
    assert not set(pipeline.HEAVY_COLUMNS) & set(lean.spans.columns)
    assert not set(pipeline.HEAVY_COLUMNS) & set(telemetry.spans.columns)
    assert lean.spans.equals(analysis.spans.drop(pipeline.HEAVY_COLUMNS))


def test_scan_reads_the_same_rows_lazily(cache_dir: Path, dump: Path) -> None:
    telemetry, analysis = pipeline.load_analysed([str(dump)])
    key = cache.cache_key([str(dump)], input_format=None, options=pipeline.ReadOptions())
    hit = cache.scan(key)
    assert hit is not None
    read, spans, logs = hit
    assert read.inputs == telemetry.inputs
    assert read.spans.is_empty()
    assert read.spans.columns == telemetry.spans.columns
    assert spans.collect().equals(analysis.spans)
    assert logs.collect().equals(telemetry.logs)


@pytest.mark.parametrize(
    "args",
    [
        ["latency", "-f", "json"],
        ["latency", "-f", "json", "--by", "service,attr.http.method"],
        ["latency", "-f", "json", "--where", "attr.http.method IS NOT NULL"],
        ["latency", "-f", "csv", "--where", "duration_ms > 1", "--service", "frontend"],
        ["errors", "-f", "json"],
        ["bottlenecks", "-f", "json"],
        ["summary", "-f", "json"],
        ["traces", "-f", "json", "--errors"],
    ],
)
def test_warm_cache_answers_exactly_as_a_fresh_read(
    cache_dir: Path, dump: Path, args: list[str]
) -> None:
    runner = CliRunner()
    fresh = runner.invoke(app, [*args, str(dump), "-q", "--no-cache"])
    assert fresh.exit_code == 0, fresh.stderr
    runner.invoke(app, ["summary", str(dump), "-q"])  # fills the cache
    assert _entries(cache_dir)
    warm = runner.invoke(app, [*args, str(dump), "-q"])
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout


def test_show_from_the_cache_matches_a_fresh_read(cache_dir: Path, dump: Path) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["traces", str(dump), "-f", "json", "-q", "--no-cache"])
    rows = json.loads(listing.stdout)["rows"]
    trace_id = rows[0]["trace_id"]
    correlated = next((r for r in rows if r["correlation_id"]), None)
    idents = [trace_id, trace_id[:10].upper(), "no-such-request"]
    if correlated is not None:
        idents.append(correlated["correlation_id"])
    fresh = {
        i: runner.invoke(app, ["show", i, str(dump), "-f", "json", "--no-cache"]) for i in idents
    }
    runner.invoke(app, ["summary", str(dump), "-q"])  # fills the cache
    assert _entries(cache_dir)
    for ident, expected in fresh.items():
        warm = runner.invoke(app, ["show", ident, str(dump), "-f", "json"])
        assert warm.exit_code == expected.exit_code, (ident, warm.stderr)
        assert warm.stdout == expected.stdout, ident
        assert warm.stderr == expected.stderr, ident
    assert fresh["no-such-request"].exit_code == 2
