"""The JSON documents the reports print, as types: one contract for ``--format json``.

Every document is the envelope (``tracelens``, ``report``, ``inputs``, ``warnings``) plus the
report's own keys; a report key never repeats an envelope key, and a key that several reports
print has one type in all of them (``tests/reports/test_documents.py`` checks both, and decodes every
command's real output with these types). ``tracelens schema REPORT`` prints the JSON Schema
generated from them; ``Result.document`` in the library decodes a report into them.

Durations are milliseconds (``_ms``), shares and rates fractions 0..1, times ISO-8601 UTC
strings. ``None`` is JSON ``null``: nothing to measure.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An object with exactly these keys."""


class Version(Strict):
    version: str
    schema: int


class Input(Strict):
    """One input and the accounting of its lines."""

    path: str
    format: str
    spans: int
    logs: int
    lines: int
    records: int
    skipped: int
    skipped_items: int
    #: reason -> count of what was read but deliberately not used
    ignored: dict[str, int]
    #: ``baseline`` or ``current`` (diff, models --baseline)
    side: str | None = None


class Envelope(Strict):
    tracelens: Version
    report: str
    inputs: list[Input]
    warnings: list[str]


ENVELOPE_KEYS = frozenset(Envelope.__struct_fields__)


class RequestSummary(Strict):
    """The requests (traces with a true root span) among the selected spans."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors: int
    error_rate: float | None


class SkewPair(Strict):
    parent_service: str | None
    child_service: str | None
    spans: int


class SummaryDocument(Envelope):
    spans: int
    traces: int
    services: list[str]
    start: str | None
    end: str | None
    error_spans: int
    orphan_spans: int
    merged_duplicate_spans: int
    conflicting_duplicate_spans: int
    cycles_broken: int
    negative_durations: int
    untimed_spans: int
    skewed_spans: int
    traces_with_multiple_roots: int
    derived_spans: int
    log_records: int
    log_lines_as_spans: int
    derived_request_roots: int
    log_lines_not_spans: dict[str, int]
    skipped_lines: int
    skipped_items: int
    skew: list[SkewPair]


class LatencyRow(msgspec.Struct, kw_only=True):
    """One group; its keys (``stage``, ``service``, ``attr.KEY``...) come first, named by
    ``group_by``, so this object takes keys besides these."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    self_mean_ms: float | None
    cp_share: float | None
    errors: int
    error_rate: float | None


class LatencyDocument(Envelope):
    requests: RequestSummary
    group_by: list[str]
    rows: list[LatencyRow]


class StageErrors(Strict):
    stage: str | None
    spans: int
    errors: int
    originated: int
    error_rate: float | None


class ErrorMessage(Strict):
    message: str | None
    count: int
    stages: list[str]
    first: str | None
    last: str | None
    example_trace_id: str | None


class ErrorsDocument(Envelope):
    requests: RequestSummary
    rows: list[StageErrors]
    messages: list[ErrorMessage]


class TailRequests(Strict):
    quantile: float
    threshold_ms: float | None
    requests: int


class TypicalRequests(Strict):
    from_ms: float | None
    to_ms: float | None
    requests: int


class StageBottleneck(Strict):
    stage: str | None
    cp_share: float | None
    cp_mean_ms: float | None
    tail_delta_ms: float | None


class BottlenecksDocument(Envelope):
    verdict: str
    requests: RequestSummary
    tail: TailRequests
    typical: TypicalRequests
    rows: list[StageBottleneck]


class BudgetResult(Strict):
    budget: str
    #: in the metric's unit: ms for durations, a fraction for rates and shares, a count
    actual: float | None
    limit: float
    passed: bool
    stage: str | None
    metric: str
    op: str
    note: str | None


class CheckDocument(Envelope):
    passed: bool
    budgets: int
    failed: int
    rows: list[BudgetResult]


class BootstrapSettings(Strict):
    replicates: int
    seed: int
    confidence: float
    unit: str


class MetricChange(Strict):
    stage: str | None
    metric: str
    baseline: float | None
    current: float | None
    change: float | None
    change_pct: float | None
    ci_low: float | None
    ci_high: float | None
    q_value: float | None
    significant: bool
    direction: str | None
    regression: bool
    note: str | None


class DiffDocument(Envelope):
    passed: bool
    regressions: int
    significant_changes: int
    min_change_pct: float
    rules: list[str]
    appeared: list[str]
    disappeared: list[str]
    bootstrap: BootstrapSettings
    rows: list[MetricChange]


class RootSpan(Strict):
    span_id: str
    stage: str | None
    service: str | None
    start: str | None
    duration_ms: float | None
    error: bool


