"""The Spark engine against the local one: every number of latency, errors and bottlenecks
(and every span's self time, critical-path time and error origin) the same to 1e-9 relative,
on the shared fixtures and on sample_data converted to datasets. The local numbers are computed
here by the local engine, never written down."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import ml_tracelens as tl
from ml_tracelens import spark as tls

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# One worker runs the Spark tests under `pytest -n auto`: one JVM, not one per core.
pytestmark = pytest.mark.xdist_group("spark")

REL = 1e-9
DATASETS = ("sample_dataset", "fixtures_dataset")


def assert_same(spark_value: Any, local_value: Any, where: str = "") -> None:
    """Equal, floats to ``REL`` relative; lists in the same order (rankings included)."""
    if isinstance(local_value, float) or isinstance(spark_value, float):
        assert isinstance(spark_value, int | float), where
        assert isinstance(local_value, int | float), where
        assert math.isclose(spark_value, local_value, rel_tol=REL, abs_tol=1e-12), (
            f"{where}: spark {spark_value!r} != local {local_value!r}"
        )
    elif isinstance(local_value, dict):
        assert isinstance(spark_value, dict), where
        assert spark_value.keys() == local_value.keys(), where
        for key in local_value:
            assert_same(spark_value[key], local_value[key], f"{where}.{key}")
    elif isinstance(local_value, list):
        assert isinstance(spark_value, list), where
        assert len(spark_value) == len(local_value), f"{where}: {spark_value} != {local_value}"
        for index, (a, b) in enumerate(zip(spark_value, local_value, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert spark_value == local_value, (
            f"{where}: spark {spark_value!r} != local {local_value!r}"
        )


def documents(spark_result: tl.Result, local_result: tl.Result) -> tuple[dict[str, Any], ...]:
    """The two JSON documents, without the inputs block (the API takes a DataFrame, not a
    path; the CLI's test compares it too)."""
    out = []
    for result in (spark_result, local_result):
        document = json.loads(result.to_json())
        document.pop("inputs")
        out.append(document)
    return tuple(out)


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, spark: SparkSession
) -> Iterator[dict[str, tuple[DataFrame, DataFrame | None, tl.AnalysedTelemetry]]]:
    """Per dataset fixture name: (Spark's analysed spans, its log rows, the local analysis)."""
    found = {}
    for name in DATASETS:
        path: Path = request.getfixturevalue(name)
        spans, logs = tls.read(spark, str(path))
        analysed = tls.analyze(spans, logs).cache()
        found[name] = (analysed, logs, tl.load(path, cache=False))
    yield found
    for analysed, _, _ in found.values():
        analysed.unpersist()


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_span_gets_the_local_self_time_critical_path_and_error_origin(
    engines: dict[str, Any], dataset: str
) -> None:
    analysed, _, local = engines[dataset]
    # Spans derived from log lines are named log:ROW after their row in the table analysed,
    # which differs between a whole dump and a group: compare by content, not by span id.
    columns = [
        "trace_id", "name", "service", "start_ns", "end_ns", "duration_ns", "status",
        "is_root", "is_orphan", "depth", "skewed", "outside_parent",
        "self_ns", "cp_ns", "has_error", "error_originated",
    ]  # fmt: skip
    ours = pl.from_arrow(analysed.select(*columns).toArrow())
    assert isinstance(ours, pl.DataFrame)
    theirs = local.spans.select(*columns).with_columns(pl.col("status").cast(pl.String))
    order = columns
    assert ours.height == theirs.height
    assert ours.sort(order, nulls_last=True).equals(theirs.sort(order, nulls_last=True))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("by", ["stage", "service,kind,status", "attr.model.version"])
def test_latency_matches_the_local_engine(engines: dict[str, Any], dataset: str, by: str) -> None:
    analysed, _, local = engines[dataset]
    ours, theirs = documents(tls.latency(analysed, by=by), tl.latency(local, by=by))
    assert theirs["rows"], "nothing compared"
    assert_same(ours, theirs, f"latency --by {by}")


def test_latency_sort_and_top_as_the_local_engine(engines: dict[str, Any]) -> None:
    analysed, _, local = engines["sample_dataset"]
    ours, theirs = documents(
        tls.latency(analysed, sort="p95_ms", top=3), tl.latency(local, sort="p95_ms", top=3)
    )
    assert_same(ours, theirs, "latency --sort p95_ms --top 3")


