"""`tracelens convert --dataset DIR`: the layout it writes, appending, refusals, and every report
on the dataset answering exactly as on the dumps it was converted from (``inputs`` aside)."""

from __future__ import annotations

import fcntl
import json
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.readers import dataset
from tests.conftest import SAMPLE_DATA, SHARED_FIXTURES
from tests.factories import T0, otlp_document, otlp_log, otlp_span, sid, write_jsonl

runner = CliRunner()
FAILED_REQUEST = "req-eaf584"
BUDGETS = ("--budget", "model.inference:p95<=150ms", "--budget", "error_rate<=5%")
#: name -> the dumps converted together (paths relative to the repository's parent)
SOURCES = {
    "otlp": [SAMPLE_DATA / "traces.otlp.jsonl"],
    "logs": [SAMPLE_DATA / "app.log.jsonl"],
    "jaeger": [SAMPLE_DATA / "traces.jaeger.json"],
    "zipkin": [SAMPLE_DATA / "traces.zipkin.json"],
    "llm": [SAMPLE_DATA / "llm.otlp.jsonl"],
    "llm-logs": [SAMPLE_DATA / "llm.log.jsonl"],
    # Two log files whose clocks differ in resolution: log-derived trees keep their own slack.
    "stage-and-app-logs": [SAMPLE_DATA / "stages.log.jsonl", SAMPLE_DATA / "app.log.jsonl"],
    "demo": [SHARED_FIXTURES / "otlp" / "otel-demo-capture.otlp.jsonl"],
}
COMMANDS: dict[str, tuple[str, ...]] = {
    "latency": ("latency",),
    "latency-by-service": ("latency", "--by", "service"),
    "errors": ("errors",),
    "bottlenecks": ("bottlenecks",),
    "traces": ("traces",),
    "check": ("check", *BUDGETS),
    "summary": ("summary",),
    "llm": ("llm",),
}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def convert(directory: Path, *paths: Path, extra: tuple[str, ...] = ()):
    return invoke("convert", *map(str, paths), "--dataset", str(directory), "-q", *extra)


