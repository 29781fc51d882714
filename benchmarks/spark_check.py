"""The Spark engine against the local one on the 1M-span benchmark dump: convert it to a dataset
(once), run latency, errors and bottlenecks with both engines, print the timings and the largest
relative difference of any number (the check fails above 1e-9, or on any other difference).

    python benchmarks/spark_check.py                        # benchmarks/data/otlp-1000000-s7.jsonl
    python benchmarks/spark_check.py --dump DUMP --dataset /tmp/ds --master 'local[2]'

Needs the ``spark`` extra (``pip install -e '.[spark]'``) and Java 17+.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
DEFAULT_DUMP = HERE / "data" / "otlp-1000000-s7.jsonl"
REL = 1e-9
T = TypeVar("T")


def timed(label: str, work: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = work()
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.2f} s", flush=True)
    return out, seconds


def differences(ours: Any, theirs: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """(where, relative difference) of every number; a difference of anything else is inf."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        yield where, 0.0 if ours == theirs else math.inf
    elif isinstance(ours, int | float) and isinstance(theirs, int | float):
        scale = max(abs(ours), abs(theirs))
        yield where, abs(ours - theirs) / scale if scale else 0.0
    elif isinstance(ours, dict) and isinstance(theirs, dict):
        if ours.keys() != theirs.keys():
            yield f"{where} (keys)", math.inf
            return
        for key in theirs:
            yield from differences(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            yield f"{where} (length)", math.inf
            return
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            yield from differences(a, b, f"{where}[{index}]")
    else:
        yield where, 0.0 if ours == theirs else math.inf


def document(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.to_json())
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", type=Path, default=DEFAULT_DUMP)
    parser.add_argument("--dataset", type=Path, help="default: DUMP with .dataset for .jsonl")
    parser.add_argument("--buckets", type=int, default=64)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args()

    import ml_tracelens as tl
    from ml_tracelens import spark as tls
    from ml_tracelens.api import convert_dataset

    dataset: Path = args.dataset or args.dump.with_suffix(".dataset")
    print(f"dump {args.dump}\ndataset {dataset}", flush=True)
    if not (dataset / "_tracelens.json").is_file():
        timed(
            f"convert --dataset ({args.buckets} buckets)",
            lambda: convert_dataset([str(args.dump)], str(dataset), buckets=args.buckets),
        )

    print("local engine", flush=True)
    local, load_s = timed("load + analyse", lambda: tl.load(dataset, cache=False))
    theirs: dict[str, Any] = {}
    local_s = load_s
    for name in ("latency", "errors", "bottlenecks"):
        result, seconds = timed(name, lambda name=name, t=local: getattr(tl, name)(t))
        theirs[name] = document(result)
        local_s += seconds
    del local

    print(f"spark engine ({args.master})", flush=True)
    from pyspark.sql import SparkSession

    if args.master.startswith("local"):  # the workers import this interpreter's ml_tracelens
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    spark, session_s = timed(
        "session (JVM start)",
        lambda: (
            SparkSession.builder.master(args.master)
            .appName("tracelens-spark-check")
            .config("spark.driver.memory", args.driver_memory)
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        ),
    )
    spark.sparkContext.setLogLevel("ERROR")
    spans, logs = tls.read(spark, str(dataset))
    analysed = tls.analyze(spans, logs).cache()
    count, analyse_s = timed("read + analyse (applyInArrow)", analysed.count)
    inputs = tls.dataset_inputs(spark, str(dataset))
    ours: dict[str, Any] = {}
    spark_s = analyse_s
    for name in ("latency", "errors", "bottlenecks"):
        extra: dict[str, Any] = {"inputs": inputs}
        if name == "errors":
            extra["logs"] = logs
        result, seconds = timed(name, lambda name=name, e=extra: getattr(tls, name)(analysed, **e))
        ours[name] = document(result)
        spark_s += seconds
    spark.stop()

    print(f"\nspans analysed by Spark: {count:,}")
    print(
        f"local: {local_s:.2f} s (load + 3 reports); spark: {spark_s:.2f} s + {session_s:.2f} s session"
    )
    worst_all = 0.0
    for name in ours:
        found = list(differences(ours[name], theirs[name], name))
        where, worst = max(found, key=lambda item: item[1])
        worst_all = max(worst_all, worst)
        print(
            f"{name:<12} {len(found):6,} values compared, max relative difference {worst:.3g} ({where})"
        )
    ok = worst_all <= REL
    print("OK: the same to 1e-9" if ok else "MISMATCH beyond 1e-9")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
