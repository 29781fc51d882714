"""The Spark engine's tests run Spark in local mode: one session for the whole run (starting
the JVM is most of their time), two cores, few shuffle partitions. Without Java or the ``spark``
extra they are skipped, saying which is missing."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import SAMPLE_DATA, SHARED_FIXTURES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Few buckets: a group per bucket, and a dozen tiny groups run faster than 64.
BUCKETS = 8


def _missing() -> str | None:
    from ml_tracelens.spark import missing_dependencies

    missing = missing_dependencies()
    if missing:
        return f"{' and '.join(missing)} not installed (pip install -e '.[test,spark]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime (java not on PATH and JAVA_HOME unset): Spark needs Java 17+"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tracelens-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _convert(paths: list[Path], target: Path) -> Path:
    from ml_tracelens.api import convert_dataset

    convert_dataset([str(p) for p in paths], str(target), buckets=BUCKETS)
    return target


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_data/ as a dataset: OTLP, Jaeger and Zipkin traces, JSON logs (spans derived from
    stage lines), LLM spans (derived queue/prefill/decode stages)."""
    return _convert([SAMPLE_DATA], tmp_path_factory.mktemp("sample") / "dataset")


@pytest.fixture(scope="session")
def fixtures_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real captures of ../shared/fixtures as a dataset (spans only, no logs)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    paths = [SHARED_FIXTURES / "otlp", SHARED_FIXTURES / "zipkin"]
    return _convert(paths, tmp_path_factory.mktemp("fixtures") / "dataset")
