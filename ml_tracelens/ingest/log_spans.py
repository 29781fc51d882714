"""Span trees from log lines, so a log dump alone supports every report (algorithms.md, "Trees
from log lines").

A log line with a request key (its trace id; else the trace id another line pairs with its
correlation id; else the correlation id), a stage and a duration is an interval. By default its
timestamp marks the **end** (a line that reports a duration is written when the stage finishes):
``[t - d, t]``; with ``log_time="start"`` it marks the start: ``[t, t + d]``.

Per request:

1. When any line of the request carries a parent span id, parents come from the ids (the line's
   own span id is the span's id), as for spans.
2. Otherwise the parent of interval X is the smallest interval P of the request that contains it
   with a slack ε, the timestamp resolution of the file (``timestamp_resolution_ns``):
   ``P.start - ε <= X.start`` and ``X.end <= P.end + ε``, among the intervals longer than X or as
   long and earlier in line order (so equal intervals nest and no cycle can form). "Smallest" is
   by duration; of equally long ones the latest line, so equal intervals chain in line order.
   Partial overlaps are therefore siblings under the smallest interval containing both.
3. A request whose lines form one tree has that tree's top as its root (the request's own line,
   e.g. ``POST /predict``). When several lines are tops, a derived root named ``request``
   covering every line is added above them, and counted (``DerivedSpans.derived_roots``).
   A line whose parent id no line of its request has is no top: like such a span, it keeps
   that parent id and the analysis flags it an orphan.

A derived span's id is its line's span id when the line has one that no other line of its
request repeats (so ``show`` files the line under its own span), else ``log:ROW``. Each derived
span carries its request's ε (``DerivedSpans.slack_ns``), which the critical-path walk and the
skew check allow too: rounded neighbours must not push real work off the path.

Without parent ids, two parallel siblings that start together cannot be told from a parent and
its child: the shorter nests under the longer. Logging ``parent_span_id`` removes that limit.

Which line nests in which (steps 1 and 2) is ``log_nesting``'s job; this module classifies
the lines, groups them into requests and assembles the spans.

A span is an error when its line is (the ``error`` column of the log table: level, error field,
exception or HTTP status; see ``readers/log_aliases``); its message is the line's error message.

Requests that already have real spans are left alone, so a dump holding both traces and logs is
not counted twice. Every log line that does not become a span is counted by reason
(``DerivedSpans.not_spans``); those that look like stage lines but cannot be read (time or
duration unreadable or missing) are kept with their location for a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from ml_tracelens.core.tree import dense_codes, filled, repeated_pairs
from ml_tracelens.durations import NS_PER_MS, NS_PER_US
from ml_tracelens.ingest.log_nesting import parent_positions
from ml_tracelens.schema import INT64_MAX, SPAN_SCHEMA, Kind, Status, empty_spans

DERIVED_ROOT_NAME = "request"
DERIVED_MARK = '{"tracelens.derived":"logs"}'
LogTime = Literal["end", "start"]
LOG_TIMES: tuple[LogTime, ...] = ("end", "start")
#: How many unreadable stage lines are kept with their location for the warning.
MAX_PROBLEMS_KEPT = 5


# Why a log line did not become a span, in the order the checks apply.
NO_STAGE = "no stage"
NO_DURATION = "stage without a duration"
NO_TIME = "stage line without a timestamp"
OUT_OF_RANGE = "stage interval outside 1970-2262"
NO_REQUEST = "stage line without a request or trace id"
HAS_SPANS = "request already has spans"
#: Reasons that are no loss: the line was never a stage interval, or its request has spans. Every
#: other reason (the ones above, and the reader's ``unread_reason``: "unreadable time", "duration
#: not a number", "negative duration") is a stage line lost to unreadable data: warned about.
QUIET_REASONS = (NO_STAGE, NO_DURATION, NO_REQUEST, HAS_SPANS)


@dataclass
class DerivedSpans:
    """Spans built from log lines, and what became of every line."""

    #: canonical span columns (SPAN_SCHEMA)
    spans: pl.DataFrame
    #: per row of ``spans``: the containment and critical-path slack ε of its request (ns)
    slack_ns: pl.Series
    #: requests given a derived ``request`` root because no line of theirs covers the others
    derived_roots: int = 0
    #: log lines that became spans (derived roots not included)
    span_lines: int = 0
    #: reason -> log lines that did not become spans
    not_spans: dict[str, int] = field(default_factory=dict)
    #: (file:line, reason) of the first stage lines lost to unreadable data
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: per row of ``spans``, its parent's row (null for the tops): the trees built here, which
    #: resolving the parent ids finds again; None when a line's own span id may equal a made one
    parent_rows: pl.Series | None = None

    @property
    def unreadable_stage_lines(self) -> dict[str, int]:
        """The ``not_spans`` reasons that are data lost from stage lines, to be warned about."""
        return {r: n for r, n in self.not_spans.items() if r not in QUIET_REASONS}


def empty_derived(not_spans: dict[str, int] | None = None) -> DerivedSpans:
    return DerivedSpans(
        spans=empty_spans(),
        slack_ns=pl.Series("slack_ns", [], dtype=pl.Int64),
        not_spans=not_spans or {},
    )


def timestamp_resolution_ns(time_ns: pl.Series) -> int:
    """1 ms when every timestamp is a whole millisecond, 1 µs when whole microseconds, else 0.

    Timestamps are one clock's readings of one file: python-json-logger's ``asctime`` is whole
    milliseconds, so a stage ending 0.9 ms after its parent may have been logged before it.
    """
    times = time_ns.drop_nulls()
    if times.is_empty():
        return 0
    for unit in (NS_PER_MS, NS_PER_US):
        if not ((times % unit) != 0).any():
            return unit
    return 0


def spans_from_logs(
    logs: pl.DataFrame,
    *,
    known_trace_ids: pl.Series,
    log_time: LogTime = "end",
    resolutions: Sequence[tuple[int, int]] | None = None,
) -> DerivedSpans:
    """Spans (with their trees) from the stage lines of ``logs``.

    ``resolutions`` gives the timestamp resolution of consecutive runs of rows, as
    ``(row count, ε in ns)`` per input file in row order; without it the whole table is one
    file and its resolution is measured here.
    """
    if logs.is_empty():
        return empty_derived()
    # Cheap exit: a trace dump's log records have no stage, and the id set of a million spans is
    # not worth building for them.
    if not logs.select(pl.col("stage").is_not_null().any()).item():
        return empty_derived({NO_STAGE: logs.height})
    lines = _classified(logs, known_trace_ids=known_trace_ids, log_time=log_time)
    lines = lines.with_columns(_eps=_row_resolutions(logs, resolutions))
    counts = (
        lines.filter(pl.col("_reason").is_not_null())
        .group_by("_reason")
        .len()
        .sort("len", "_reason", descending=[True, False])
    )
    not_spans = {str(r): int(n) for r, n in counts.iter_rows()}
    problems = [
        (str(source), str(reason))
        for source, reason in lines.filter(
            pl.col("_reason").is_not_null() & ~pl.col("_reason").is_in(list(QUIET_REASONS))
        )
        .head(MAX_PROBLEMS_KEPT)
        .select("source", "_reason")
        .iter_rows()
    ]
    # Filtering copies every column (the attributes most of all): a pure stage log skips it.
    stages = lines.filter(pl.col("_reason").is_null()) if not_spans else lines
    stages = stages.drop("_reason")
    if stages.is_empty():
        derived = empty_derived(not_spans)
        derived.problems = problems
        return derived
    stages = _with_requests(stages)
    parent = parent_positions(stages)
    spans, slack, parent_rows, derived_roots = _assemble(stages, parent)
    return DerivedSpans(
        spans=spans,
        slack_ns=slack,
        derived_roots=derived_roots,
        span_lines=stages.height,
        not_spans=not_spans,
        problems=problems,
        parent_rows=parent_rows,
    )


def _classified(
    logs: pl.DataFrame, *, known_trace_ids: pl.Series, log_time: LogTime
) -> pl.DataFrame:
    """Every log row with its request key, interval and, when it is no span, why not."""
    time, duration = pl.col("time_ns").cast(pl.Int128), pl.col("duration_ns").cast(pl.Int128)
    start, end = (time - duration, time) if log_time == "end" else (time, time + duration)

    def bounded(value: pl.Expr) -> pl.Expr:
        return pl.when((value >= 0) & (value <= INT64_MAX)).then(value).cast(pl.Int64)

    reason = (
        pl.when(pl.col("stage").is_null())
        .then(pl.lit(NO_STAGE))
        .when(pl.col("unread_reason").is_not_null())
        .then(pl.col("unread_reason"))
        .when(pl.col("duration_ns").is_null())
        .then(pl.lit(NO_DURATION))
        .when(pl.col("time_ns").is_null())
        .then(pl.lit(NO_TIME))
        .when(pl.col("_start").is_null() | pl.col("_end").is_null())
        .then(pl.lit(OUT_OF_RANGE))
        .when(pl.col("_request").is_null())
        .then(pl.lit(NO_REQUEST))
    )
    if known_trace_ids.len():
        reason = reason.when(pl.col("_request").is_in(known_trace_ids.unique().implode())).then(
            pl.lit(HAS_SPANS)
        )
    lines = logs.lazy().with_row_index("_row")
    # A line with only a request id takes the trace id another line pairs with that request id:
    # only worth a join when such a line exists.
    if logs.select(
        (pl.col("trace_id").is_null() & pl.col("correlation_id").is_not_null()).any()
    ).item():
        links = (
            logs.lazy()
            .filter(pl.col("trace_id").is_not_null() & pl.col("correlation_id").is_not_null())
            .group_by("correlation_id", maintain_order=True)
            .agg(_linked=pl.col("trace_id").first())
        )
        lines = lines.join(links, on="correlation_id", how="left", maintain_order="left")
    else:
        lines = lines.with_columns(_linked=pl.lit(None, dtype=pl.String))
    return (
        lines.with_columns(
            _request=pl.coalesce(pl.col("trace_id"), pl.col("_linked"), pl.col("correlation_id")),
            _start=bounded(start),
            _end=bounded(end),
        )
        .with_columns(_reason=reason)
        .select(
            "_row",
            "_request",
            "_start",
            "_end",
            "_reason",
            "span_id",
            "parent_span_id",
            "service",
            "stage",
            "error",
            "error_message",
            "message",
            "attributes",
            "source",
        )
        .collect()
    )


def _row_resolutions(
    logs: pl.DataFrame, resolutions: Sequence[tuple[int, int]] | None
) -> pl.Series:
    if resolutions is None:
        resolutions = [(logs.height, timestamp_resolution_ns(logs.get_column("time_ns")))]
    if sum(n for n, _ in resolutions) != logs.height:
        raise ValueError("resolutions must cover every log row")
    parts = [pl.repeat(eps, n, dtype=pl.Int64, eager=True) for n, eps in resolutions if n]
    return pl.concat(parts) if parts else pl.Series([], dtype=pl.Int64)


def _with_requests(stages: pl.DataFrame) -> pl.DataFrame:
    """Per stage line: ``_pos`` (its line order among the stage lines), ``_req`` (an integer
    id of its request), and its request's ``_eps`` (the coarsest resolution among the files its
    lines come from), ``_by_ids`` (any line of it has a parent id) and ``_lines``."""
    # Dense codes number the distinct requests exactly, and every later step groups and joins
    # on them rather than on the strings.
    stages = stages.with_row_index("_pos").with_columns(
        _req=dense_codes(stages.get_column("_request"))[0]
    )
    per_request = stages.group_by("_req").agg(
        _eps=pl.col("_eps").max(),
        _by_ids=pl.col("parent_span_id").is_not_null().any(),
        _lines=pl.len(),
    )
    # Joined on the key alone and set beside the lines: a join of the lines themselves would
    # copy every column of a million of them.
    attached = (
        stages.select("_req")
        .join(per_request, on="_req", how="left", maintain_order="left")
        .drop("_req")
    )
    return stages.drop("_eps").hstack(attached)


#: The id of a span whose line has no usable id of its own (+ the line's row), and of a
#: derived root (+ its request).
LINE_ID_PREFIX = "log:"
ROOT_ID_PREFIX = "root:"


def _span_ids(stages: pl.DataFrame) -> tuple[pl.Series, bool]:
    """A line's own span id when it names one that no other line of its request repeats, else
    ``log:ROW``: the line and its span then share the id, so ``show`` files the line under it.
    (A repeated id is the parent's, on a line the parent logged after its child ended.)

    Also whether the ids are distinct within each request, derived roots' ``root:REQUEST``
    included: true unless some line's own id is spelled like a made one."""
    own = stages.get_column("span_id")
    repeated = repeated_pairs(stages, "_req", "span_id")
    usable = own.is_not_null() & ~repeated
    made_like = pl.any_horizontal(
        pl.lit(own).str.starts_with(prefix) for prefix in (LINE_ID_PREFIX, ROOT_ID_PREFIX)
    )
    distinct = not pl.select((made_like & pl.lit(usable)).any()).item()
    if usable.all():
        return own.rename("span_id"), distinct
    ids = pl.select(pl.when(pl.lit(usable)).then(pl.lit(own))).to_series().rename("span_id")
    missing = stages.select(
        "_pos", _id=LINE_ID_PREFIX + pl.col("_row").cast(pl.String), _missing=~pl.lit(usable)
    ).filter(pl.col("_missing"))
    ids.scatter(missing.get_column("_pos"), missing.get_column("_id"))
    return ids, distinct


def _assemble(
    stages: pl.DataFrame, parent: pl.Series
) -> tuple[pl.DataFrame, pl.Series, pl.Series | None, int]:
    """Canonical spans of the stage lines, plus a derived root above requests with several
    tops (the derived roots first); the slack of every span; each span's parent row, when the
    ids are distinct (see ``_span_ids``); how many derived roots were added."""
    span_id, distinct = _span_ids(stages)
    parent_id = span_id.gather(parent)
    # A line whose parent id no line of its request has is an orphan, as such a span is: it
    # keeps that id (the analysis flags it), and is no top that would call for a derived root.
    named = stages.get_column("parent_span_id")
    names_a_parent = stages.select(
        pl.col("_by_ids")
        & pl.col("parent_span_id").is_not_null()
        & (pl.col("parent_span_id") != pl.col("span_id")).fill_null(True)
    ).to_series()
    orphan = parent.is_null() & names_a_parent
    if orphan.any():
        parent_id = pl.select(
            pl.when(pl.lit(orphan)).then(pl.lit(named)).otherwise(pl.lit(parent_id))
        ).to_series()
    is_top = parent.is_null() & ~orphan
    tops = stages.select("_req", _top=is_top).filter(pl.col("_top")).group_by("_req").len()
    rooted_ids = tops.filter(pl.col("len") > 1).get_column("_req")
    rooted = stages.select(pl.col("_req").is_in(rooted_ids.implode())).to_series()
    root_id = ROOT_ID_PREFIX + pl.col("_request")
    under_root = None
    if rooted_ids.len():
        # The tops of a request with several point to its derived root.
        under_root = stages.select(
            "_pos", "_req", _root=root_id, _top=pl.lit(is_top) & pl.lit(rooted)
        ).filter(pl.col("_top"))
        parent_id.scatter(under_root.get_column("_pos"), under_root.get_column("_root"))
    stages = stages.with_columns(_rooted=rooted)
    spans = stages.select(
        trace_id=pl.col("_request"),
        span_id=pl.lit(span_id),
        parent_id=pl.lit(parent_id),
        service=pl.col("service"),
        name=pl.col("stage"),
        kind=pl.lit("internal", dtype=Kind),
        start_ns=pl.col("_start"),
        end_ns=pl.col("_end"),
        duration_ns=pl.col("_end") - pl.col("_start"),
        # Enum values from the start: a million texts cast afterwards cost time and memory.
        status=pl.when(pl.col("error"))
        .then(pl.lit("error", dtype=Status))
        .otherwise(pl.lit("unset", dtype=Status)),
        status_message=pl.when(pl.col("error")).then(
            pl.coalesce(pl.col("error_message"), pl.col("message"))
        ),
        attributes=pl.col("attributes"),
        resource=pl.lit(None, dtype=SPAN_SCHEMA["resource"]),
        events=pl.lit(None, dtype=pl.String),
        links=pl.lit(None, dtype=pl.String),
        source=pl.col("source"),
        slack_ns=pl.col("_eps"),
    )
    parts = [spans]
    parent_rows = parent.rename("parent") if distinct else None
    if under_root is not None:
        per_root = (
            stages.filter(pl.col("_rooted"))
            .group_by("_req")
            .agg(
                _request=pl.col("_request").first(),
                _start=pl.col("_start").min(),
                _end=pl.col("_end").max(),
                _service=pl.col("service").drop_nulls().mode().sort().first(),
                _source=pl.col("source").first(),
                _eps=pl.col("_eps").first(),
                _first=pl.col("_pos").min(),
            )
            .sort("_start", "_first")
        )
        if parent_rows is not None:
            parent_rows = _under_derived_roots(parent_rows, per_root, under_root)
        roots = per_root.select(
            trace_id="_request",
            span_id=root_id,
            parent_id=pl.lit(None, dtype=pl.String),
            service="_service",
            name=pl.lit(DERIVED_ROOT_NAME),
            kind=pl.lit("server", dtype=Kind),
            start_ns="_start",
            end_ns="_end",
            duration_ns=pl.col("_end") - pl.col("_start"),
            status=pl.lit("unset", dtype=Status),
            status_message=pl.lit(None, dtype=pl.String),
            attributes=pl.lit(DERIVED_MARK),
            resource=pl.lit(None, dtype=SPAN_SCHEMA["resource"]),
            events=pl.lit(None, dtype=pl.String),
            links=pl.lit(None, dtype=pl.String),
            source="_source",
            slack_ns="_eps",
        )
        parts.insert(0, roots)
    both = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else spans
    slack = both.get_column("slack_ns").cast(pl.Int64)
    # ``source`` becomes a Categorical last: the dictionary of a million distinct ``file:line``
    # texts (~140 MB, kept for the process) then takes the pages the tree work freed. Cast in a
    # thread beside that work it would save 0.2 s on idle cores but raise the peak by ~100 MB.
    canonical = both.drop("slack_ns").cast(SPAN_SCHEMA)
    return canonical, slack, parent_rows, rooted_ids.len()


def _under_derived_roots(
    parent: pl.Series, per_root: pl.DataFrame, under_root: pl.DataFrame
) -> pl.Series:
    """Parent rows once the derived roots (``per_root``, in their row order) come first: the
    lines' parents move down past them, and the tops in ``under_root`` point to their root."""
    rows = (parent + per_root.height).rename("parent")
    root_row = per_root.select("_req").with_row_index("_root_row")
    tops = under_root.select("_pos", "_req").join(root_row, on="_req", how="left")
    rows.scatter(tops.get_column("_pos"), tops.get_column("_root_row"))
    return pl.concat([filled(None, per_root.height, rows.dtype), rows], rechunk=True)