class ShownSpan(Strict):
    span_id: str
    parent_id: str | None
    service: str | None
    stage: str | None
    kind: str | None
    depth: int
    start_offset_ms: float | None
    duration_ms: float | None
    self_ms: float | None
    cp_ms: float | None
    error: bool
    error_message: str | None
    orphan: bool
    skewed: bool
    outside_parent: bool
    attributes: dict[str, Any]
    events: list[Any]


class ShownLog(Strict):
    time: str | None
    offset_ms: float | None
    level: str | None
    service: str | None
    message: str | None
    span_id: str | None
    attached_by: str | None


class ShowDocument(Envelope):
    trace_id: str
    matched_by: str
    correlation_ids: list[str]
    start: str | None
    duration_ms: float | None
    span_count: int
    spans_shown: int
    error_spans: int
    services: list[str]
    root: RootSpan
    #: the request's spans in tree order (``summary``'s ``spans`` is a count: see the README)
    spans: list[ShownSpan]
    logs: list[ShownLog]


class TraceRow(Strict):
    trace_id: str
    correlation_id: str | None
    stage: str | None
    service: str | None
    start: str | None
    duration_ms: float | None
    spans: int
    errors: int
    error: bool


class TracesDocument(Envelope):
    traces_total: int
    traces_matching: int
    traces_failed: int
    rows: list[TraceRow]


class ModelVersionRow(Strict):
    model_version: str | None
    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    prediction_mix: dict[str, float]
    confidence_p10: float | None
    confidence_p50: float | None
    confidence_p90: float | None
    low_confidence_rate: float | None


class WindowRow(ModelVersionRow):
    window: str | None


class Drift(Strict):
    field: str
    from_: str | None = msgspec.field(name="from")
    to: str | None
    psi: float | None
    reading: str | None
    n_from: int
    n_to: int


class FeatureSummary(Strict):
    model_version: str | None
    feature: str
    count: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    min: float | None
    max: float | None


class ModelsDocument(Envelope):
    #: model_version / prediction / confidence / each feature -> the keys found for it
    fields: dict[str, list[str]]
    stages: list[str]
    low_confidence: float
    drift_by: str
    window: str | None
    rows: list[ModelVersionRow]
    drift: list[Drift]
    features: list[FeatureSummary] | None = None
    windows: list[WindowRow] | None = None
    baseline_rows: list[ModelVersionRow] | None = None


class LlmRow(msgspec.Struct, kw_only=True):
    """One group of LLM requests; its keys (``model``, ``operation``, ``attr.KEY``...) come
    first, named by ``group_by``, so this object takes keys besides these."""

    requests: int
    errors: int
    error_rate: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p95_ms: float | None
    queue_p50_ms: float | None
    queue_p95_ms: float | None
    queue_share: float | None
    input_tokens_p50: float | None
    input_tokens_p95: float | None
    input_tokens_total: int | None
    output_tokens_p50: float | None
    output_tokens_p95: float | None
    output_tokens_total: int | None
    output_tps_p50: float | None
    finish_reasons: dict[str, float]


class LlmClientRow(msgspec.Struct, kw_only=True):
    """Requests of a group also seen by a client span; group keys first, as in ``LlmRow``."""

    paired: int
    client_e2e_p50_ms: float | None
    client_e2e_p95_ms: float | None
    server_e2e_p50_ms: float | None
    server_e2e_p95_ms: float | None


class LlmDocument(Envelope):
    group_by: list[str]
    #: LLM requests counted (a client and a server span of one request count once)
    llm_requests: int
    paired_requests: int
    #: LLM field (model, ttft, input_tokens, ...) -> the attribute keys that held its values
    fields: dict[str, list[str]]
    derived_stage_spans: int
    rows: list[LlmRow]
    clients: list[LlmClientRow]


class Format(Strict):
    name: str
    description: str
    accepts: str


class FormatsDocument(Envelope):
    rows: list[Format]


#: Report name -> its document type.
DOCUMENTS: dict[str, type[Envelope]] = {
    "summary": SummaryDocument,
    "latency": LatencyDocument,
    "errors": ErrorsDocument,
    "bottlenecks": BottlenecksDocument,
    "check": CheckDocument,
    "diff": DiffDocument,
    "show": ShowDocument,
    "traces": TracesDocument,
    "models": ModelsDocument,
    "llm": LlmDocument,
    "formats": FormatsDocument,
}


class _Named(msgspec.Struct):
    report: str


def decode(text: str | bytes) -> Envelope:
    """A report's JSON document as its type; ``msgspec.ValidationError`` names what differs."""
    name = msgspec.json.decode(text, type=_Named).report
    return msgspec.json.decode(text, type=DOCUMENTS[name])


def schema(report: str) -> dict[str, Any]:
    """The JSON Schema of a report's document."""
    generated: dict[str, Any] = msgspec.json.schema(DOCUMENTS[report])
    return generated