def without_inputs(stdout: str) -> bytes:
    document = json.loads(stdout)
    document.pop("inputs", None)
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def convert_each(
    sources: dict[str, list[Path]], factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each source's dumps converted to a dataset of their own (those whose fixtures exist)."""
    made = {}
    for name, paths in sources.items():
        if not all(p.exists() for p in paths):
            continue
        directory = factory.mktemp("datasets") / name
        result = convert(directory, *paths)
        assert result.exit_code == 0, result.stderr
        made[name] = directory
    return made


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return convert_each(SOURCES, tmp_path_factory)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_report_on_the_dataset_is_the_report_on_the_dumps(
    datasets: dict[str, Path], source: str, command: str
) -> None:
    if source not in datasets:
        pytest.skip(f"{source}: fixture missing")
    args = (*COMMANDS[command], "--format", "json", "--no-cache", "-q")
    original = invoke(*args[:1], *map(str, SOURCES[source]), *args[1:])
    converted = invoke(*args[:1], str(datasets[source]), *args[1:])
    assert converted.exit_code == original.exit_code, converted.stderr
    # Exit 2 (e.g. llm on a dump without LLM spans): the same refusal, naming another input.
    if original.exit_code in (0, 1):
        assert without_inputs(converted.stdout) == without_inputs(original.stdout)


@pytest.mark.parametrize("source", ["otlp", "logs"])
@pytest.mark.parametrize("fmt", ["json", "table"])
def test_show_on_the_dataset_is_show_on_the_dump(
    datasets: dict[str, Path], source: str, fmt: str
) -> None:
    args = ("--format", fmt, "--no-cache", "-q")
    original = invoke("show", FAILED_REQUEST, *map(str, SOURCES[source]), *args)
    converted = invoke("show", FAILED_REQUEST, str(datasets[source]), *args)
    assert original.exit_code == converted.exit_code == 0, converted.stderr
    if fmt == "json":
        assert without_inputs(converted.stdout) == without_inputs(original.stdout)
    else:
        assert converted.stdout == original.stdout


def test_the_layout_keys_every_trace_to_one_partition_by_crc32(datasets: dict[str, Path]) -> None:
    directory = datasets["otlp"]
    manifest = json.loads((directory / dataset.MANIFEST).read_text())
    assert manifest["schema_version"] == dataset.SCHEMA_VERSION == 1
    assert manifest["buckets"] == 64
    assert manifest["bucket_hash"] == "crc32(utf8(trace_id)) mod buckets"
    assert manifest["sources"][0]["path"] == str(SOURCES["otlp"][0].resolve())
    assert manifest["sources"][0]["size"] == SOURCES["otlp"][0].stat().st_size
    assert {"start_ns", "end_ns", "start", "end"} <= set(manifest["time_range"])
    parts = sorted(directory.glob("date=*/bucket=*/part-*.parquet"))
    assert parts
    assert all(p.name == "part-00001.parquet" for p in parts)
    assert all(len(p.parent.name) == len("bucket=NNN") for p in parts)
    spans = pl.scan_parquet(str(directory / "date=*/bucket=*/*.parquet"), hive_partitioning=True)
    frame = spans.collect()
    assert frame.height == manifest["spans"]
    expected = [zlib.crc32(t.encode()) % 64 for t in frame.get_column("trace_id")]
    assert frame.get_column("bucket").to_list() == expected
    assert frame.group_by("trace_id").agg(pl.col("date", "bucket").n_unique()).select(
        pl.col("date").max(), pl.col("bucket").max()
    ).row(0) == (1, 1)
    # Promoted hot attributes: the model version of the samples' model spans.
    versions = frame.get_column("model_version").drop_nulls().unique().sort().to_list()
    assert versions
    assert all(v.startswith("v") for v in versions)
    logs = pl.scan_parquet(
        str(directory / "logs/date=*/bucket=*/*.parquet"), hive_partitioning=True
    )
    assert logs.collect().height == manifest["logs"]


def test_the_llm_model_is_a_column(datasets: dict[str, Path]) -> None:
    frame = pl.read_parquet(str(datasets["llm"] / "date=*/bucket=*/*.parquet"))
    assert frame.get_column("llm_model").drop_nulls().n_unique() >= 1


def test_the_bucket_hash_is_fixed() -> None:
    # Values anyone can check: python -c "import zlib; print(zlib.crc32(b'...') % 64)";
    # Spark: pmod(crc32(trace_id), 64).
    keys = pl.Series(["0af7651916cd43dd8448eb211c80319c", "req-eaf584", None])
    assert dataset.bucket_of(keys, 64).to_list() == [
        zlib.crc32(b"0af7651916cd43dd8448eb211c80319c") % 64,
        zlib.crc32(b"req-eaf584") % 64,
        0,
    ]


DAY = 86_400 * 1_000_000_000
MIDNIGHT = (T0 // DAY + 1) * DAY  # the midnight after T0 (2023-11-15T00:00:00Z)


def test_a_trace_across_midnight_lies_in_its_roots_day(tmp_path: Path) -> None:
    crossing = "1" * 32
    rootless = "2" * 32
    spans = [
        otlp_span(crossing, sid(0), None, "root", MIDNIGHT - 1000, MIDNIGHT + 5000),
        otlp_span(crossing, sid(1), sid(0), "child", MIDNIGHT + 10, MIDNIGHT + 4000),
        # No root: the earliest span's day (the second of these), whatever the order.
        otlp_span(rootless, sid(3), sid(9), "late", MIDNIGHT + 100, MIDNIGHT + 200),
        otlp_span(rootless, sid(2), sid(9), "early", MIDNIGHT - 100, MIDNIGHT + 200),
    ]
    logs = [otlp_log(crossing, sid(1), MIDNIGHT + 20, "after midnight")]
    dump = write_jsonl(tmp_path / "dump.jsonl", [otlp_document(spans, logs=logs)])
    assert convert(tmp_path / "ds", dump).exit_code == 0
    before, after = "date=2023-11-14", "date=2023-11-15"
    assert not (tmp_path / "ds" / after).exists()
    frame = pl.read_parquet(str(tmp_path / "ds" / before / "bucket=*" / "*.parquet"))
    assert frame.height == 4
    assert (tmp_path / "ds" / "logs" / before).is_dir()
    assert not (tmp_path / "ds" / "logs" / after).exists()


def test_appending_adds_files_and_answers_as_the_dumps_together(tmp_path: Path) -> None:
    first, second = SAMPLE_DATA / "traces.otlp.jsonl", SAMPLE_DATA / "app.log.jsonl"
    directory = tmp_path / "ds"
    assert convert(directory, first).exit_code == 0
    old = {p: p.read_bytes() for p in directory.rglob("part-*.parquet")}
    result = invoke("convert", str(second), "--dataset", str(directory))
    assert result.exit_code == 0, result.stderr
    assert "to " + str(directory) in result.stderr
    assert all(p.read_bytes() == data for p, data in old.items())
    added = set(directory.rglob("part-*.parquet")) - set(old)
    assert added
    assert all(p.name == "part-00002.parquet" for p in added)
    manifest = json.loads((directory / dataset.MANIFEST).read_text())
    assert manifest["conversions"] == 2
    assert [s["conversion"] for s in manifest["sources"]] == [1, 2]
    for command in ("latency", "errors", "traces"):
        both = invoke(command, str(first), str(second), "-f", "json", "-q", "--no-cache")
        dataset_report = invoke(command, str(directory), "-f", "json", "-q")
        assert without_inputs(dataset_report.stdout) == without_inputs(both.stdout), command


def test_the_same_input_twice_or_other_buckets_is_refused_and_replace_starts_over(
    tmp_path: Path,
) -> None:
    dump = SAMPLE_DATA / "traces.otlp.jsonl"
    directory = tmp_path / "ds"
    assert convert(directory, dump, extra=("--buckets", "8")).exit_code == 0
    manifest = (directory / dataset.MANIFEST).read_bytes()
    again = convert(directory, dump)
    assert again.exit_code == 2
    assert "already converted" in again.stderr
    assert "--replace" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    other = convert(directory, SAMPLE_DATA / "app.log.jsonl", extra=("--buckets", "16"))
    assert other.exit_code == 2
    assert "8 buckets" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    assert (directory / dataset.MANIFEST).read_bytes() == manifest
    replaced = convert(directory, SAMPLE_DATA / "app.log.jsonl", extra=("--replace",))
    assert replaced.exit_code == 0, replaced.stderr
    written = json.loads((directory / dataset.MANIFEST).read_text())
    assert written["conversions"] == 1
    assert written["buckets"] == 64
    assert [Path(s["path"]).name for s in written["sources"]] == ["app.log.jsonl"]
    assert {p.parent.name for p in directory.rglob("part-*.parquet")} <= {
        f"bucket={b:03d}" for b in range(64)
    }


def test_convert_needs_one_target_and_a_non_dataset_directory_is_not_overwritten(
    tmp_path: Path,
) -> None:
    dump = str(SAMPLE_DATA / "traces.otlp.jsonl")
    assert invoke("convert", dump).exit_code == 2
    assert invoke("convert", dump, "-o", "x.parquet", "--dataset", str(tmp_path)).exit_code == 2
    (tmp_path / "mine.txt").write_text("keep me")
    result = invoke("convert", dump, "--dataset", str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    assert result.exit_code == 2
    assert "not a tracelens dataset" in result.stderr
    assert (
        invoke("convert", dump, "--dataset", str(tmp_path / "d"), "--buckets", "0").exit_code == 2
    )


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    directory = tmp_path / "ds"
    assert convert(directory, SAMPLE_DATA / "traces.otlp.jsonl").exit_code == 0
    return directory


def _refused(directory: Path, *words: str) -> None:
    result = invoke("latency", str(directory), "-q")
    assert result.exit_code == 2, result.stdout
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "Traceback" not in message
    for word in words:
        assert word in message


def test_a_schema_version_it_does_not_know_is_refused(small_dataset: Path) -> None:
    path = small_dataset / dataset.MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "schema_version": 2}))
    _refused(small_dataset, "schema version 2", "upgrade tracelens")
    result = invoke("convert", str(SAMPLE_DATA / "app.log.jsonl"), "--dataset", str(small_dataset))
    assert result.exit_code == 2
    assert "schema version 2" in result.stderr


