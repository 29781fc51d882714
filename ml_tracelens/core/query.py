"""Span filters shared by every report: --where, --since/--until, --service, --stage.

Filters select which spans enter a report's statistics; trees, self time and the critical path are
computed on the whole dump first, so filtering never changes a span's own numbers (as in Jaeger's
and Tempo's span search). ``--where`` is a SQL boolean expression evaluated by polars' SQL engine
over these columns:

    trace_id, span_id, parent_id, service, stage, kind, status, status_message,
    error (boolean), duration_ms, start (timestamp), attr.KEY (an attribute, as text)

e.g. ``--where "stage = 'model.inference' AND duration_ms > 100 AND attr.model.version = 'v2'"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from ml_tracelens.core.stats import ns_to_ms
from ml_tracelens.core.tree import int_scalar
from ml_tracelens.durations import NS_PER_S, NS_PER_US, length_ns
from ml_tracelens.exceptions import NotFound, UsageError, quoted
from ml_tracelens.schema import INT64_MAX, INT64_MIN, with_attribute_columns

_ATTR = re.compile(r'"?\battr\.([A-Za-z0-9_.\-/:]+[A-Za-z0-9_])"?')


@dataclass(frozen=True)
class SpanFilter:
    where: str | None = None
    since: str | None = None
    until: str | None = None
    services: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.where or self.since or self.until or self.services or self.stages)

    def describe(self) -> str:
        parts = []
        if self.where:
            parts.append(f"--where {quoted(self.where)}")
        if self.since:
            parts.append(f"--since {self.since}")
        if self.until:
            parts.append(f"--until {self.until}")
        parts.extend(f"--service {s}" for s in self.services)
        parts.extend(f"--stage {s}" for s in self.stages)
        return " ".join(parts)


def matching(spans: pl.DataFrame, span_filter: SpanFilter) -> pl.Series:
    """A boolean mask over ``spans``: which rows the filter keeps."""
    if not span_filter.active:
        return pl.Series("keep", [True] * spans.height, dtype=pl.Boolean)
    keep = pl.lit(True)
    if span_filter.services:
        keep = keep & pl.col("service").is_in(list(span_filter.services))
    if span_filter.stages:
        keep = keep & pl.col("name").is_in(list(span_filter.stages))
    end_of_dump = int_scalar(spans.get_column("end_ns").max())
    if span_filter.since:
        keep = keep & (pl.col("start_ns") >= time_bound(span_filter.since, end_of_dump, "since"))
    if span_filter.until:
        keep = keep & (pl.col("start_ns") <= time_bound(span_filter.until, end_of_dump, "until"))
    # with_columns, not select: a literal alone broadcasts to the frame's height.
    mask = spans.with_columns(_keep=keep.fill_null(False)).get_column("_keep")
    if span_filter.where:
        mask = mask & _where_mask(spans, span_filter.where)
    if not mask.any():
        raise NotFound(f"no spans match {span_filter.describe()}")
    return mask


def apply(spans: pl.DataFrame, span_filter: SpanFilter) -> pl.DataFrame:
    if not span_filter.active:
        return spans
    return spans.filter(matching(spans, span_filter))


def _where_mask(spans: pl.DataFrame, where: str) -> pl.Series:
    keys = sorted(set(_ATTR.findall(where)))
    expression = _ATTR.sub(lambda m: f'"attr.{m.group(1)}"', where)
    view = spans.select(
        "trace_id",
        "span_id",
        "parent_id",
        "service",
        pl.col("name").alias("stage"),
        pl.col("kind").cast(pl.String),
        pl.col("status").cast(pl.String),
        "status_message",
        (pl.col("status") == "error").alias("error"),
        ns_to_ms(pl.col("duration_ns")).alias("duration_ms"),
        pl.from_epoch(pl.col("start_ns"), time_unit="ns")
        .dt.replace_time_zone("UTC")
        .alias("start"),
        *([c for c in ("attributes", "resource") if c in spans.columns] if keys else []),
    )
    if keys:
        view = with_attribute_columns(view, {f"attr.{k}": k for k in keys})
        view = view.drop("attributes", "resource", strict=False)
    try:
        result = view.sql(f"SELECT ({expression}) AS keep FROM self")
    except Exception as exc:  # polars raises several error types for bad SQL
        hints = _where_hints(where, exc)
        raise UsageError(
            f"{quoted(where)}: {_first_line(exc)}" + "".join(f"; {h}" for h in hints),
            option="where",
        ) from exc
    column = result.get_column("keep")
    if column.dtype != pl.Boolean:
        raise UsageError(
            f"{quoted(where)}: not a condition (gives {column.dtype}, not true/false)",
            option="where",
        )
    return column.fill_null(False)


def time_bound(text: str, end_of_dump: int | None, option: str) -> int:
    """The time ``--since``/``--until`` (``option``) names: an ISO time, or a duration back
    from ``end_of_dump``."""
    length = length_ns(text)
    if length is not None:
        if end_of_dump is None:
            raise UsageError(
                f"{text}: the dump has no timestamps to count back from", option=option
            )
        return _in_range(end_of_dump - int(length), text, option)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"{quoted(text)}: expected an ISO time (2026-11-26T08:00:00Z) or a duration "
            "back from the end of the dump (30s, 10m, 2h)",
            option=option,
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    bound = (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US
    return _in_range(bound, text, option)


def _in_range(bound: int, text: str, option: str) -> int:
    # Compared with Int64 ns columns: a bound past them would overflow, not select everything.
    if not INT64_MIN <= bound <= INT64_MAX:
        raise UsageError(
            f"{quoted(text)}: outside the times telemetry can hold "
            "(1677-09-21 to 2262-04-11, nanoseconds in 64 bits)",
            option=option,
        )
    return bound


#: The columns --where sees besides attr.KEY, as the module docstring lists them.
WHERE_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "stage",
    "kind",
    "status",
    "status_message",
    "error",
    "duration_ms",
    "start",
)
_SQL_WORDS = frozenset({"true", "false", "null", "not", "and", "or", "is", "in", "like", "between"})
#: A comparison whose right side is a bare word: most likely a text value missing its quotes.
_BARE_VALUE = re.compile(
    r"(=|!=|<>|<=|>=|<|>|\bLIKE\b|\bIN\s*\()\s*([A-Za-z_][\w.\-/:]*)", re.IGNORECASE
)
_UNKNOWN_NAME = re.compile(r"unable to find column|no table or struct column named", re.IGNORECASE)


def _where_hints(where: str, exc: Exception) -> list[str]:
    """What to try after the SQL engine's complaint: quoting a bare text value, and the
    columns there are when it names one that is not."""
    hints = []
    for _, value in _BARE_VALUE.findall(where):
        bare = value.lower()
        if bare not in WHERE_COLUMNS and bare not in _SQL_WORDS and not bare.startswith("attr."):
            hints.append(f"put text values in single quotes: '{value}'")
            break
    # polars lists the columns itself when it names an unknown one; not when it takes a dotted
    # word for a table.
    if _UNKNOWN_NAME.search(str(exc)):
        if "valid columns" in str(exc):
            hints.append("any attribute as attr.KEY")
        else:
            hints.append(f"columns: {', '.join(WHERE_COLUMNS)}, and attr.KEY for any attribute")
    return hints


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
