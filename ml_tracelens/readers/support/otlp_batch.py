"""Map the fast path's raw OTLP columns to the canonical span table, vectorised.

Only spans that carry events or links (a small minority: exceptions, retries) are looked at one
by one, to turn OTLP events into the canonical event list and to find exception messages.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import orjson
import polars as pl

from ml_tracelens.limits import too_deep
from ml_tracelens.readers.support.jsondoc import is_utf8
from ml_tracelens.readers.support.otlp_fast import (
    SpanBatch,
    event_dicts,
    link_dicts,
    without_deep_values,
)
from ml_tracelens.schema import SPAN_SCHEMA, normalize_spans

_KINDS = {
    "1": "internal",
    "2": "server",
    "3": "client",
    "4": "producer",
    "5": "consumer",
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}
_STATUSES = {
    "1": "ok",
    "2": "error",
    "STATUS_CODE_OK": "ok",
    "STATUS_CODE_ERROR": "error",
}


def canonical_from_batch(
    batch: SpanBatch, source_name: str | Sequence[tuple[int, str]]
) -> tuple[pl.DataFrame, list[int]]:
    """The canonical spans of the batch, and the lines dropped for invalid UTF-8.

    Attributes travel as raw bytes that the typed decoder does not validate; a line whose bytes
    are not UTF-8 is malformed as a whole, so all its spans go and the caller counts it skipped.

    ``source_name``: the input's name, or (offset, name) per input when the batch holds several
    (by offset; an input's lines are numbered ``offset + line``, after the previous input's).
    """
    # Row numbers before any line is dropped: batch.extras is keyed by them.
    raw = batch.frame().with_row_index("_row")
    lines = raw.select("line").unique()
    if isinstance(source_name, str):
        texts = lines.with_columns(_source=pl.format("{}:{}", pl.lit(source_name), "line"))
    else:
        offsets = pl.Series([offset for offset, _ in source_name], dtype=pl.Int64)
        owner = offsets.search_sorted(lines.get_column("line"), side="left") - 1
        names = pl.Series([name for _, name in source_name], dtype=pl.String).gather(owner)
        local = lines.get_column("line") - offsets.gather(owner)
        texts = lines.with_columns(_source=pl.format("{}:{}", pl.lit(names), pl.lit(local)))
    # A line holds hundreds of spans: each span's text shares its line's (a join gathers views
    # of one buffer), where formatting a text per span would cost ~60 MB on 1M spans.
    raw = raw.join(texts, on="line", how="left", maintain_order="left")
    source = pl.col("_source")
    bad_lines: list[int] = []
    try:
        raw, resources = _with_text_attributes(raw), _resource_table(batch)
    except pl.exceptions.ComputeError:
        # Raw attribute bytes are not UTF-8 somewhere (rare): find the lines, drop them whole.
        bad_lines = _lines_with_invalid_utf8(batch)
        raw = _with_text_attributes(raw.filter(~pl.col("line").is_in(bad_lines)))
        resources = _resource_table(batch, valid_only=True)
    raw = _without_deep_attributes(raw, batch)
    raw = raw.join(resources, on="resource_index", how="left", maintain_order="left")
    span_attrs = pl.col("_span_text")
    attributes = pl.when(span_attrs.str.contains(r"\{")).then(span_attrs).otherwise(pl.lit("{}"))
    frame = raw.select(
        "_row",
        "trace_id",
        "span_id",
        pl.col("parent_id"),
        "service",
        "name",
        kind=pl.col("kind").replace_strict(_KINDS, default=None, return_dtype=pl.String),
        start_ns=pl.col("start").cast(pl.Int64, strict=False),
        end_ns=pl.col("end").cast(pl.Int64, strict=False),
        duration_ns=pl.lit(None, dtype=pl.Int64),
        status=pl.col("status_code").replace_strict(
            _STATUSES, default="unset", return_dtype=pl.String
        ),
        status_message=pl.when(pl.col("status_message") != "").then(pl.col("status_message")),
        attributes=attributes,
        resource=pl.col("_resource"),
        events=pl.lit(None, dtype=pl.String),
        links=pl.lit(None, dtype=pl.String),
        source=source,
    )
    extras = _events_and_links(batch.extras)
    if extras is not None:
        frame = (
            frame.join(extras, on="_row", how="left")
            .with_columns(
                events=pl.col("_events"),
                links=pl.col("_links"),
                # An exception event marks a span with no status of its own as failed.
                status=pl.when((pl.col("status") == "unset") & pl.col("_exception").is_not_null())
                .then(pl.lit("error"))
                .otherwise(pl.col("status")),
                status_message=pl.when(
                    pl.col("status_message").is_null()
                    & ((pl.col("status") == "error") | (pl.col("status") == "unset"))
                )
                .then(pl.col("_exception"))
                .otherwise(pl.col("status_message")),
            )
            .drop("_events", "_links", "_exception")
        )
    frame = frame.drop("_row").with_columns(
        pl.col("kind").cast(SPAN_SCHEMA["kind"]), pl.col("status").cast(SPAN_SCHEMA["status"])
    )
    return normalize_spans(frame.select(list(SPAN_SCHEMA))), bad_lines


def _without_deep_attributes(raw: pl.DataFrame, batch: SpanBatch) -> pl.DataFrame:
    """``raw`` with attribute values nested deeper than the limit dropped from ``_span_text``
    (polars' JSON functions and ``schema.attributes_dict`` could not read the span's other
    attributes either); each span so changed is noted in ``batch.deep_values``."""
    depth = batch.depth
    text = pl.col("_span_text")
    # Nesting deeper than ``depth`` takes more than 2 * depth bytes and more than depth opening
    # brackets: the two bounds leave the exact check for a handful of rows.
    candidates = (
        raw.select("_row", "_span_text")
        .filter(text.str.len_bytes() > 2 * depth)
        .filter(text.str.count_matches(r"[\[{]") > depth)
    )
    fixed: dict[int, str] = {}
    for row, value in candidates.iter_rows():
        data = value.encode()
        if not too_deep(data, depth):
            continue
        kept, dropped = without_deep_values(data, depth)
        fixed[row] = kept.decode()
        line = batch.line[row]
        # A document's spans are consecutive rows, numbered from its first row unless some of
        # its spans were read apart (``batch.positions``).
        offset = row - bisect_left(batch.line, line)
        index = batch.positions[line][offset] if line in batch.positions else offset
        batch.deep_values.append((line, f"span {index}", dropped))
    if not fixed:
        return raw
    patch = pl.DataFrame(
        {"_row": list(fixed), "_fixed": list(fixed.values())},
        schema={"_row": pl.UInt32, "_fixed": pl.String},
    )
    return (
        raw.join(patch, on="_row", how="left", maintain_order="left")
        .with_columns(_span_text=pl.coalesce("_fixed", "_span_text"))
        .drop("_fixed")
    )


def _with_text_attributes(raw: pl.DataFrame) -> pl.DataFrame:
    return raw.with_columns(_span_text=pl.col("span_attributes").cast(pl.String))


def _resource_table(batch: SpanBatch, *, valid_only: bool = False) -> pl.DataFrame:
    """(resource_index, _resource): each distinct resource's attributes as Categorical JSON
    text, null for none. ``valid_only`` leaves out the ones that are not UTF-8."""
    texts = batch.resources
    if valid_only:
        texts = [t if is_utf8(t) else b"" for t in texts]
    table = pl.DataFrame(
        {
            "resource_index": pl.Series(range(len(texts)), dtype=pl.UInt32),
            "_resource": pl.Series(texts, dtype=pl.Binary).cast(pl.String),
        }
    )
    return table.with_columns(
        pl.when(pl.col("_resource") != "").then(pl.col("_resource")).cast(pl.Categorical)
    )


def _lines_with_invalid_utf8(batch: SpanBatch) -> list[int]:
    bad_resources = {i for i, text in enumerate(batch.resources) if not is_utf8(text)}
    bad: set[int] = set()
    for row, value in enumerate(batch.attributes):
        if not is_utf8(value) or batch.resource[row] in bad_resources:
            bad.add(batch.line[row])
    return sorted(bad)


def _events_and_links(extras: dict[int, tuple[Any, Any]]) -> pl.DataFrame | None:
    if not extras:
        return None
    rows: list[int] = []
    events_out: list[str | None] = []
    links_out: list[str | None] = []
    exceptions: list[str | None] = []
    for row, (events, links) in extras.items():
        canonical_events, exception = event_dicts(events)
        rows.append(row)
        events_out.append(orjson.dumps(canonical_events).decode() if canonical_events else None)
        exceptions.append(exception)
        canonical_links = link_dicts(links)
        links_out.append(orjson.dumps(canonical_links).decode() if canonical_links else None)
    return pl.DataFrame(
        {"_row": rows, "_events": events_out, "_links": links_out, "_exception": exceptions},
        schema={
            "_row": pl.UInt32,
            "_events": pl.String,
            "_links": pl.String,
            "_exception": pl.String,
        },
    )