@pytest.mark.parametrize(
    "damage",
    ["missing key", "wrong type", "not json", "corrupt part", "truncated part"],
)
def test_a_damaged_dataset_is_one_line_and_exit_2(small_dataset: Path, damage: str) -> None:
    path = small_dataset / dataset.MANIFEST
    manifest = json.loads(path.read_text())
    part = next(small_dataset.glob("date=*/bucket=*/part-*.parquet"))
    if damage == "missing key":
        del manifest["buckets"]
        path.write_text(json.dumps(manifest))
    elif damage == "wrong type":
        path.write_text(json.dumps({**manifest, "conversions": "one"}))
    elif damage == "not json":
        path.write_text("{")
    elif damage == "corrupt part":
        part.write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    else:
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    _refused(small_dataset, str(small_dataset))


def test_files_of_an_unfinished_conversion_are_not_read(small_dataset: Path) -> None:
    expected = invoke("latency", str(small_dataset), "-f", "json", "-q").stdout
    part = next(small_dataset.glob("date=*/bucket=*/part-*.parquet"))
    (part.parent / "part-00002.parquet").write_bytes(part.read_bytes())
    assert invoke("latency", str(small_dataset), "-f", "json", "-q").stdout == expected


def test_a_dataset_in_a_directory_of_dumps_is_read_as_one_input(
    small_dataset: Path, tmp_path: Path
) -> None:
    result = invoke("summary", str(tmp_path), "-f", "json", "-q")
    assert result.exit_code == 0, result.stderr
    inputs = json.loads(result.stdout)["inputs"]
    assert [(Path(i["path"]).name, i["format"]) for i in inputs] == [("ds", "dataset")]


