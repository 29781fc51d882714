"""What runs on Spark's executors: whole groups of traces as Arrow tables in, polars inside,
Arrow out. Nothing here imports pyspark, so the kernels are the local engine's code, run on a
group of traces instead of the whole dump:

- ``analyse_group``: the spans (and log records) of one group of whole traces through the same
  steps as reading a dataset locally (``ingest``): identical duplicates merged, spans derived
  from stage log lines and LLM stages, then ``core.analyze`` (trees, self time, critical path,
  error origin).
- ``message_group``: the error-message occurrences of one group (``reports.errors``).
- ``group_key_batch``: the ``--by`` key columns of a batch of spans (``core.stats``), for keys
  read from the attributes' JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import orjson
import polars as pl
import pyarrow as pa

from ml_tracelens.core import Structure, analyze
from ml_tracelens.core.stats import with_group_columns
from ml_tracelens.ingest import merge_identical_duplicates, with_llm_stages, with_slack
from ml_tracelens.ingest.log_spans import LogTime, spans_from_logs
from ml_tracelens.readers.base import RESOLUTION_COLUMN, resolution_runs
from ml_tracelens.reports.errors import message_records
from ml_tracelens.schema import LOG_SCHEMA, SPAN_SCHEMA

#: The analysed span table the Spark engine returns: the canonical columns (``kind``,
#: ``status``, ``resource`` and ``source`` as text), the results of ``core.analyze``, and the
#: group (``bucket``) the trace was analysed in.
ANALYSED: tuple[tuple[str, pa.DataType, str], ...] = (
    ("trace_id", pa.string(), "string"),
    ("span_id", pa.string(), "string"),
    ("parent_id", pa.string(), "string"),
    ("service", pa.string(), "string"),
    ("name", pa.string(), "string"),
    ("kind", pa.string(), "string"),
    ("start_ns", pa.int64(), "bigint"),
    ("end_ns", pa.int64(), "bigint"),
    ("duration_ns", pa.int64(), "bigint"),
    ("status", pa.string(), "string"),
    ("status_message", pa.string(), "string"),
    ("attributes", pa.string(), "string"),
    ("resource", pa.string(), "string"),
    ("events", pa.string(), "string"),
    ("links", pa.string(), "string"),
    ("source", pa.string(), "string"),
    ("slack_ns", pa.int64(), "bigint"),
    ("is_root", pa.bool_(), "boolean"),
    ("is_orphan", pa.bool_(), "boolean"),
    ("top_id", pa.string(), "string"),
    ("depth", pa.int32(), "int"),
    ("skewed", pa.bool_(), "boolean"),
    ("outside_parent", pa.bool_(), "boolean"),
    ("self_ns", pa.int64(), "bigint"),
    ("cp_ns", pa.int64(), "bigint"),
    ("has_error", pa.bool_(), "boolean"),
    ("error_originated", pa.bool_(), "boolean"),
    ("bucket", pa.int32(), "int"),
    # The group's ``core.Structure`` and merged duplicates as JSON (``structure_json``), on one
    # row of each group (null on the others): the warnings of a local run, summed by the driver.
    ("_group_structure", pa.string(), "string"),
)
ANALYSED_DDL = ", ".join(f"`{name}` {ddl}" for name, _, ddl in ANALYSED)
_ANALYSED_ARROW = pa.schema([(name, arrow) for name, arrow, _ in ANALYSED])

#: One error-message occurrence (``reports.errors.message_records``).
MESSAGES: tuple[tuple[str, pa.DataType, str], ...] = (
    ("trace_id", pa.string(), "string"),
    ("stage", pa.string(), "string"),
    ("time_ns", pa.int64(), "bigint"),
    ("message", pa.string(), "string"),
)
MESSAGES_DDL = ", ".join(f"`{name}` {ddl}" for name, _, ddl in MESSAGES)
_MESSAGES_ARROW = pa.schema([(name, arrow) for name, arrow, _ in MESSAGES])

#: The prefix of group key columns in Spark (``KEY`` + the key's index).
KEY = "_tracelens_key_"
#: The grouping column both sides of a cogroup carry.
GROUP = "_tracelens_group"


def canonical(table: pa.Table, schema: pl.Schema, *extra: str) -> pl.DataFrame:
    """A group's rows as the canonical frame of ``schema`` (plus ``extra`` columns), in the
    order they were read (``_seq``), as ``readers.dataset`` reads them locally. Columns the
    table lacks are null."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if "_seq" in frame.columns:
        frame = frame.sort("_seq", maintain_order=True)
    missing = [c for c in (*schema, *extra) if c not in frame.columns]
    if missing:
        frame = frame.with_columns(pl.lit(None).alias(c) for c in missing)
    # Enums and Categoricals arrive as text, as the dataset stores them: cast back.
    types = pl.Schema([*schema.items(), *((name, pl.Int64()) for name in extra)])
    return frame.select(*schema, *extra).cast(types)


