"""One function per report: each takes analysed telemetry (``load``) and the command's options
as keywords, and returns a ``Result`` (``report`` returns a ``Page``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Unpack

import polars as pl

from ml_tracelens.core import Analysis
from ml_tracelens.core.bootstrap import Bootstrap
from ml_tracelens.core.query import SpanFilter, matching
from ml_tracelens.core.significance import DEFAULT_MIN_CHANGE_PCT
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.ingest import pipeline
from ml_tracelens.ingest.telemetry import Progress, Telemetry
from ml_tracelens.reports import context as report_context
from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS

if TYPE_CHECKING:
    from ml_tracelens.gates.budgets import Budget, Rule
    from ml_tracelens.reports.models import ModelOptions
    from ml_tracelens.reports.result import Report

from ml_tracelens.api.loading import path_list, read_options
from ml_tracelens.api.results import (
    AnalysedTelemetry,
    LogTime,
    Page,
    PathsLike,
    Result,
    SpanFilters,
)


def _spans_required(t: AnalysedTelemetry) -> None:
    """The span reports need spans: say what the inputs lack when they have none."""
    if t.telemetry.spans.is_empty() and not t.analysis.summaries:
        raise InputError(report_context.no_spans_message(t.telemetry))


def _mask(t: AnalysedTelemetry, filters: SpanFilters) -> pl.Series | None:
    span_filter = SpanFilter(
        where=filters.get("where"),
        since=filters.get("since"),
        until=filters.get("until"),
        services=tuple(filters.get("services", ())),
        stages=tuple(filters.get("stages", ())),
    )
    return matching(t.spans, span_filter) if span_filter.active else None


def _listed(value: str | Sequence[str]) -> list[str]:
    return value.split(",") if isinstance(value, str) else list(value)


def summary(t: AnalysedTelemetry) -> Result:
    """What was read: files and formats, spans, traces, services, time range, anomalies."""
    from ml_tracelens.reports import summary as summary_report

    return Result(summary_report.build(telemetry=t.telemetry, analysis=t.analysis))


def latency(
    t: AnalysedTelemetry,
    *,
    by: str | Sequence[str] = "stage",
    sort: str | None = None,
    top: int | None = None,
    distribution: bool = False,
    **filters: Unpack[SpanFilters],
) -> Result:
    """Latency per group (``by``: stage, service, kind, status, attr.KEY, or several):
    count, mean, percentiles, max, self time, critical-path share, errors.
    ``distribution``: add each group's histogram (the sparklines of the terminal table)."""
    from ml_tracelens.reports import latency as latency_report

    _spans_required(t)
    if t.analysis.summaries:
        return Result(_latency_from_parts(t, by, sort, top, distribution, filters))
    return Result(
        latency_report.build(
            analysed=t.spans,
            mask=_mask(t, filters),
            by=_listed(by),
            sort=sort,
            top=top,
            distribution=distribution,
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


def _latency_from_parts(
    t: AnalysedTelemetry,
    by: str | Sequence[str],
    sort: str | None,
    top: int | None,
    distribution: bool,
    filters: SpanFilters,
) -> Report:
    """The latency report of inputs loaded with ``summarise=LatencySummarise(by)``: from the
    parts it kept of each group of traces, which hold no spans to filter or group otherwise."""
    from ml_tracelens.reports import latency_parts

    parts = [p for p in t.analysis.summaries if isinstance(p, latency_parts.Parts)]
    if len(parts) != len(t.analysis.summaries) or any(filters.values()):
        raise UsageError(
            "these inputs were loaded with a summary of each group of traces and no spans: "
            "load them without summarise= to filter them or take another report"
        )
    if any(tuple(p.by) != tuple(_listed(by)) for p in parts):
        raise UsageError("group by what the summaries were taken by", option="by")
    return latency_parts.build(
        parts,
        sort=sort,
        top=top,
        distribution=distribution,
        inputs=t.inputs,
        warnings=t.warnings,
    )


def errors(
    t: AnalysedTelemetry,
    *,
    top: int = 10,
    **filters: Unpack[SpanFilters],
) -> Result:
    """Errors per stage (seen and originated), the request error rate, the top messages."""
    from ml_tracelens.reports import errors as errors_report

    _spans_required(t)
    return Result(
        errors_report.build(
            analysed=t.spans,
            logs=t.logs,
            mask=_mask(t, filters),
            top=top,
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


def bottlenecks(
    t: AnalysedTelemetry,
    *,
    tail: float = 0.95,
    top: int | None = None,
    **filters: Unpack[SpanFilters],
) -> Result:
    """Stages ranked by critical-path share, and what makes the slowest requests slow."""
    from ml_tracelens.reports import bottlenecks as bottlenecks_report

    _spans_required(t)
    return Result(
        bottlenecks_report.build(
            analysed=t.spans,
            mask=_mask(t, filters),
            tail=tail,
            top=top,
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


#: Requests a report page shows as waterfalls, unless asked otherwise.
DEFAULT_EXEMPLARS = 5


def report(
    t: AnalysedTelemetry,
    *,
    exemplars: int = DEFAULT_EXEMPLARS,
    **filters: Unpack[SpanFilters],
) -> Page:
    """One page of the dump: latency (with histograms), bottlenecks, errors, as waterfalls at
    most ``exemplars`` requests (the slowest, the median, failures), and the summary."""
    from ml_tracelens.reports.exemplars import exemplar_trace_ids

    if exemplars < 0:
        raise UsageError("must be 0 or more", option="exemplars")
    _spans_required(t)
    results = [
        latency(t, distribution=True, **filters),
        bottlenecks(t, **filters),
        errors(t, **filters),
    ]
    for trace_id in exemplar_trace_ids(t.spans, _mask(t, filters), exemplars):
        results.append(show(t, trace_id))
    # What was read, last: the pictures are what a reader opens the page for.
    results.append(summary(t))
    paths = ", ".join(dict.fromkeys(str(i["path"]) for i in t.inputs))
    return Page(
        title=f"tracelens report: {paths}" if paths else "tracelens report", results=results
    )


def traces(
    t: AnalysedTelemetry,
    *,
    slowest: int | None = None,
    errors_only: bool = False,
    sort: str | None = None,
    top: int | None = None,
    id_attrs: Sequence[str] = (),
    **filters: Unpack[SpanFilters],
) -> Result:
    """One row per request: trace id, request id, root stage, start, duration, spans, errors.
    ``id_attrs``: span attributes that also name a request, besides the usual ones."""
    from ml_tracelens.reports import traces as traces_report

    _spans_required(t)
    return Result(
        traces_report.build(
            analysed=t.spans,
            logs=t.logs,
            mask=_mask(t, filters),
            slowest=slowest,
            errors_only=errors_only,
            sort=sort,
            top=top,
            id_attrs=(*DEFAULT_ID_ATTRS, *id_attrs),
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


def show(
    t: AnalysedTelemetry | PathsLike,
    request_id: str,
    *,
    depth: int | None = None,
    collapse: bool = False,
    critical_only: bool = False,
    attrs: bool = False,
    id_attrs: Sequence[str] = (),
    input_format: str | None = None,
    fields: Mapping[str, str] | None = None,
    strict: bool = False,
    log_time: LogTime = "end",
    derived_stages: bool = True,
    cache: bool = True,
    progress: Progress | None = None,
) -> Result:
    """One request (trace id, a unique prefix of 6+ hex digits, or a request id) as a waterfall
    with its logs. Given paths instead of loaded telemetry, only that request is analysed (a
    cold read) or read from the cache (a warm one); the reading options apply then."""
    from ml_tracelens.reports import show as show_report

    if isinstance(t, AnalysedTelemetry):
        telemetry: Telemetry = t.telemetry
        spans: pl.DataFrame | pl.LazyFrame = t.telemetry.spans
        logs: pl.DataFrame | pl.LazyFrame = t.telemetry.logs
        analysis: Analysis | None = t.analysis
    else:
        telemetry, spans, logs = pipeline.load_cached_or_raw(
            path_list(t),
            input_format=input_format,
            options=read_options(
                fields=fields, strict=strict, log_time=log_time, derived_stages=derived_stages
            ),
            use_cache=cache,
            progress=progress,
        )
        analysis = None
    return Result(
        show_report.build(
            spans=spans,
            logs=logs,
            ident=request_id,
            id_attrs=(*DEFAULT_ID_ATTRS, *id_attrs),
            depth=depth,
            collapse=collapse,
            critical_only=critical_only,
            attrs=attrs,
            inputs=report_context.inputs_of(telemetry),
            warnings=report_context.warnings_of(telemetry, analysis),
        )
    )


def check(t: AnalysedTelemetry, budgets: Sequence[str | Budget]) -> Result:
    """Budgets (``"model.inference:p95<=120ms"``, ``"error_rate<1%"``, or parsed ``Budget``s)
    against the telemetry; ``Result.passed`` says whether all were met."""
    from ml_tracelens.gates.budgets import parse_budget
    from ml_tracelens.reports import check as check_report

    _spans_required(t)
    parsed = [
        parse_budget(item, origin="budget") if isinstance(item, str) else item for item in budgets
    ]
    return Result(
        check_report.build(
            analysed=t.spans,
            budgets=parsed,
            logs=t.logs,
            llm_aliases=_llm_aliases(t),
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


def diff(
    baseline: AnalysedTelemetry,
    current: AnalysedTelemetry,
    *,
    fail_on: Sequence[str | Rule] = (),
    replicates: int = Bootstrap.replicates,
    seed: int = Bootstrap.seed,
    min_change_pct: float = DEFAULT_MIN_CHANGE_PCT,
    long: bool = False,
) -> Result:
    """Per stage, baseline against current: counts, percentiles and error rates with bootstrap
    intervals and a verdict; ``fail_on`` rules (``"p95>+10%"``) make it a gate. ``long``: one
    row per stage and metric (the full comparison) instead of one per stage."""
    from ml_tracelens.gates.budgets import parse_rule
    from ml_tracelens.reports import diff as diff_report
    from ml_tracelens.reports.sides import side_context

    for side in (baseline, current):
        _spans_required(side)
    context = side_context(
        {"inputs": baseline.inputs, "warnings": baseline.warnings},
        {"inputs": current.inputs, "warnings": current.warnings},
    )
    report = diff_report.build(
        baseline=baseline.spans,
        current=current.spans,
        rules=[
            parse_rule(item, origin="fail_on rule") if isinstance(item, str) else item
            for item in fail_on
        ],
        bootstrap=Bootstrap(replicates=replicates, seed=seed),
        min_change_pct=min_change_pct,
        llm_aliases=(_llm_aliases(baseline), _llm_aliases(current)),
        **context,
    )
    return Result(report if long else diff_report.by_stage(report))


def models(
    t: Telemetry | AnalysedTelemetry,
    *,
    baseline: Telemetry | AnalysedTelemetry | None = None,
    options: ModelOptions | None = None,
) -> Result:
    """Model behaviour per model version (errors, latency, predictions, confidence) and drift."""
    from ml_tracelens.reports import models as models_report

    current = t.telemetry if isinstance(t, AnalysedTelemetry) else t
    base = baseline.telemetry if isinstance(baseline, AnalysedTelemetry) else baseline
    return Result(
        models_report.build(
            current=current, baseline=base, options=options or models_report.ModelOptions()
        )
    )


def llm(
    t: AnalysedTelemetry,
    *,
    by: str | Sequence[str] = "model",
    **filters: Unpack[SpanFilters],
) -> Result:
    """LLM serving per model (``by``: model, operation, provider, service, stage, attr.KEY):
    requests, errors, e2e/TTFT/TPOT/queue percentiles, queue share, tokens, output tokens per
    second, finish reasons; a request seen by a client and a server span counts once."""
    from ml_tracelens.reports import llm as llm_report

    _spans_required(t)
    return Result(
        llm_report.build(
            analysed=t.spans,
            mask=_mask(t, filters),
            by=_listed(by),
            derived_stages=t.telemetry.llm_stage_spans,
            aliases=_llm_aliases(t),
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )


def why(
    t: AnalysedTelemetry,
    *,
    slow: str | None = None,
    failed: bool = False,
    where: str | None = None,
    baseline_where: str | None = None,
    stage: str | None = None,
    scope: Literal["request", "root"] = "request",
    min_count: int = 5,
    show_all: bool = False,
) -> Result:
    """What the selected requests have in common that the others do not: select with one of
    ``slow`` (``"p95"``, ``">500ms"``), ``failed`` or ``where`` (a condition some span of the
    request meets); the baseline is every other request, or those ``baseline_where`` selects.
    ``stage``: the spans of that stage are the units instead of requests; ``scope="root"``:
    only the root span's attributes count. Rows: (attribute, value) with Fisher or Mann–Whitney
    p, Benjamini–Hochberg q, and the critical-path stage that shifts most; those with
    q < 0.05 unless ``show_all``."""
    from ml_tracelens.reports import why as why_report
    from ml_tracelens.reports.why_index import DERIVED, WhyIndex, serves
    from ml_tracelens.reports.why_units import Selection

    kept = t.analysis.derived.get(DERIVED.name)
    indexed = serves(stage=stage, scope=scope, where=where, baseline_where=baseline_where)
    index = WhyIndex.from_tables(kept) if kept is not None and indexed else None
    if index is None:
        if kept is not None and not t.analysis.spans.width:
            raise UsageError(
                "loaded with the requests' index only (derived=WHY_INDEX), which serves no "
                "stage, root scope or condition: load without derived= for those"
            )
        _spans_required(t)
    return Result(
        why_report.build(
            analysed=t.spans,
            selection=Selection(
                slow=slow, failed=failed, where=where, baseline_where=baseline_where
            ),
            stage=stage,
            scope=scope,
            min_count=min_count,
            show_all=show_all,
            inputs=t.inputs,
            warnings=t.warnings,
            pairs=t.analysis.pairs,
            index=index,
        )
    )


def _llm_aliases(t: AnalysedTelemetry) -> dict[str, tuple[tuple[str, int], ...]]:
    """The keys each LLM field is read from: the built-in ones, or the user's
    ``--field llm.NAME=KEY`` (kept with the telemetry, so a cached read has them too)."""
    from ml_tracelens.core.llm import with_overrides

    return with_overrides(t.telemetry.llm_overrides)


def compare(
    t: AnalysedTelemetry,
    request_id: str,
    other: str = "typical",
    *,
    id_attrs: Sequence[str] = (),
) -> Result:
    """One request (A) against another (B: an id, or ``"typical"``, the median request of the
    same root stage and service), span by span: spans aligned by stage path and occurrence
    index with both durations, critical-path times and differing attributes, and the spans in
    one request only."""
    from ml_tracelens.reports import compare as compare_report

    _spans_required(t)
    return Result(
        compare_report.build(
            analysed=t.spans,
            logs=t.logs,
            ident=request_id,
            other=other,
            id_attrs=(*DEFAULT_ID_ATTRS, *id_attrs),
            inputs=t.inputs,
            warnings=t.warnings,
        )
    )
