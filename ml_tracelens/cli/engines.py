"""``--engine local|spark``: the aggregate reports (latency, errors, bottlenecks) on a dataset,
computed by Spark (``ml_tracelens.spark``) instead of in this process. Nothing here imports
polars or pyspark until the Spark engine runs."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ml_tracelens.exceptions import UsageError

if TYPE_CHECKING:
    from ml_tracelens.api import Result
    from ml_tracelens.cli.options import Common


class Engine(StrEnum):
    LOCAL = "local"
    SPARK = "spark"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: in this process; spark: on a Spark cluster, for a dataset written by "
        "`tracelens convert --dataset` (needs `pip install 'ml-tracelens[spark]'`).",
    ),
]
SparkMasterOpt = Annotated[
    str,
    typer.Option(
        "--spark-master",
        metavar="URL",
        help="The Spark master of --engine spark: local[*], spark://HOST:7077, yarn, ...",
    ),
]
DEFAULT_MASTER = "local[*]"
Report = Literal["latency", "errors", "bottlenecks"]


def spark_report(
    report: Report,
    paths: Sequence[str],
    common: Common,
    *,
    master: str,
    by: Sequence[str] = ("stage",),
    sort: str | None = None,
    top: int | None = None,
    error_top: int = 10,
    tail: float = 0.95,
) -> Result:
    """``report`` on the dataset ``paths`` names, by the Spark engine."""
    from ml_tracelens import spark as tls

    tls.require()
    path = _dataset_path(paths)
    _refuse_local_only_options(common)
    log_time = common.reading()["log_time"]
    spark = tls.session(master)
    spark.sparkContext.setLogLevel("ERROR")
    spans, logs = tls.read(spark, path)
    analysed = tls.analyze(
        spans, logs, log_time=log_time, derived_stages=common.derived_stages
    ).cache()
    try:
        inputs = tls.dataset_inputs(spark, path)
        if report == "latency":
            return tls.latency(
                analysed, by=by, sort=sort, top=top, distribution=common.pictures, inputs=inputs
            )
        if report == "errors":
            return tls.errors(analysed, logs, top=error_top, inputs=inputs)
        return tls.bottlenecks(analysed, tail=tail, top=top, inputs=inputs)
    finally:
        analysed.unpersist()


def _dataset_path(paths: Sequence[str]) -> str:
    if len(paths) != 1:
        raise UsageError(
            "--engine spark reads one dataset (a directory written by "
            "`tracelens convert PATHS --dataset DIR`)"
        )
    path = paths[0]
    if "://" not in path and not (Path(path) / "_tracelens.json").is_file():
        raise UsageError(
            f"{path}: --engine spark reads a dataset (a directory written by "
            "`tracelens convert PATHS --dataset DIR`), not dumps"
        )
    return path


def _refuse_local_only_options(common: Common) -> None:
    used = [
        flag
        for flag, value in (
            ("--where", common.where),
            ("--since", common.since),
            ("--until", common.until),
            ("--service", common.service),
            ("--stage", common.stage),
            ("--field", common.field),
            ("--input-format", common.input_format),
            ("--strict", common.strict),
        )
        if value
    ]
    if used:
        raise UsageError(f"{', '.join(used)}: not supported with --engine spark yet")
