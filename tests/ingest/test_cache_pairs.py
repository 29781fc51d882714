"""The attribute pairs kept with a cache entry (``why`` reads them instead of the attribute
texts): a warm ``why`` answers exactly as a fresh read, whichever command wrote the entry, and
damaged or outdated pairs are never used."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core.attribute_pairs import Held, attribute_pairs
from ml_tracelens.ingest import cache, pipeline
from tests.ingest.conftest import entry_key

WHY = ["why", "--slow", "p90", "--all", "-f", "json", "-q"]
#: A why the requests' index cannot serve (tests/reports/test_why_index.py): it reads the pairs.
ROOT = ("--scope", "root")


def _record(cache_dir: Path, dump: Path) -> dict[str, object]:
    header = (cache_dir / f"{entry_key(dump)}.json").read_bytes().partition(b"\n")[0]
    checksums: dict[str, object] = json.loads(header)["checksums"]
    return checksums


def _why(dump: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, [*WHY, str(dump), *extra])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"], "a report without rows would prove little"
    return result.stdout


@pytest.mark.parametrize("first", ["why", "latency"])
def test_warm_why_answers_as_a_fresh_read_whoever_wrote_the_entry(
    cache_dir: Path, dump: Path, first: str
) -> None:
    fresh = _why(dump, "--no-cache")
    CliRunner().invoke(app, [first, str(dump), "-f", "json", "-q"])
    assert (".codes.parquet" in _record(cache_dir, dump)) == (first == "why")
    # The first why on an entry without pairs adds them; the next reads them.
    assert _why(dump) == fresh
    assert {".codes.parquet", ".pairs.parquet"} <= set(_record(cache_dir, dump))
    assert _why(dump) == fresh
    assert _why(dump, "--stage", "GET") == _why(dump, "--stage", "GET", "--no-cache")


def test_stored_pairs_are_those_of_the_stored_spans(cache_dir: Path, dump: Path) -> None:
    pipeline.load_analysed([str(dump)], pairs=True)
    _, warm = pipeline.load_analysed([str(dump)], pairs=True, without=("attributes", "resource"))
    _, full = pipeline.load_analysed([str(dump)], use_cache=False)
    assert warm.pairs is not None
    assert "attributes" not in warm.spans.columns
    expected = attribute_pairs(full.spans)
    assert set(warm.pairs.columns) == set(expected.columns) == {"attributes", "resource"}
    for column, held in expected.columns.items():
        stored = warm.pairs.columns[column]
        assert _per_span(warm.pairs.codes.get_column(column), stored) == _per_span(
            expected.codes.get_column(column), held
        )


def _per_span(codes: pl.Series, held: Held) -> list[list[tuple[str, str]] | None]:
    """Each span's (attribute, value) pairs, sorted (None: no text)."""
    items = held.items.rows()
    return [
        None if code is None else sorted(items[i] for i in held.held[code])
        for code in codes.to_list()
    ]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _shuffle_codes(path: Path) -> None:
    """Valid Parquet with the codes of other spans: damage only the checksum can notice."""
    frame = pl.read_parquet(path)
    frame.select(pl.all().reverse()).write_parquet(path, compression="lz4", statistics=False)


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [
        (".codes.parquet", _truncate),
        (".codes.parquet", _shuffle_codes),
        (".pairs.parquet", _truncate),
    ],
)
def test_damaged_pairs_are_a_miss_and_are_rewritten(
    cache_dir: Path, dump: Path, suffix: str, damage: Callable[[Path], None]
) -> None:
    fresh = _why(dump, *ROOT, "--no-cache")
    _why(dump, *ROOT)
    damage(cache_dir / f"{entry_key(dump)}{suffix}")
    assert _why(dump, *ROOT) == fresh
    # The entry was written again, with pairs that match their checksums.
    assert _why(dump, *ROOT) == fresh
    assert {".codes.parquet", ".pairs.parquet"} <= set(_record(cache_dir, dump))


def test_pairs_of_another_parser_are_parsed_again(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _why(dump, *ROOT, "--no-cache")
    _why(dump, *ROOT)
    monkeypatch.setattr(cache, "PARSER_VERSION", cache.PARSER_VERSION + 1)
    calls = []
    parse = pipeline.attribute_pairs
    monkeypatch.setattr(pipeline, "attribute_pairs", lambda spans: calls.append(1) or parse(spans))
    assert _why(dump, *ROOT) == fresh
    assert calls == [1]
    assert _why(dump, *ROOT) == fresh  # kept with the entry for the new version: not parsed again
    assert calls == [1]
