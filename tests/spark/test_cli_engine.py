"""``--engine spark`` on the command line: the local command's JSON, one line and exit 2 when
the extra is missing or an option cannot apply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.spark.test_engine import assert_same

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# One worker runs the Spark tests under `pytest -n auto`: one JVM, not one per core.
pytestmark = pytest.mark.xdist_group("spark")

# Each run analyses the dataset again: few runs (latency by stage is the table test's).
REPORTS = [
    ("latency", "--by", "service,attr.model.version"),
    ("errors", "--top", "5"),
    ("bottlenecks", "--tail", "0.9"),
]


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("command", REPORTS, ids=" ".join)
def test_engine_spark_prints_the_local_engines_json(
    spark: SparkSession, sample_dataset: Path, command: tuple[str, ...]
) -> None:
    name, *options = command
    local = run(name, str(sample_dataset), *options, "--format", "json", "--no-cache")
    ours = run(
        name, str(sample_dataset), *options, "--format", "json",
        "--engine", "spark", "--spark-master", "local[2]",
    )  # fmt: skip
    assert local.exit_code == 0, local.stderr
    assert ours.exit_code == 0, ours.stderr
    assert ours.stderr == local.stderr
    assert_same(json.loads(ours.stdout), json.loads(local.stdout), name)


def test_engine_spark_table_reads_like_the_local_one(
    spark: SparkSession, sample_dataset: Path
) -> None:
    """The terminal table, the latency sparklines included (``--wide`` shows them)."""
    local = run("latency", str(sample_dataset), "--wide", "--no-cache")
    ours = run("latency", str(sample_dataset), "--wide", "--engine", "spark")
    assert ours.exit_code == 0, ours.stderr
    assert ours.stdout == local.stdout
    assert ours.stderr == local.stderr


def _cli(*args: str, block_pyspark: bool = False) -> subprocess.CompletedProcess[str]:
    prelude = "import sys; sys.modules['pyspark'] = None; " if block_pyspark else ""
    code = prelude + "from ml_tracelens.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", "import sys; " + code, *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_engine_spark_without_pyspark_says_what_to_install(tmp_path: Path) -> None:
    from ml_tracelens.api import convert_dataset
    from tests.conftest import SAMPLE_DATA

    dataset = tmp_path / "dataset"
    convert_dataset([str(SAMPLE_DATA / "traces.otlp.jsonl")], str(dataset), buckets=2)
    done = _cli("latency", str(dataset), "--engine", "spark", block_pyspark=True)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'ml-tracelens[spark]'" in lines[0]
    assert "pyspark" in lines[0]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--where", "duration_ms > 1"), "--where"),
        (("--service", "frontend"), "--service"),
    ],
)
def test_engine_spark_refuses_the_filters_it_does_not_apply(
    extra: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    from ml_tracelens.spark import missing_dependencies

    if missing_dependencies():
        pytest.skip(f"{', '.join(missing_dependencies())} not installed")
    (tmp_path / "_tracelens.json").write_text("{}")
    result = run("latency", str(tmp_path), "--engine", "spark", *extra)
    assert result.exit_code == 2
    assert says in result.stderr
    assert "--engine spark" in result.stderr
    assert result.stdout == ""


def test_engine_spark_reads_datasets_not_dumps() -> None:
    from ml_tracelens.spark import missing_dependencies
    from tests.conftest import SAMPLE_DATA

    if missing_dependencies():
        pytest.skip(f"{', '.join(missing_dependencies())} not installed")
    result = run("errors", str(SAMPLE_DATA / "traces.otlp.jsonl"), "--engine", "spark")
    assert result.exit_code == 2
    assert "tracelens convert" in result.stderr


def test_importing_the_package_and_the_cli_never_imports_pyspark() -> None:
    """Nor polars, for the CLI: ``--engine`` costs a command nothing until Spark runs."""
    code = (
        "import sys, ml_tracelens, ml_tracelens.cli; "
        "assert 'polars' not in sys.modules, 'polars'; "
        "import ml_tracelens.spark; "
        "assert 'pyspark' not in sys.modules, 'pyspark'; "
        "assert 'pyarrow' not in sys.modules, 'pyarrow'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