def test_a_dataset_converts_into_another_with_other_buckets(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    rebucketed = tmp_path / "seven"
    result = convert(rebucketed, datasets["stage-and-app-logs"], extra=("--buckets", "7"))
    assert result.exit_code == 0, result.stderr
    assert json.loads((rebucketed / dataset.MANIFEST).read_text())["buckets"] == 7
    for command in ("latency", "traces"):
        args = ("-f", "json", "-q", "--no-cache")
        dumps = invoke(command, *map(str, SOURCES["stage-and-app-logs"]), *args)
        again = invoke(command, str(rebucketed), *args)
        assert without_inputs(again.stdout) == without_inputs(dumps.stdout), command


def test_a_large_dataset_is_not_cached(
    small_dataset: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    assert invoke("latency", str(small_dataset), "-q").exit_code == 0
    assert not any(p.is_file() for p in cache_dir.rglob("*"))


def test_part_files_with_other_columns_are_one_line_and_exit_2(small_dataset: Path) -> None:
    part = next(small_dataset.glob("date=*/bucket=*/part-*.parquet"))
    frame = pl.read_parquet(part)
    frame.with_columns(start_ns=pl.lit("soon"), kind=pl.lit("sideways")).write_parquet(part)
    _refused(small_dataset, str(small_dataset))
    frame.drop("span_id").write_parquet(part)
    _refused(small_dataset, str(small_dataset))


def test_one_conversion_at_a_time_and_never_into_itself(small_dataset: Path) -> None:
    with (small_dataset / dataset.LOCK).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = convert(small_dataset, SAMPLE_DATA / "app.log.jsonl")
    assert busy.exit_code == 2
    assert "another tracelens convert" in busy.stderr
    itself = convert(small_dataset, small_dataset)
    assert itself.exit_code == 2
    assert "into itself" in itself.stderr
    assert convert(small_dataset, SAMPLE_DATA / "app.log.jsonl").exit_code == 0
