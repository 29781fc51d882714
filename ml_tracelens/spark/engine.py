"""The Spark engine (see the package docstring): sessions, reading a dataset, and the per-trace
analysis by the local kernels inside ``groupBy(...).applyInArrow``; ``spark.reports`` aggregates
the analysed spans.

pyspark is imported inside the functions only: importing this module never needs it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.readers.dataset import MANIFEST, SCHEMA_VERSION
from ml_tracelens.reports.result import JsonValue

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

INSTALL_HINT = "pip install 'ml-tracelens[spark]'"
#: Groups of traces when a frame has no ``bucket`` column: crc32(trace id) mod this.
DEFAULT_GROUPS = 64


def missing_dependencies() -> list[str]:
    """The packages of the ``spark`` extra that are not installed: pyspark; pyarrow, the
    kernels' tables; pandas, which pyspark's Arrow functions require."""
    return [
        name for name in ("pyspark", "pyarrow", "pandas") if importlib.util.find_spec(name) is None
    ]


def require() -> None:
    """UsageError (one line, naming the extra to install) when a package of it is missing."""
    missing = missing_dependencies()
    if missing:
        raise UsageError(
            f"the Spark engine needs {' and '.join(missing)}, not installed: {INSTALL_HINT}"
        )


def session(master: str = "local[*]", *, app_name: str = "tracelens") -> SparkSession:
    """A Spark session on ``master``; in local mode the Python workers run this interpreter
    (unless ``PYSPARK_PYTHON`` says otherwise), so they import the same ml_tracelens."""
    require()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
        )
    return builder.getOrCreate()


# --- reading and analysing -------------------------------------------------------------------


def read(spark: SparkSession, path: str) -> tuple[DataFrame, DataFrame | None]:
    """The spans and log records (None when it holds none) of a dataset written by
    ``tracelens convert --dataset``: only the files of complete conversions, as the local
    reader. ``spark.read.parquet(path)`` works too on a dataset without logs (a ``logs/``
    directory is not a partition, so Spark refuses to discover one holding it)."""
    require()
    manifest = _manifest(spark, path)
    conversions = int(manifest["conversions"])
    base = path.rstrip("/")

    def table(top: str, rows: int) -> DataFrame | None:
        if not rows:
            return None
        from pyspark.sql import functions as F

        frame = (
            spark.read.option("basePath", top)
            .option("mergeSchema", "false")
            .parquet(f"{top}/date=*/bucket=*/part-*.parquet")
        )
        number = F.regexp_extract(F.col("_metadata.file_path"), r"part-(\d+)\.parquet$", 1)
        return frame.filter(number.cast("int") <= conversions)

    spans = table(base, int(manifest["spans"]))
    if spans is None:
        raise InputError(f"{path}: the dataset holds no spans")
    return spans, table(f"{base}/logs", int(manifest["logs"]))


def _manifest(spark: SparkSession, path: str) -> dict[str, Any]:
    where = f"{path.rstrip('/')}/{MANIFEST}"
    try:
        text = _read_text(spark, where)
    except Exception as exc:  # a missing file is a Java exception through py4j
        raise InputError(f"{path}: not a tracelens dataset (no readable {MANIFEST})") from exc
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{where}: not a readable dataset manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{where}: not a dataset manifest of schema version {SCHEMA_VERSION}; convert the "
            "dumps again with this version of tracelens"
        )
    return data


def _read_text(spark: SparkSession, where: str) -> str:
    """A small file on any file system Spark reads (local, HDFS, S3...), through Hadoop's
    FileSystem: Spark's own readers pass over files named ``_*``, as the manifest is."""
    try:
        context = spark.sparkContext
    except Exception:  # Spark Connect has no context here: only local paths then
        return Path(where.removeprefix("file:")).read_text()
    jvm = context._jvm
    if jvm is None:
        return Path(where.removeprefix("file:")).read_text()
    hadoop_path = jvm.org.apache.hadoop.fs.Path(where)
    system = hadoop_path.getFileSystem(context._jsc.hadoopConfiguration())
    stream = system.open(hadoop_path)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def group_column(key: Column, groups: int | None) -> Column:
    """The dataset's ``bucket`` when ``groups`` is None, else ``crc32(key) mod groups``: the
    bucket's own rule, so both group the rows of a trace together."""
    from pyspark.sql import functions as F

    if groups is None:
        return F.col("bucket").cast("int")
    hashed = F.crc32(F.coalesce(key, F.lit("")).cast("binary"))
    return F.pmod(hashed, F.lit(groups or DEFAULT_GROUPS)).cast("int")


def analyze(
    spans: DataFrame,
    logs: DataFrame | None = None,
    *,
    log_time: Literal["end", "start"] = "end",
    derived_stages: bool = True,
    groups: int | None = None,
) -> DataFrame:
    """Every trace of ``spans`` (a dataset's span rows, e.g. ``spark.read.parquet(DIR)`` or
    ``read(spark, DIR)[0]``) analysed by ``core.analyze``, one group of whole traces at a time:
    the dataset's ``bucket`` (else ``crc32(trace_id) mod groups``, 64 by default). With
    ``logs`` (the dataset's log rows), spans derived from stage log lines are added as in a
    local read. Returns the analysed spans (``kernels.ANALYSED``): self time (``self_ns``),
    critical-path time (``cp_ns``), ``has_error``, ``error_originated``, the tree columns."""
    require()
    from pyspark.sql import functions as F

    from ml_tracelens.spark import kernels

    key = kernels.GROUP
    frames = [spans] if logs is None else [spans, logs]
    if groups is None and not all("bucket" in frame.columns for frame in frames):
        groups = DEFAULT_GROUPS
    keyed = spans.withColumn(key, group_column(F.col("trace_id"), groups))
    if logs is None:
        run = kernels.group_analyser(log_time=log_time, derived_stages=derived_stages)
        return keyed.groupBy(key).applyInArrow(run, kernels.ANALYSED_DDL)
    log_key = F.coalesce(F.col("trace_id"), F.col("correlation_id"))
    keyed_logs = logs.withColumn(key, group_column(log_key, groups))
    both = functools.partial(
        kernels.analyse_cogroup, log_time=log_time, derived_stages=derived_stages
    )
    return (
        keyed.groupBy(key).cogroup(keyed_logs.groupBy(key)).applyInArrow(both, kernels.ANALYSED_DDL)
    )


def dataset_inputs(spark: SparkSession, path: str) -> list[dict[str, JsonValue]]:
    """The inputs block of a report on the dataset at ``path``, as the local reader gives it."""
    manifest = _manifest(spark, path)
    spans, logs = int(manifest["spans"]), int(manifest["logs"])
    return [
        {
            "path": path,
            "format": "dataset",
            "spans": spans,
            "logs": logs,
            "lines": spans + logs,
            "records": spans + logs,
            "skipped": 0,
            "skipped_items": 0,
            "ignored": {},
        }
    ]
