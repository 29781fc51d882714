from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import limits
from ml_tracelens.cli import app
from ml_tracelens.ingest import cache, pipeline
from ml_tracelens.readers.base import Pushdown


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


def _key(dump: Path, *, input_format: str | None = None, **options: object) -> str | None:
    return cache.cache_key(
        [str(dump)], input_format=input_format, options=pipeline.ReadOptions(**options)
    )


# --- the key holds everything that changes what is read (issue 14, item 5) ---------------------


def test_raising_a_limit_reads_the_dump_again(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    # Some of the fixture's lines (metrics documents) nest deeper than 8 levels.
    monkeypatch.setenv("TRACELENS_MAX_JSON_DEPTH", "8")
    shallow = runner.invoke(app, ["summary", str(dump), "-f", "json", "-q"])
    assert json.loads(shallow.stdout)["skipped_lines"] > 0
    assert _entries(cache_dir)
    monkeypatch.delenv("TRACELENS_MAX_JSON_DEPTH")
    fresh = runner.invoke(app, ["summary", str(dump), "-f", "json", "-q", "--no-cache"])
    assert json.loads(fresh.stdout)["skipped_lines"] == 0
    warm = runner.invoke(app, ["summary", str(dump), "-f", "json", "-q"])
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout


@pytest.mark.parametrize("limit", [f.name for f in dataclasses.fields(limits.Limits)])
def test_every_reading_limit_is_in_the_key(cache_dir: Path, dump: Path, limit: str) -> None:
    default = _key(dump)
    assert default is not None
    limits.configure(**{limit: getattr(limits.current(), limit) + 1})
    try:
        assert _key(dump) != default
    finally:
        limits.configure()
    assert _key(dump) == default


OPTION_CHANGES: list[dict[str, object]] = [
    {"strict": True},
    {"field_map": {"time": "ts"}},
    {"log_time": "start"},
    {"derived_stages": False},
]


#: Read options that do not change what a dump gives: only dataset reads look at them, and
#: datasets are not cached.
NOT_IN_THE_KEY = {"pushdown"}


def test_every_read_option_has_a_key_test() -> None:
    changed = {name for change in OPTION_CHANGES for name in change}
    assert changed | NOT_IN_THE_KEY == {f.name for f in dataclasses.fields(pipeline.ReadOptions)}


def test_filters_pushed_down_are_not_in_the_key(cache_dir: Path, dump: Path) -> None:
    # `latency --since 10m` on a dump is served by the entry `latency` wrote.
    assert _key(dump, pushdown=Pushdown(since="10m", services=("api",))) == _key(dump)


@pytest.mark.parametrize("change", OPTION_CHANGES)
def test_every_read_option_is_in_the_key(
    cache_dir: Path, dump: Path, change: dict[str, object]
) -> None:
    assert _key(dump, **change) != _key(dump)


def test_input_format_is_in_the_key_and_parallel_reading_is_not(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _key(dump)
    assert _key(dump, input_format="otlp-json") != default
    # A parallel read gives the serial read's tables, so it may share the entry.
    monkeypatch.setenv("TRACELENS_WORKERS", "2")
    monkeypatch.setenv("TRACELENS_PARALLEL_MIN_MB", "0")
    assert _key(dump) == default


def test_field_map_order_does_not_change_the_key(cache_dir: Path, dump: Path) -> None:
    one = _key(dump, field_map={"time": "ts", "message": "msg"})
    other = _key(dump, field_map={"message": "msg", "time": "ts"})
    assert one == other


def test_an_invalid_limit_is_left_to_the_read_to_report(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACELENS_MAX_JSON_DEPTH", "deep")
    assert _key(dump) is None
    result = CliRunner().invoke(app, ["summary", str(dump), "-q"])
    assert result.exit_code == 2
    assert "TRACELENS_MAX_JSON_DEPTH" in result.stderr


# --- a file replaced by another of the same size and mtime (item 6) ----------------------------


@pytest.mark.parametrize("how", ["moved over it", "rewritten in place"])
def test_a_file_changed_behind_the_same_size_and_mtime_is_read_again(
    cache_dir: Path, dump: Path, how: str
) -> None:
    pipeline.load_analysed([str(dump)])
    before = dump.stat()
    content = dump.read_bytes()
    other = content.replace(b"frontend-proxy", b"frontend-prox2")
    assert other != content
    assert len(other) == len(content)
    if how == "moved over it":  # cp -p B tmp; mv tmp A
        staged = dump.with_name("staged.jsonl")
        staged.write_bytes(other)
        os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(staged, dump)
    else:
        dump.write_bytes(other)
        os.utime(dump, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = dump.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    _, served = pipeline.load_analysed([str(dump)])
    _, fresh = pipeline.load_analysed([str(dump)], use_cache=False)
    assert "frontend-prox2" in fresh.spans["service"].to_list()
    assert served.spans.equals(fresh.spans)


# --- damaged entries are a miss, removed and rewritten (item 7) --------------------------------


def _entry_file(directory: Path, suffix: str) -> Path:
    (path,) = [p for p in directory.iterdir() if p.name.endswith(suffix)]
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scramble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(range(64))
    path.write_bytes(bytes(data))


def _double_durations(path: Path) -> None:
    """Valid Parquet with other values: the damage that Parquet itself cannot notice."""
    frame = pl.read_parquet(path)
    doubled = [c for c in ("duration_ns", "self_ns", "cp_ns") if c in frame.columns]
    assert doubled
    frame = frame.with_columns(pl.col(c) * 2 for c in doubled)
    frame.write_parquet(path, compression="lz4", statistics=False)


def _change_a_count_in_the_record(path: Path) -> None:
    data = path.read_bytes()
    assert b'"spans":547' in data
    path.write_bytes(data.replace(b'"spans":547', b'"spans":947', 1))


DAMAGES = [
    (".spans.parquet", _truncate),
    (".spans.parquet", _double_durations),
    (".logs.parquet", _truncate),
    (".json", _change_a_count_in_the_record),
]


@pytest.mark.parametrize(("suffix", "damage"), DAMAGES)
@pytest.mark.parametrize("command", ["latency", "summary"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(
    cache_dir: Path,
    dump: Path,
    command: str,
    suffix: str,
    damage: Callable[[Path], None],
) -> None:
    runner = CliRunner()
    fresh = runner.invoke(app, [command, str(dump), "-f", "json", "-q", "--no-cache"])
    pipeline.load_analysed([str(dump)])
    damage(_entry_file(cache_dir, suffix))

    warm = runner.invoke(app, [command, str(dump), "-f", "json", "-q"])
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout
    hit = cache.load(_key(dump))
    assert hit is not None
    _, expected = pipeline.load_analysed([str(dump)], use_cache=False)
    assert hit[1].spans.equals(expected.spans)


@pytest.mark.parametrize(
    ("suffix", "damage"), [(".spans.parquet", _scramble), (".spans.parquet", _double_durations)]
)
def test_show_falls_back_to_the_dump_when_the_entry_is_damaged(
    cache_dir: Path, dump: Path, suffix: str, damage: Callable[[Path], None]
) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["traces", str(dump), "-f", "json", "-q", "--no-cache"])
    slowest = max(json.loads(listing.stdout)["rows"], key=lambda r: r["duration_ms"])
    args = ["show", slowest["trace_id"], str(dump), "-f", "json"]
    fresh = runner.invoke(app, [*args, "--no-cache"])
    assert fresh.exit_code == 0, fresh.stderr
    pipeline.load_analysed([str(dump)])
    damage(_entry_file(cache_dir, suffix))

    warm = runner.invoke(app, args)
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout
    assert not _entries(cache_dir)  # show reads no more than one trace, so it writes no entry


def test_a_report_about_spans_alone_leaves_the_logs_on_disk(cache_dir: Path, dump: Path) -> None:
    full_telemetry, full = pipeline.load_analysed([str(dump)])
    assert full_telemetry.logs.height > 0  # the demo capture holds log records
    fresh_telemetry, fresh = pipeline.load_analysed([str(dump)], use_cache=False, logs=False)
    warm_telemetry, warm = pipeline.load_analysed([str(dump)], logs=False)
    for telemetry in (fresh_telemetry, warm_telemetry):
        assert telemetry.logs.is_empty()
        assert telemetry.logs.schema == full_telemetry.logs.schema
    assert warm.spans.equals(full.spans)
    assert fresh.spans.equals(full.spans)
    assert pipeline.load_analysed([str(dump)])[0].logs.equals(full_telemetry.logs)