@pytest.mark.parametrize(
    ("dataset", "by"),
    [("sample_dataset", "stage"), ("fixtures_dataset", "service,attr.model.version")],
)
def test_latency_distributions_match_the_local_engine(
    engines: dict[str, Any], dataset: str, by: str
) -> None:
    """The histograms behind the terminal's sparklines and the HTML page's charts."""
    analysed, _, local = engines[dataset]
    ours = tls.latency(analysed, by=by, distribution=True)
    theirs = tl.latency(local, by=by, distribution=True)
    assert ours.report.view is not None
    assert theirs.report.view is not None
    assert ours.report.view.distributions, "nothing compared"
    assert_same(
        [d.histogram for d in ours.report.view.distributions],
        [d.histogram for d in theirs.report.view.distributions],
    )
    assert [d.label for d in ours.report.view.distributions] == [
        d.label for d in theirs.report.view.distributions
    ]
    assert_same(*documents(ours, theirs), "latency with distributions")


@pytest.mark.parametrize("dataset", DATASETS)
def test_errors_match_the_local_engine(engines: dict[str, Any], dataset: str) -> None:
    analysed, logs, local = engines[dataset]
    ours, theirs = documents(tls.errors(analysed, logs, top=20), tl.errors(local, top=20))
    assert_same(ours, theirs, "errors")


@pytest.mark.parametrize(
    ("dataset", "tail"),
    [("sample_dataset", 0.95), ("sample_dataset", 0.5), ("fixtures_dataset", 0.95)],
)
def test_bottlenecks_match_the_local_engine(
    engines: dict[str, Any], dataset: str, tail: float
) -> None:
    analysed, _, local = engines[dataset]
    ours, theirs = documents(tls.bottlenecks(analysed, tail=tail), tl.bottlenecks(local, tail=tail))
    assert theirs["rows"], "nothing compared"
    assert_same(ours, theirs, f"bottlenecks --tail {tail}")


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_warnings_are_the_local_ones(engines: dict[str, Any], dataset: str) -> None:
    analysed, _, local = engines[dataset]
    assert local.warnings, "nothing compared"
    assert tls.warnings(analysed) == local.warnings


def test_results_are_the_local_api_types(engines: dict[str, Any]) -> None:
    analysed, _, local = engines["sample_dataset"]
    ours, theirs = tls.latency(analysed), tl.latency(local)
    assert type(ours) is type(theirs)
    assert type(ours.payload) is type(theirs.payload)
    assert ours.rows.columns == theirs.rows.columns


def test_spark_read_parquet_of_a_dataset_without_logs_hashing_trace_ids(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The README's one-liner, ``analyze(spark.read.parquet(DIR))``, on a dataset of spans
    only (the Zipkin captures); grouped by a hash of the trace id instead of the stored bucket,
    the same answers."""
    from ml_tracelens.api import convert_dataset
    from tests.conftest import SHARED_FIXTURES

    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    dataset = tmp_path / "zipkin"
    convert_dataset([str(SHARED_FIXTURES / "zipkin")], str(dataset), buckets=4)
    assert not (dataset / "logs").exists()
    local = tl.load(dataset, cache=False)
    analysed = tls.analyze(spark.read.parquet(str(dataset)), groups=3).cache()
    for report in ("latency", "errors", "bottlenecks"):
        ours, theirs = documents(getattr(tls, report)(analysed), getattr(tl, report)(local))
        assert_same(ours, theirs, report)
    analysed.unpersist()


def test_a_dataset_with_logs_reads_as_its_span_partitions(
    spark: SparkSession, sample_dataset: Path, engines: dict[str, Any]
) -> None:
    """A dataset holding logs is not one Spark partition tree (``logs/`` is no ``key=value``
    directory): its spans are ``DIR/date=*`` with ``basePath``; without the logs, the spans
    derived from stage log lines are missing, everything else is as ``read`` gives."""
    spans = spark.read.option("basePath", str(sample_dataset)).parquet(f"{sample_dataset}/date=*")
    read_spans, _ = tls.read(spark, str(sample_dataset))
    assert spans.count() == read_spans.count()
