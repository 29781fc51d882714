"""Helpers shared by the Zipkin-lineage readers (Zipkin, Jaeger) and the console reader.

- ``resolve_shared_ids``: B3/Zipkin lets a CLIENT span and its SERVER half share one span id;
  Jaeger data from Zipkin-instrumented services carries the same. The canonical table needs one
  id per span, so the group is split: every server half keeps or gets its own id, the caller
  becomes ``<id>:client``, and spans started under a shared id are put under the right half.
  The rules, with their reasons, are in ``zipkin_json``'s docstring.
- ``micros_to_ns``: µs timestamps and durations (ints, numeric strings) to int nanoseconds.
- ``canonical_id``: an id as the schema normalizes it, for ids inside JSON (links).
- ``span_location``: the ``file#index`` / ``file:line#index`` of a span inside a document.
- ``parse_spans``: a document's spans parsed to rows one by one, a malformed one skipped alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Literal, overload

import polars as pl

from ml_tracelens.durations import NS_PER_US
from ml_tracelens.readers.base import ReadResult, ReadStats
from ml_tracelens.schema import INT64_MAX, spans_from_columns

FRAGMENTS_MERGED = "span fragments merged into the span with the same id and endpoint"
#: Helper columns ``resolve_shared_ids`` reads: server-half flag, endpoint key, bare fragment flag.
SHARED_COLUMNS = ("_shared", "_endpoint", "_bare")
_KEY = ["trace_id", "span_id"]


def frame_with_helpers(
    rows: Sequence[tuple[object, ...]], columns: tuple[str, ...]
) -> pl.DataFrame:
    """Canonical span frame plus SHARED_COLUMNS from row tuples laid out as ``columns``.

    Readers collect one tuple per span and transpose once here: cheaper than appending to a
    list per column for every span.
    """
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    data = dict(zip(columns, values, strict=True))
    canonical = spans_from_columns({c: data[c] for c in columns if c not in SHARED_COLUMNS})
    helpers = pl.DataFrame(
        [
            pl.Series("_shared", data["_shared"], dtype=pl.Boolean),
            pl.Series("_endpoint", data["_endpoint"], dtype=pl.String),
            pl.Series("_bare", data["_bare"], dtype=pl.Boolean),
        ]
    )
    return pl.concat([canonical, helpers], how="horizontal")


def span_location(name: str, document_location: str, index: int | str) -> str:
    """``file#index`` for a span of a document on line 1 (a whole-file one), else ``file:line#index``."""
    if document_location == f"{name}:1":
        return f"{name}#{index}"
    return f"{document_location}#{index}"


def parse_spans(
    rows: list[tuple[object, ...]],
    spans: Iterable[object],
    parse: Callable[[object, str], tuple[object, ...]],
    stats: ReadStats,
    *,
    what: str,
    name: str,
    location: str,
    first: int = 0,
) -> int:
    """Append ``parse(span, where)`` to ``rows`` for each of ``spans``, numbered from ``first``
    in ``where`` (``span_location``). A span it raises for (a wrong type, a missing key) is
    skipped alone as a malformed ``what`` span. Returns the number after the last span."""
    index = first
    for span in spans:
        where = span_location(name, location, index)
        index += 1
        try:
            rows.append(parse(span, where))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            stats.skip_item(where, f"malformed {what} span ({exc})")
    return index


@overload
def checked_id(value: object, field: str, *, required: Literal[True]) -> str: ...
@overload
def checked_id(value: object, field: str, *, required: bool = False) -> str | None: ...
def checked_id(value: object, field: str, *, required: bool = False) -> str | None:
    """An id as the document writes it; None for null, empty or all zeros (how these formats
    write "no id"), ValueError for that when ``required``, TypeError for a non-string."""
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {field}")
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} is not a string: {value!r}")
    if value.strip("0") == "":
        if required:
            raise ValueError(f"{field} is all zeros")
        return None
    return value


