"""The JSON documents the reports print, as types: one contract for ``--format json``.

A report builder makes its payload, a ``Payload`` struct of the report's own keys, and its row
tables (``result.Table``). The document is the envelope (``tracelens``, ``report``, ``inputs``,
``warnings``), then the payload's keys, then the tables' keys; its type is generated here from
the payload type and the row type of each table (``document``), so the two cannot drift apart.
No key can be printed twice: a payload type that declares an envelope key is refused when it is
defined, a table key that repeats a payload or envelope key when the document type is made (and
``Report`` checks its tables against its payload when it is built). A key that several reports
print has one type in all of them (``tests/reports/test_documents.py``, which also decodes every
command's real output with these types). ``tracelens schema REPORT`` prints the JSON Schema
generated from them; ``Result.document`` in the library decodes a report into them.

Durations are milliseconds (``_ms``), shares and rates fractions 0..1, times ISO-8601 UTC
strings. ``None`` is JSON ``null``: nothing to measure.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
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


class Payload(Strict):
    """A report's own top-level keys, besides its row tables. A subclass may not declare an
    envelope key: the document would print it twice."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checked on the annotations: msgspec sets the fields after this hook runs.
        clashes = ENVELOPE_KEYS & set(inspect.get_annotations(cls))
        if clashes:
            repeated = ", ".join(sorted(clashes))
            raise TypeError(f"{cls.__name__} repeats envelope keys: {repeated}")


def document(
    name: str,
    payload: type[Payload],
    tables: Mapping[str, object],
    *,
    optional_tables: frozenset[str] = frozenset(),
) -> type[Envelope]:
    """The document type of a report: the envelope, the payload's keys, then one key per table
    (``tables``: key -> the type of its rows; keys in ``optional_tables`` may be absent)."""
    own = payload.__struct_fields__
    clashes = (ENVELOPE_KEYS | set(own)) & set(tables)
    if clashes:
        raise TypeError(f"{name}: table keys repeat other keys: {', '.join(sorted(clashes))}")
    hints = typing.get_type_hints(payload)
    fields: list[tuple[str, object] | tuple[str, object, object]] = [
        (key, hints[key]) for key in own
    ]
    fields += [
        (key, rows, None) if key in optional_tables else (key, rows) for key, rows in tables.items()
    ]
    generated = msgspec.defstruct(
        name, fields, bases=(Envelope,), kw_only=True, forbid_unknown_fields=True, module=__name__
    )
    assert issubclass(generated, Envelope)
    return generated


def table_clashes(payload: Payload | None, table_keys: list[str]) -> set[str]:
    """Table keys of a report that its envelope or payload already print."""
    own = set(payload.__struct_fields__) if payload is not None else set()
    repeated = {key for key in table_keys if table_keys.count(key) > 1}
    return set(ENVELOPE_KEYS | own) & set(table_keys) | repeated


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


class SummaryPayload(Payload):
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
    #: spans carrying LLM attributes, and the queue/prefill/decode spans derived from them
    llm_spans: int
    llm_stage_spans: int
    #: LLM field (model, ttft, input_tokens, ...) -> the attribute keys that held its values
    llm_fields: dict[str, list[str]]


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


class LatencyPayload(Payload):
    requests: RequestSummary
    group_by: list[str]


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


class ErrorsPayload(Payload):
    requests: RequestSummary
    #: distinct normalised messages; ``messages`` holds the ``--top`` most frequent
    distinct_messages: int


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


class BottlenecksPayload(Payload):
    verdict: str
    requests: RequestSummary
    tail: TailRequests
    typical: TypicalRequests


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


class CheckPayload(Payload):
    passed: bool
    budgets: int
    failed: int


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


class DiffPayload(Payload):
    passed: bool
    regressions: int
    significant_changes: int
    min_change_pct: float
    rules: list[str]
    appeared: list[str]
    disappeared: list[str]
    bootstrap: BootstrapSettings


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


class ShowPayload(Payload):
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


class TracesPayload(Payload):
    traces_total: int
    traces_matching: int
    traces_failed: int


class ModelStats(Strict):
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


class ModelVersionRow(ModelStats):
    model_version: str | None


class WindowRow(ModelStats):
    """A period of ``--window``, every model version pooled."""

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


class ModelsPayload(Payload):
    #: model_version / prediction / confidence / each feature -> the keys found for it
    fields: dict[str, list[str]]
    stages: list[str]
    low_confidence: float
    drift_by: str
    window: str | None


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


class LlmPayload(Payload):
    group_by: list[str]
    #: LLM requests counted (a client and a server span of one request count once)
    llm_requests: int
    paired_requests: int
    #: LLM field (model, ttft, input_tokens, ...) -> the attribute keys that held its values
    fields: dict[str, list[str]]
    derived_stage_spans: int