def analyse_group(
    spans: pa.Table,
    logs: pa.Table | None = None,
    *,
    log_time: LogTime = "end",
    derived_stages: bool = True,
) -> pa.Table:
    """``core.analyze`` on one group of whole traces, after the steps of a local read."""
    bucket = _group_of(spans) if spans.num_rows else _group_of(logs)
    frame = canonical(spans, SPAN_SCHEMA)
    frame, merged = merge_identical_duplicates(frame)
    if logs is not None and logs.num_rows:
        log_frame = canonical(logs, LOG_SCHEMA, RESOLUTION_COLUMN)
        runs = resolution_runs(log_frame.get_column(RESOLUTION_COLUMN))
        derived = spans_from_logs(
            log_frame.drop(RESOLUTION_COLUMN),
            known_trace_ids=frame.get_column("trace_id"),
            log_time=log_time,
            resolutions=runs,
        )
        if derived.spans.height:
            frame = with_slack(frame, derived)
    frame, _ = with_llm_stages(frame, enabled=derived_stages)
    if frame.is_empty():
        return _ANALYSED_ARROW.empty_table()
    analysis = analyze(frame)
    analysed = analysis.spans
    if "slack_ns" not in analysed.columns:
        analysed = analysed.with_columns(slack_ns=pl.lit(None, pl.Int64))
    first = pl.int_range(pl.len()) == 0
    out = analysed.with_columns(
        pl.col("kind", "status", "resource", "source").cast(pl.String),
        bucket=pl.lit(bucket, pl.Int32),
        _group_structure=pl.when(first).then(pl.lit(structure_json(analysis.structure, merged))),
    ).select(_ANALYSED_ARROW.names)
    return out.to_arrow().cast(_ANALYSED_ARROW)


def group_analyser(
    *, log_time: LogTime = "end", derived_stages: bool = True
) -> Callable[[pa.Table], pa.Table]:
    """``analyse_group`` with its options, for ``groupBy(...).applyInArrow``: a function whose
    type hints say it takes and returns a whole table (pyspark 4.1 reads them to choose the
    form; a ``functools.partial`` has none)."""

    def analyse(spans: pa.Table) -> pa.Table:
        return analyse_group(spans, log_time=log_time, derived_stages=derived_stages)

    return analyse


def structure_json(structure: Structure, merged_duplicates: int) -> str:
    """A group's structure counts and the identical duplicates merged before its analysis."""
    fields = {f.name: getattr(structure, f.name) for f in dataclasses.fields(Structure)}
    fields["skew_by_service_pair"] = [
        [parent, child, count] for (parent, child), count in structure.skew_by_service_pair.items()
    ]
    fields["_merged"] = merged_duplicates
    return orjson.dumps(fields).decode()


def merged_structure(documents: Sequence[str]) -> tuple[Structure, int]:
    """The structure of the groups of ``structure_json`` documents together (their counts
    summed; traces lie in one group each, so that is the whole dump's), and the duplicates
    merged."""
    totals: dict[str, int] = {}
    pairs: dict[tuple[str | None, str | None], int] = {}
    merged = 0
    for text in documents:
        fields = orjson.loads(text)
        merged += int(fields.pop("_merged"))
        for parent, child, count in fields.pop("skew_by_service_pair"):
            pairs[(parent, child)] = pairs.get((parent, child), 0) + int(count)
        for name, value in fields.items():
            totals[name] = totals.get(name, 0) + int(value)
    # As core.analyze orders them: most frequent first, then by name (missing names first).
    ordered = sorted(
        pairs.items(),
        key=lambda item: (-item[1], *((n is not None, n or "") for n in item[0])),
    )
    return Structure(**totals, skew_by_service_pair=dict(ordered)), merged


def analyse_cogroup(
    spans: pa.Table, logs: pa.Table, *, log_time: LogTime = "end", derived_stages: bool = True
) -> pa.Table:
    return analyse_group(spans, logs, log_time=log_time, derived_stages=derived_stages)


def _group_of(table: pa.Table | None) -> int | None:
    if table is None or not table.num_rows or GROUP not in table.column_names:
        return None
    value = table.column(GROUP)[0].as_py()
    return None if value is None else int(value)


def message_group(spans: pa.Table, logs: pa.Table | None = None) -> pa.Table:
    """``reports.errors.message_records`` on one group of whole traces (analysed spans and
    their log records)."""
    frame = pl.from_arrow(spans)
    assert isinstance(frame, pl.DataFrame)
    log_frame = (
        canonical(logs, LOG_SCHEMA) if logs is not None and logs.num_rows else _empty(LOG_SCHEMA)
    )
    if frame.is_empty():
        frame = _empty(pl.Schema(dict.fromkeys(("trace_id", "span_id", "name"), pl.String)))
        frame = frame.with_columns(
            status=pl.lit(None, pl.String),
            status_message=pl.lit(None, pl.String),
            start_ns=pl.lit(None, pl.Int64),
        )
    records = message_records(frame, log_frame).select(_MESSAGES_ARROW.names)
    return records.to_arrow().cast(_MESSAGES_ARROW)


def message_cogroup(spans: pa.Table, logs: pa.Table) -> pa.Table:
    return message_group(spans, logs)


def message_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``message_group`` of error spans without logs: batch by batch, no grouping needed."""
    for batch in batches:
        yield from message_group(pa.Table.from_batches([batch])).to_batches()


def group_key_batches(
    batches: Iterator[pa.RecordBatch], *, by: Sequence[str], keep: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    """Per batch of analysed spans: the ``keep`` columns and the ``--by`` key columns (text) of
    ``core.stats.with_group_columns``, as ``KEY``0, ``KEY``1...: attribute keys hold dots,
    which Spark reads as struct fields."""
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        keyed, names = with_group_columns(frame, by)
        keys = [pl.col(n).cast(pl.String).alias(f"{KEY}{i}") for i, n in enumerate(names)]
        out = keyed.select(*keep, *keys)
        schema = pa.schema(
            [*((name, batch.schema.field(name).type) for name in keep)]
            + [(f"{KEY}{i}", pa.string()) for i in range(len(names))]
        )
        yield from out.to_arrow().cast(schema).to_batches()


def _empty(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
