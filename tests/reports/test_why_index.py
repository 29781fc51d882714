"""`why`'s index of the requests (what each holds, its duration, error and stage times): the
report made from it, read back from Parquet, is the report the spans give; kept with the cache
entry, it answers a second `why` with no span read, and damaged or outdated tables are never
used."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import api
from ml_tracelens.cli import app
from ml_tracelens.core import Analysis
from ml_tracelens.ingest import cache
from ml_tracelens.reports import why, why_index, why_units
from ml_tracelens.reports.result import Report
from tests.ingest.conftest import entry_key
from tests.reports.test_why import Workload, workload

SELECTIONS: list[dict[str, Any]] = [
    {"slow": "p95"},
    {"slow": ">60ms", "min_count": 1, "show_all": True},
    {"failed": True, "show_all": True},
]


def _parquet_round_trip(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    read_back = {}
    for name, frame in tables.items():
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="lz4", statistics=False)
        buffer.seek(0)
        read_back[name] = pl.read_parquet(buffer)
    return read_back


def _build(w: Workload, options: dict[str, Any], **extra: Any) -> Report:
    options = dict(options)
    keys = ("slow", "failed", "where", "baseline_where")
    selection = why_units.Selection(**{k: options.pop(k) for k in keys if k in options})
    return why.build(selection=selection, **options, **extra)


@pytest.mark.parametrize("options", SELECTIONS)
def test_the_index_read_back_gives_the_report_of_the_spans(options: dict[str, Any]) -> None:
    w = workload(21, count=1500, slow_node=True, failing_client=True)
    tables = why_index.index(w.spans, pairs=None).tables()
    kept = why_index.WhyIndex.from_tables(_parquet_round_trip(tables))
    from_spans = _build(w, options, analysed=w.spans)
    from_index = _build(w, options, analysed=pl.DataFrame(), index=kept)
    assert from_index == from_spans
    assert any(t.rows for t in from_spans.tables)


def test_options_the_index_cannot_serve_are_read_from_the_spans() -> None:
    w = workload(22, count=800, slow_node=True)
    kept = why_index.index(w.spans, pairs=None)
    for options in (
        {"slow": "p95", "stage": "model.inference"},
        {"slow": "p95", "scope": "root", "show_all": True},
        {"where": "attr.node = 'gpu-7'", "show_all": True},
    ):
        assert _build(w, options, analysed=w.spans, index=kept) == _build(
            w, options, analysed=w.spans
        )


WHY = ["why", "--all", "-f", "json", "-q"]
SLOW = ("--slow", "p90")


@pytest.fixture
def dump(otel_demo_dump: Path) -> Path:
    return otel_demo_dump


def _why(dump: Path, *extra: str, selection: tuple[str, ...] = SLOW) -> str:
    result = CliRunner().invoke(app, [*WHY, *selection, str(dump), *extra])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"], "a report without rows would prove little"
    return result.stdout


def _files(cache_dir: Path, dump: Path) -> set[str]:
    key = entry_key(dump)
    return {p.name.removeprefix(key) for p in cache_dir.iterdir() if p.name.startswith(key)}


INDEX_FILES = {f".derived-why-{t}.parquet" for t in ("units", "stages", "pairs", "facts")}


def test_a_warm_why_reads_the_index_and_no_span(cache_dir: Path, dump: Path) -> None:
    selections = [SLOW, ("--failed",), ("--slow", ">5ms")]
    fresh = {s: _why(dump, "--no-cache", selection=s) for s in selections}
    assert _why(dump) == fresh[SLOW]
    assert _files(cache_dir, dump) >= INDEX_FILES
    # With the spans' file gone, only the index can answer.
    (cache_dir / f"{entry_key(dump)}.spans.parquet").unlink()
    for selection in selections:
        assert _why(dump, selection=selection) == fresh[selection]


def test_an_entry_another_command_wrote_gets_the_index(cache_dir: Path, dump: Path) -> None:
    fresh = _why(dump, "--no-cache")
    CliRunner().invoke(app, ["latency", str(dump), "-q"])
    assert not INDEX_FILES & _files(cache_dir, dump)
    assert _why(dump) == fresh
    assert _files(cache_dir, dump) >= INDEX_FILES
    assert _why(dump) == fresh


def test_a_damaged_index_is_a_miss_and_is_made_again(cache_dir: Path, dump: Path) -> None:
    fresh = _why(dump, "--no-cache")
    _why(dump)
    units = cache_dir / f"{entry_key(dump)}.derived-why-units.parquet"
    data = units.read_bytes()
    units.write_bytes(data[: len(data) // 2])
    assert _why(dump) == fresh
    assert _files(cache_dir, dump) >= INDEX_FILES
    assert _why(dump) == fresh


def test_an_index_of_another_version_is_made_again(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _why(dump, "--no-cache")
    _why(dump)
    made = []

    def make(analysis: Analysis) -> dict[str, pl.DataFrame] | None:
        made.append(1)
        return why_index.DERIVED.make(analysis)

    newer = dataclasses.replace(why_index.DERIVED, version=why_index.DERIVED.version + 1, make=make)
    monkeypatch.setattr(api, "WHY_INDEX", newer)
    assert _why(dump) == fresh
    assert made == [1]
    assert _why(dump) == fresh
    assert made == [1]


def test_removing_an_entry_removes_its_index(cache_dir: Path, dump: Path) -> None:
    _why(dump)
    assert _files(cache_dir, dump) >= INDEX_FILES
    cache.prune(cache_dir, max_bytes=0)
    assert not _files(cache_dir, dump)
    _why(dump)
    cache._remove_entry(cache_dir, entry_key(dump))
    assert not _files(cache_dir, dump)


def test_the_library_loads_the_index_and_says_what_it_cannot_serve(
    cache_dir: Path, dump: Path
) -> None:
    import ml_tracelens as tl
    from ml_tracelens.exceptions import UsageError

    fresh = tl.why(tl.load(dump, cache=False), slow="p90", show_all=True).report
    options: dict[str, Any] = {"pairs": True, "derived": api.WHY_INDEX}
    tl.load(dump, **options)
    warm = tl.load(dump, **options)
    assert not warm.analysis.spans.width
    assert tl.why(warm, slow="p90", show_all=True).report == fresh
    with pytest.raises(UsageError, match="without derived="):
        tl.why(warm, slow="p90", stage="GET")