class Format(Strict):
    name: str
    description: str
    accepts: str


class FormatsPayload(Payload):
    """``formats`` prints only its table."""


class StageShift(Strict):
    """The stage whose mean critical-path time per request grows most with a finding."""

    stage: str | None
    delta_ms: float


class WhyRow(Strict):
    """One tested (attribute, value); ``value`` is null for a numeric attribute, whose
    distributions are compared (``selection_median``, ``baseline_median``)."""

    attribute: str
    value: str | None
    selection_count: int
    selection_share: float
    baseline_count: int
    baseline_share: float
    lift: float | None
    difference: float
    p_value: float
    q_value: float
    #: ``fisher`` (two-sided exact, 2x2 counts) or ``mann-whitney`` (numeric)
    test: str
    selection_median: float | None
    baseline_median: float | None
    stage_shift: StageShift | None


class WhySide(Strict):
    rule: str
    count: int
    #: the duration a selected unit exceeds (``--slow``)
    threshold_ms: float | None


class WhyPayload(Payload):
    verdict: str
    #: ``requests``, or ``spans`` of ``stage``
    unit: str
    stage: str | None
    #: where a request's attributes come from: ``request`` (any span), ``root``; ``span``
    scope: str
    selection: WhySide
    baseline: WhySide
    tests: int
    min_count: int
    #: rows shown have q below it; null with --all
    q_threshold: float | None


class ComparedRequest(Strict):
    trace_id: str
    stage: str | None
    service: str | None
    duration_ms: float | None
    #: ``id`` (named), or ``typical`` (the median request of the same root stage)
    chosen_by: str


class AlignedSpan(Strict):
    """A span of A and the span of B at the same stage path and occurrence index."""

    path: str
    a_ms: float | None
    b_ms: float | None
    delta_ms: float | None
    a_cp_ms: float | None
    b_cp_ms: float | None
    #: attribute keys whose values differ between the two spans
    attrs_changed: list[str]


class ComparePayload(Payload):
    a: ComparedRequest
    b: ComparedRequest
    #: stage paths of spans in one request only
    only_a: list[str]
    only_b: list[str]


SummaryDocument = document("SummaryDocument", SummaryPayload, {})
LatencyDocument = document("LatencyDocument", LatencyPayload, {"rows": list[LatencyRow]})
ErrorsDocument = document(
    "ErrorsDocument",
    ErrorsPayload,
    {"rows": list[StageErrors], "messages": list[ErrorMessage]},
)
BottlenecksDocument = document(
    "BottlenecksDocument", BottlenecksPayload, {"rows": list[StageBottleneck]}
)
CheckDocument = document("CheckDocument", CheckPayload, {"rows": list[BudgetResult]})
DiffDocument = document("DiffDocument", DiffPayload, {"rows": list[MetricChange]})
#: the request's spans in tree order (``summary``'s ``spans`` is a count: see the README)
ShowDocument = document(
    "ShowDocument", ShowPayload, {"spans": list[ShownSpan], "logs": list[ShownLog]}
)
TracesDocument = document("TracesDocument", TracesPayload, {"rows": list[TraceRow]})
ModelsDocument = document(
    "ModelsDocument",
    ModelsPayload,
    {
        "rows": list[ModelVersionRow],
        "drift": list[Drift],
        "features": list[FeatureSummary] | None,
        "windows": list[WindowRow] | None,
        "baseline_rows": list[ModelVersionRow] | None,
    },
    optional_tables=frozenset({"features", "windows", "baseline_rows"}),
)
LlmDocument = document(
    "LlmDocument", LlmPayload, {"rows": list[LlmRow], "clients": list[LlmClientRow]}
)
FormatsDocument = document("FormatsDocument", FormatsPayload, {"rows": list[Format]})
WhyDocument = document("WhyDocument", WhyPayload, {"rows": list[WhyRow]})
CompareDocument = document("CompareDocument", ComparePayload, {"aligned": list[AlignedSpan]})

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
    "why": WhyDocument,
    "compare": CompareDocument,
    "formats": FormatsDocument,
}


class _Named(msgspec.Struct):
    report: str


def decode(text: str | bytes) -> Envelope:
    """A report's JSON document as its type; ``msgspec.ValidationError`` names what differs."""
    name = msgspec.json.decode(text, type=_Named).report
    return msgspec.json.decode(text, type=DOCUMENTS[name])


def schema(report: str) -> dict[str, object]:
    """The JSON Schema of a report's document."""
    generated: dict[str, object] = msgspec.json.schema(DOCUMENTS[report])
    return generated