def canonical_id(value: str) -> str:
    """One id spelled as ``schema.normalize_id`` spells it, for ids inside JSON columns (links)."""
    lowered = value.strip().lower()
    if not lowered or lowered.strip("0123456789abcdef"):
        return value
    if len(lowered) < 16:
        return lowered.zfill(16)
    if 16 < len(lowered) < 32:
        return lowered.zfill(32)
    return lowered


def micros_to_ns(value: object, field: str) -> int | None:
    """Microseconds (int, numeric string, or a JSON number with a fraction) -> int nanoseconds.

    Integer or decimal arithmetic only: an epoch in µs times 1000 is past 2^53, where a float
    would round it.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError(f"{field} is a boolean, not a number")
    if isinstance(value, int):
        result = value * NS_PER_US
    elif isinstance(value, str | float):
        try:
            number = Decimal(value.strip() if isinstance(value, str) else repr(value))
        except InvalidOperation:
            raise ValueError(f"{field} is not a number: {value!r}") from None
        # adjusted() is the decimal exponent: refuse absurd magnitudes before int() expands them.
        if not number.is_finite() or number.adjusted() > 18:
            raise ValueError(f"{field} is out of range: {value!r}")
        result = int(number * NS_PER_US)
    else:
        raise TypeError(f"{field} is not a number: {value!r}")
    if not -INT64_MAX <= result <= INT64_MAX:
        raise ValueError(f"{field} is out of range: {value!r}")
    return result


def resolve_shared_ids(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Give every span of a shared-id group its own id.

    ``frame`` is canonical (ids normalized) plus SHARED_COLUMNS: ``_shared`` (declared server
    half), ``_endpoint`` (local endpoint key, null when unknown), ``_bare`` (a piece with nothing
    but ids, name and endpoint). Returns the canonical frame and what was dropped or repaired,
    as ``{reason: count}`` for ``ReadStats.ignore``. The rules are in ``zipkin_json``'s
    docstring; all of it is joins and window expressions over the whole frame, no loop per span.
    """
    canonical = [c for c in frame.columns if c not in SHARED_COLUMNS]
    notes: dict[str, int] = {}
    # A span naming itself as parent is a corrupt reference (Zipkin's cleaner drops it too);
    # left in, the client/server split below would turn it into a two-span cycle.
    self_parent = pl.col("parent_id") == pl.col("span_id")
    _note(notes, "self-referencing parent ids dropped", frame.select(self_parent.sum()).item())
    frame = frame.with_columns(parent_id=pl.when(self_parent).then(None).otherwise("parent_id"))
    if frame.is_empty() or not frame.select(pl.struct(_KEY).is_duplicated().any()).item():
        return frame.select(canonical), notes
    # Identical copies (a span reported twice) would otherwise be numbered as two server
    # halves and no longer look identical to ingest's duplicate merge.
    content = [c for c in frame.columns if c != "source"]
    unique = frame.unique(subset=content, keep="first", maintain_order=True)
    _note(notes, "identical duplicate spans dropped", frame.height - unique.height)
    frame = unique.with_row_index("_row")

    piece = [*_KEY, "_endpoint"]
    fragment = (
        pl.col("_bare") & pl.col("_endpoint").is_not_null() & (~pl.col("_bare")).any().over(piece)
    )
    fragment_name = (
        pl.when(pl.col("_bare") & (pl.col("name") != "")).then(pl.col("name")).max().over(piece)
    )
    frame = frame.with_columns(_fragment=fragment, _fragment_name=fragment_name)
    _note(notes, FRAGMENTS_MERGED, int(frame.get_column("_fragment").sum()))
    frame = frame.filter(~pl.col("_fragment")).with_columns(
        name=pl.when(pl.col("name") == "")
        .then(pl.coalesce("_fragment_name", "name"))
        .otherwise("name")
    )

    client_kind = (pl.col("kind") == "client").fill_null(False)
    server_kind = (pl.col("kind") == "server").fill_null(False)
    declared = pl.col("_shared") & ~client_kind
    # Zipkin backfills a missing shared flag on a SERVER that repeats a CLIENT's id.
    frame = frame.with_columns(_half=declared | (server_kind & client_kind.any().over(_KEY)))
    frame = frame.with_columns(
        _has_half=pl.col("_half").any().over(_KEY),
        _has_caller=(~pl.col("_half")).any().over(_KEY),
    )
    halves = (
        frame.filter("_half")
        .sort([*_KEY, "start_ns", "_row"], nulls_last=True)
        .with_columns(_n=pl.int_range(1, pl.len() + 1).over(_KEY))
        .select(
            "_row",
            "trace_id",
            _key=pl.col("span_id"),
            _cand_id=pl.when(pl.col("_n") == 1)
            .then(pl.col("span_id"))
            .otherwise(pl.col("span_id") + ":server" + pl.col("_n").cast(pl.String)),
            _cand_start=pl.col("start_ns"),
            _cand_endpoint=pl.col("_endpoint"),
            _cand_service=pl.col("service"),
        )
    )
    callers = (
        frame.filter(~pl.col("_half") & pl.col("_has_half"))
        .group_by(_KEY)
        .agg(_caller_service=pl.col("service").first())
        .select(
            "trace_id",
            _key=pl.col("span_id"),
            _parent_caller=pl.col("span_id") + ":client",
            _caller_service=pl.col("_caller_service"),
        )
    )
    # Which server half of its parent's group a span belongs under: same endpoint first, then
    # same service (when the client half is elsewhere); among those the latest to start at or
    # before it.
    pairs = (
        frame.filter(pl.col("parent_id").is_not_null() & ~(pl.col("_half") & pl.col("_has_caller")))
        .select(
            "_row",
            "trace_id",
            _key=pl.col("parent_id"),
            _start=pl.col("start_ns"),
            _ep=pl.col("_endpoint"),
            _svc=pl.col("service"),
        )
        .join(halves.drop("_row"), on=["trace_id", "_key"], how="inner")
        .join(callers.drop("_parent_caller"), on=["trace_id", "_key"], how="left")
    )
    same_endpoint = pl.col("_ep").is_null() | (pl.col("_ep") == pl.col("_cand_endpoint"))
    same_service = (pl.col("_svc") == pl.col("_cand_service")) & (
        pl.col("_caller_service").is_null() | (pl.col("_caller_service") != pl.col("_svc"))
    )
    before = (pl.col("_cand_start") <= pl.col("_start")).fill_null(False)
    chosen = (
        pairs.with_columns(
            _rank=pl.when(same_endpoint).then(0).when(same_service).then(1),
            _later=~before,
            _order=pl.when(before).then(-pl.col("_cand_start")).otherwise(pl.col("_cand_start")),
        )
        .filter(pl.col("_rank").is_not_null())
        .sort(["_row", "_rank", "_later", "_order"], nulls_last=True)
        .group_by("_row", maintain_order=True)
        .first()
        .select("_row", _resolved=pl.col("_cand_id"))
    )
    own_caller = pl.col("span_id") + ":client"
    frame = (
        frame.join(halves.select("_row", "_cand_id"), on="_row", how="left")
        .join(chosen, on="_row", how="left")
        .join(
            callers.select("trace_id", "_parent_caller", parent_id=pl.col("_key")),
            on=["trace_id", "parent_id"],
            how="left",
        )
        .with_columns(
            parent_id=pl.when(pl.col("_half") & pl.col("_has_caller"))
            .then(own_caller)
            .otherwise(pl.coalesce("_resolved", "_parent_caller", "parent_id")),
            span_id=pl.when(pl.col("_half"))
            .then(pl.col("_cand_id"))
            .when(pl.col("_has_half"))
            .then(own_caller)
            .otherwise(pl.col("span_id")),
        )
        .sort("_row")
    )
    return frame.select(canonical), notes


def _note(notes: dict[str, int], what: str, count: int) -> None:
    if count:
        notes[what] = count


def shared_id_result(
    rows: Sequence[tuple[object, ...]], columns: tuple[str, ...], stats: ReadStats
) -> ReadResult:
    """The span frame of parsed rows with shared client/server ids resolved, notes counted."""
    frame, notes = resolve_shared_ids(frame_with_helpers(rows, columns))
    for what, count in notes.items():
        stats.ignore(what, count)
    return ReadResult(stats=stats, spans=frame)
