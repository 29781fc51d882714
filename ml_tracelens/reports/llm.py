"""`tracelens llm`: LLM serving per model: latency (e2e, TTFT, TPOT, queueing), tokens, errors.

Requests are the LLM request spans of core/llm.py (its alias table, definitions and client/server
pairing: a request seen by an app's client span and by the serving engine's server span is one
request, with the server's numbers). The filters choose the spans that may be requests.

Per group (JSON ``rows``; ``--by`` model by default, or operation, provider, service, stage,
attr.KEY): requests, errors (requests whose server or client span failed), error_rate,
e2e_p50/p95/p99_ms, ttft_p50/p95/p99_ms, tpot_p50/p95_ms (requests with >= 2 output tokens),
queue_p50/p95_ms, queue_share (sum of queue times / sum of the e2e of the requests that report a
queue time), input_tokens_p50/p95/total, output_tokens_p50/p95/total, output_tps_p50,
finish_reasons (reason -> share of the requests reporting one). Percentiles interpolate linearly
between closest ranks, as everywhere in tracelens; a metric no request reports is null.

Pairs (JSON ``clients``): per group, the requests also seen by a client span: how many, and the
client's e2e p50/p95 beside the server's over the same requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import polars as pl

from ml_tracelens.core import llm
from ml_tracelens.core.stats import exact_percentiles, ns_to_ms, quantile
from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.exceptions import InputError, UsageError, quoted
from ml_tracelens.reports.documents import LlmPayload
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.schema import with_attribute_columns

__all__ = ["ROW_KEYS", "budget_values", "build", "llm_requests", "request_frame"]

#: ``--by`` keys besides attr.KEY -> the request column they group by
GROUP_KEYS = {
    "model": "model",
    "operation": "operation",
    "provider": "provider",
    "service": "service",
    "stage": "name",
}

STAT_COLUMNS = (
    Column("requests", "requests", ColumnKind.INT),
    Column("errors", "errors", ColumnKind.INT, hide_rank=4),
    Column("error_rate", "err rate", ColumnKind.SHARE),
    Column("e2e_p50_ms", "e2e p50", ColumnKind.MS),
    Column("e2e_p95_ms", "e2e p95", ColumnKind.MS),
    Column("e2e_p99_ms", "e2e p99", ColumnKind.MS, hide_rank=8),
    Column("ttft_p50_ms", "ttft p50", ColumnKind.MS),
    Column("ttft_p95_ms", "ttft p95", ColumnKind.MS),
    Column("ttft_p99_ms", "ttft p99", ColumnKind.MS, hide_rank=9),
    Column("tpot_p50_ms", "tpot p50", ColumnKind.MS),
    Column("tpot_p95_ms", "tpot p95", ColumnKind.MS, hide_rank=10),
    Column("queue_p50_ms", "queue p50", ColumnKind.MS, hide_rank=7),
    Column("queue_p95_ms", "queue p95", ColumnKind.MS, hide_rank=11),
    Column("queue_share", "queue share", ColumnKind.SHARE),
    Column("input_tokens_p50", "in tok p50", ColumnKind.FLOAT, hide_rank=5),
    Column("input_tokens_p95", "in tok p95", ColumnKind.FLOAT, hide_rank=2),
    Column("input_tokens_total", "in tok total", ColumnKind.INT, hide_rank=3),
    Column("output_tokens_p50", "out tok p50", ColumnKind.FLOAT, hide_rank=6),
    Column("output_tokens_p95", "out tok p95", ColumnKind.FLOAT, hide_rank=1),
    Column("output_tokens_total", "out tok total", ColumnKind.INT, hide_rank=12),
    Column("output_tps_p50", "out tok/s p50", ColumnKind.FLOAT),
    Column("finish_reasons", "finish reasons", ColumnKind.SHARES, hide_rank=13),
)
ROW_KEYS = tuple(c.key for c in STAT_COLUMNS)
CLIENT_COLUMNS = (
    Column("paired", "requests seen by client and server", ColumnKind.INT),
    Column("client_e2e_p50_ms", "client e2e p50", ColumnKind.MS),
    Column("client_e2e_p95_ms", "client e2e p95", ColumnKind.MS),
    Column("server_e2e_p50_ms", "server e2e p50", ColumnKind.MS),
    Column("server_e2e_p95_ms", "server e2e p95", ColumnKind.MS),
)

#: per-request metric -> its column in the request frame (``llm.requests``)
_TIMES = {"e2e": "e2e_req_ns", "ttft": "ttft_ns", "tpot": "tpot_ns", "queue": "queue_ns"}


class Mix(dict[str, float]):
    """reason -> share; a JSON object, ``stop 88%, length 12%`` on terminals."""

    def __str__(self) -> str:
        return ", ".join(f"{name} {share * 100:.0f}%" for name, share in self.items())


def llm_requests(
    analysed: pl.DataFrame,
    selected: pl.DataFrame | None = None,
    *,
    aliases: llm.Aliases | None = None,
) -> llm.LlmSpans:
    """The LLM requests among ``selected`` spans (all when None), paired within ``analysed``:
    an ``LlmSpans`` whose frame is ``core.llm.requests``. ``aliases``: the keys tried per
    field (``core.llm.with_overrides`` of the user's ``--field llm.NAME=KEY``)."""
    found = llm.llm_spans(
        analysed if selected is None else selected,
        keep=tuple(c for c in ("source", "resource") if c in analysed.columns),
        aliases=aliases,
    )
    return llm.LlmSpans(
        frame=llm.requests(found.frame, analysed), found=found.found, unusable=found.unusable
    )


def request_frame(requests: pl.DataFrame) -> pl.DataFrame:
    """The requests with their time metrics in float milliseconds (``e2e_ms``, ``ttft_ms``,
    ``tpot_ms``, ``queue_ms``, ``client_e2e_ms``)."""
    return requests.with_columns(
        **{f"{m}_ms": ns_to_ms(pl.col(c)) for m, c in _TIMES.items()},
        client_e2e_ms=ns_to_ms(pl.col("client_e2e_ns")),
    )


def queue_share() -> pl.Expr:
    """Sum of queue times / sum of e2e, over the requests that report a queue time."""
    with_queue = pl.col("queue_ms").is_not_null() & pl.col("e2e_ms").is_not_null()
    queue_total = pl.col("queue_ms").filter(with_queue).sum()
    e2e_total = pl.col("e2e_ms").filter(with_queue).sum()
    return pl.when(e2e_total > 0).then(queue_total / e2e_total)


def _aggregations() -> list[pl.Expr]:
    return [
        pl.len().alias("requests"),
        pl.col("error").sum().cast(pl.Int64).alias("errors"),
        *(
            quantile(pl.col(f"{m}_ms"), p / 100).alias(f"{m}_p{p}_ms")
            for m, ps in (("e2e", (50, 95, 99)), ("ttft", (50, 95, 99)), ("tpot", (50, 95)))
            for p in ps
        ),
        quantile(pl.col("queue_ms"), 0.5).alias("queue_p50_ms"),
        quantile(pl.col("queue_ms"), 0.95).alias("queue_p95_ms"),
        queue_share().alias("queue_share"),
        *(
            expr
            for side in ("input", "output")
            for expr in (
                quantile(pl.col(f"{side}_tokens"), 0.5).alias(f"{side}_tokens_p50"),
                quantile(pl.col(f"{side}_tokens"), 0.95).alias(f"{side}_tokens_p95"),
                pl.when(pl.col(f"{side}_tokens").count() > 0)
                .then(pl.col(f"{side}_tokens").sum().round().cast(pl.Int64))
                .alias(f"{side}_tokens_total"),
            )
        ),
        quantile(pl.col("output_tps"), 0.5).alias("output_tps_p50"),
    ]


def group_rows(frame: pl.DataFrame, names: Sequence[str]) -> list[dict[str, JsonValue]]:
    """One row per group of ``names`` with ``ROW_KEYS``, most requests first."""
    stats = frame.group_by(names).agg(_aggregations())
    mixes = _mixes(frame, names)
    rows: list[dict[str, JsonValue]] = []
    for row in stats.iter_rows(named=True):
        key = tuple(row[n] for n in names)
        row["error_rate"] = row["errors"] / row["requests"]
        row["finish_reasons"] = mixes.get(key, Mix())
        rows.append({k: row[k] for k in (*names, *ROW_KEYS)})
    return sorted(rows, key=lambda r: (-_int(r["requests"]), *(_text(r[n]) for n in names)))


def _int(value: JsonValue) -> int:
    return value if isinstance(value, int) else 0


def _text(value: JsonValue) -> tuple[bool, str]:
    return (value is None, "" if value is None else str(value))


def _mixes(frame: pl.DataFrame, names: Sequence[str]) -> dict[tuple[Any, ...], Mix]:
    counts = (
        frame.filter(pl.col("finish_reason").is_not_null())
        .group_by(*names, "finish_reason")
        .len()
        .sort(["len", "finish_reason"], descending=[True, False])
    )
    totals: dict[tuple[Any, ...], int] = {}
    for row in counts.iter_rows(named=True):
        key = tuple(row[n] for n in names)
        totals[key] = totals.get(key, 0) + row["len"]
    out: dict[tuple[Any, ...], Mix] = {}
    for row in counts.iter_rows(named=True):
        key = tuple(row[n] for n in names)
        out.setdefault(key, Mix())[row["finish_reason"]] = row["len"] / totals[key]
    return out


def client_rows(frame: pl.DataFrame, names: Sequence[str]) -> list[dict[str, JsonValue]]:
    """Per group, over the requests seen by a client span too: the client's and the server's
    e2e percentiles side by side (the difference is the network, proxies and the client)."""
    paired = frame.filter(pl.col("paired") & pl.col("client_e2e_ms").is_not_null())
    if paired.is_empty():
        return []
    stats = paired.group_by(names).agg(
        paired=pl.len(),
        client_e2e_p50_ms=quantile(pl.col("client_e2e_ms"), 0.5),
        client_e2e_p95_ms=quantile(pl.col("client_e2e_ms"), 0.95),
        server_e2e_p50_ms=quantile(pl.col("e2e_ms"), 0.5),
        server_e2e_p95_ms=quantile(pl.col("e2e_ms"), 0.95),
    )
    rows: list[dict[str, JsonValue]] = [dict(r) for r in stats.iter_rows(named=True)]
    return sorted(rows, key=lambda r: (-_int(r["paired"]), *(_text(r[n]) for n in names)))


def with_groups(
    requests: pl.DataFrame, analysed: pl.DataFrame, by: Sequence[str]
) -> tuple[pl.DataFrame, list[str]]:
    """The requests with one column per ``--by`` key, and the key names in order."""
    names: list[str] = []
    plain: dict[str, pl.Expr] = {}
    attributes: dict[str, str] = {}
    for item in (b.strip() for b in by):
        if item in GROUP_KEYS:
            plain[item] = pl.col(GROUP_KEYS[item])
            names.append(item)
        elif item.startswith("attr.") and len(item) > 5:
            names.append(item)
            attributes[item] = item[5:]
        else:
            raise UsageError(
                f"{quoted(item)}: expected {', '.join(GROUP_KEYS)} or attr.KEY (e.g. --by operation "
                "or --by attr.gen_ai.request.max_tokens)",
                option="by",
            )
    if not names:
        raise UsageError("needs at least one key", option="by")
    frame = requests.with_columns(**plain) if plain else requests
    if attributes:
        if "attributes" not in analysed.columns:
            raise UsageError("attr.KEY needs the span attributes, which were not loaded")
        frame = with_attribute_columns(frame, attributes)
    return frame, names


def build(
    *,
    analysed: pl.DataFrame,
    mask: pl.Series | None = None,
    by: Sequence[str] = ("model",),
    derived_stages: int = 0,
    aliases: llm.Aliases | None = None,
    inputs: list[dict[str, JsonValue]] | None = None,
    warnings: list[str] | None = None,
) -> Report:
    selected = analysed.filter(mask) if mask is not None else None
    found = llm_requests(analysed, selected, aliases=aliases)
    if found.frame.is_empty():
        raise InputError(
            "no LLM request spans in the inputs"
            + (" selected by the filters" if mask is not None else "")
            + ": looked for vLLM's gen_ai.latency.* and gen_ai.usage.*, the OpenTelemetry GenAI "
            "attributes (gen_ai.operation.name, gen_ai.request.model, gen_ai.usage.*), "
            "OpenInference's llm.* and log fields such as ttft_ms, prompt_tokens, "
            "completion_tokens (name yours with --field llm.NAME=KEY, e.g. "
            "--field llm.ttft=first_token_ms)"
        )
    frame, names = with_groups(request_frame(found.frame), analysed, by)
    rows = group_rows(frame, names)
    clients = client_rows(frame, names)
    key_columns = tuple(Column(n, n) for n in names)
    tables = [
        Table(key="rows", title="LLM requests", columns=(*key_columns, *STAT_COLUMNS), rows=rows),
        Table(
            key="clients",
            title="Requests seen by a client span too",
            columns=(*key_columns, *CLIENT_COLUMNS),
            rows=clients,
            empty_note="no request was seen by both a client span and a server span",
        ),
    ]
    # Values that are not numbers were counted once, when read (ingest's warnings).
    notes = list(warnings or [])
    paired = int(frame.get_column("paired").sum())
    return Report(
        name="llm",
        title="LLM serving by " + ", ".join(names),
        headline=_headline(frame, found.found, paired, derived_stages),
        tables=tables,
        payload=LlmPayload(
            group_by=list(names),
            llm_requests=frame.height,
            paired_requests=paired,
            fields={name.removesuffix("_ns"): list(keys) for name, keys in found.found.items()},
            derived_stage_spans=derived_stages,
        ),
        inputs=inputs or [],
        warnings=notes,
    )


def _headline(
    frame: pl.DataFrame, found: dict[str, list[str]], paired: int, derived_stages: int
) -> list[str]:
    e2e = frame.get_column("e2e_ms")
    ttft = frame.get_column("ttft_ms")
    lines = [
        f"LLM requests: {frame.height:,}  e2e p50 {_ms(quantile(e2e, 0.5))}  "
        f"ttft p50 {_ms(quantile(ttft, 0.5))}  errors {int(frame.get_column('error').sum()):,}"
    ]
    if paired:
        lines.append(
            f"{paired:,} seen by both a client and a server span: counted once, with the "
            "server's numbers"
        )
    spelled = ", ".join(
        f"{name.removesuffix('_ns')} from {'/'.join(keys)}" for name, keys in found.items()
    )
    lines.append(f"Fields: {spelled}")
    if derived_stages:
        lines.append(
            f"{derived_stages:,} queue/prefill/decode spans derived from their attributes "
            "(see `latency`, `bottlenecks`; --no-derived-stages turns them off)"
        )
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else format_duration(value)


#: A budget value: exact where the data are integers (times in ns, counts), else a float.
BudgetValue = Fraction | float


def budget_values(
    *,
    analysed: pl.DataFrame,
    wanted: Sequence[tuple[str | None, str]],
    aliases: llm.Aliases | None = None,
) -> dict[tuple[str | None, str], tuple[BudgetValue | None, str | None]]:
    """Values of LLM budgets for `tracelens check`: (model or None, metric) -> (value in the
    metric's natural unit, or None with a note). The numbers `tracelens llm` prints, computed
    exactly (fractions of integer nanoseconds and counts) for e2e, ttft and queue percentiles,
    queue_share, error_rate, requests and token totals, so a budget on a boundary does not
    flip on float rounding; tpot, output_tps and token percentiles are floats."""
    out: dict[tuple[str | None, str], tuple[BudgetValue | None, str | None]] = {}
    if "attributes" not in analysed.columns:
        return dict.fromkeys(wanted, (None, "the span attributes were not loaded"))
    frame = request_frame(llm_requests(analysed, aliases=aliases).frame)
    if frame.is_empty():
        return dict.fromkeys(wanted, (None, "no LLM request spans in the data"))
    models = sorted({m for m in frame.get_column("model").to_list() if m is not None})
    for model, metric in dict.fromkeys(wanted):
        if model is not None and model not in models:
            out[(model, metric)] = (
                None,
                f"model {quoted(model)} is not in the data (models: {', '.join(models)})",
            )
            continue
        scoped = frame if model is None else frame.filter(pl.col("model") == model)
        value = _budget_value(scoped, metric)
        out[(model, metric)] = (
            (value, None) if value is not None else (None, f"no request reports {metric}")
        )
    return out


#: duration measures held as integer nanoseconds, by their request column
_EXACT_TIMES = {"e2e": "e2e_req_ns", "ttft": "ttft_ns", "queue": "queue_ns"}


def _budget_value(frame: pl.DataFrame, metric: str) -> BudgetValue | None:
    name = metric.removeprefix("llm.")
    if name == "requests":
        return Fraction(frame.height)
    if name == "error_rate":
        errors = int(frame.get_column("error").sum())
        return Fraction(errors, frame.height) if frame.height else None
    if name == "queue_share":
        both = frame.filter(pl.col("queue_ns").is_not_null() & pl.col("e2e_req_ns").is_not_null())
        total = int(both.get_column("e2e_req_ns").sum())
        return Fraction(int(both.get_column("queue_ns").sum()), total) if total > 0 else None
    measure, _, stat = name.rpartition(".")
    if measure in _EXACT_TIMES and stat != "total":
        percent = int(stat[1:])
        exact = exact_percentiles(frame.get_column(_EXACT_TIMES[measure]), [percent])
        return exact[percent] / NS_PER_MS if exact else None
    column = {
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "output_tps": "output_tps",
    }.get(measure, f"{measure}_ms")
    values = frame.get_column(column)
    if stat == "total":
        return Fraction(round(values.sum())) if values.count() else None
    result = quantile(values, int(stat[1:]) / 100)
    return float(result) if result is not None else None
