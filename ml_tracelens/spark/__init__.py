"""The same analysis on Spark, for datasets (``tracelens convert --dataset``) too big for one
machine::

    from ml_tracelens import spark as tls

    spans = tls.analyze(spark.read.parquet("archive/"))   # or: tls.analyze(*tls.read(spark, DIR))
    tls.latency(spans, by="stage").rows                   # the local API's Result
    tls.errors(spans).to_json()
    tls.bottlenecks(spans, tail=0.95)

``analyze`` runs the local kernels (``core.analyze``, polars) on each group of whole traces
(the dataset's ``bucket``) inside ``groupBy(...).applyInArrow``; ``latency``, ``errors`` and
``bottlenecks`` aggregate in Spark (exact percentiles, by the linear interpolation of
``core.stats``), collect the small per-group frames and build the same ``Result`` as the local
API through the same report builders. pyspark (4.0+) and pyarrow are the ``spark`` extra:
``pip install 'ml-tracelens[spark]'``. Nothing here imports pyspark until a function runs, so
importing this package never needs it; ``kernels`` (what executors run) never does.
"""

from __future__ import annotations

from ml_tracelens.spark.engine import (
    INSTALL_HINT,
    analyze,
    dataset_inputs,
    missing_dependencies,
    read,
    require,
    session,
)
from ml_tracelens.spark.reports import bottlenecks, errors, latency, request_summary, warnings

__all__ = [
    "INSTALL_HINT",
    "analyze",
    "bottlenecks",
    "dataset_inputs",
    "errors",
    "latency",
    "missing_dependencies",
    "read",
    "request_summary",
    "require",
    "session",
    "warnings",
]
