"""The budget grammar of `tracelens check` and the rule grammar of `tracelens diff --fail-on`.

Budget: ``[STAGE:]METRIC OP VALUE[UNIT]``, for example::

    model.inference:p95<=120ms     error_rate<1%     POST /predict:p99<0.3s
    fetch_features:cp_share<=0.4   count>=1000       grpc:Predict:max<=2s

- STAGE is a span name; it may contain spaces and ``:``. The text is read from the right: the
  metric is the word after the LAST ``:`` (so ``grpc:Predict:max<=2s`` is stage ``grpc:Predict``).
  Without a stage a budget applies to the requests (root spans).
- METRIC: count, errors (whole numbers); mean, p50, p90, p95, p99, max, self_mean (durations:
  a unit is required: ns, us or µs, ms, s); error_rate, cp_share (fractions: ``0.4`` or ``40%``).
  cp_share and self_mean need a stage.
- OP: ``<  <=  >  >=  ==  !=``. VALUE: an unsigned decimal number (no exponent).
- LLM metrics (`tracelens llm`; the part before ``:`` names a model, e.g.
  ``llama-3-8b:llm.ttft.p99<1s``; without one, all LLM requests): ``llm.MEASURE.STAT`` with
  MEASURE e2e, ttft, tpot, queue (durations: a unit is required) or input_tokens,
  output_tokens, output_tps (plain numbers) and STAT p50, p90, p95, p99 (tokens also
  ``total``, a whole number); ``llm.queue_share`` and ``llm.error_rate`` (fractions);
  ``llm.requests`` (a whole number).
- Model metrics (`tracelens models`): ``low_confidence_rate`` (a fraction: the share of model
  records with a confidence below 0.5) and ``psi.FIELD`` (a plain number: the largest population
  stability index of FIELD, i.e. ``prediction``, ``confidence`` or a numeric attribute such as
  ``psi.input.length``, between consecutive model versions). For these, the part before ``:``
  names a model version instead of a stage: ``v2:low_confidence_rate<5%`` (without one, all
  records; for psi, the comparisons into that version).

Limits are kept as ``Decimal`` in the metric's natural unit (milliseconds for durations, a
fraction for rates and shares, a number for counts) so ``0.3s`` is exactly 300 ms and
``1234567ns`` exactly 1.234567 ms; check.py compares them with exact rational statistics.

Rule (``diff --fail-on``): ``[STAGE:]METRIC OP [+|-]AMOUNT UNIT`` over the change from baseline to
current, e.g. ``p95>+10%`` (relative), ``error_rate>+0.5pp`` (percentage points),
``model.inference:p99>+20ms`` (absolute), ``count<-20%``. Metrics: count, p50, p95, p99,
error_rate. OP: ``>  >=  <  <=``. Units: ``%`` (relative to the baseline) for every metric; a
duration unit for p50/p95/p99; ``pp`` for error_rate; none for count (absolute).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from ml_tracelens.exceptions import UsageError, quoted

BUDGET_SYNTAX = "[STAGE:]METRIC OP VALUE[UNIT], e.g. model.inference:p95<=120ms or error_rate<1%"
RULE_SYNTAX = "[STAGE:]METRIC OP [+|-]AMOUNT UNIT, e.g. p95>+10% or error_rate>+0.5pp"


class MetricKind(StrEnum):
    COUNT = "count"  # a whole number
    DURATION = "duration"  # milliseconds
    RATE = "rate"  # a fraction 0..1
    INDEX = "index"  # a plain decimal number (a PSI)


#: metric -> its kind; the order is the one help texts list
METRICS: dict[str, MetricKind] = {
    "count": MetricKind.COUNT,
    "mean": MetricKind.DURATION,
    "p50": MetricKind.DURATION,
    "p90": MetricKind.DURATION,
    "p95": MetricKind.DURATION,
    "p99": MetricKind.DURATION,
    "max": MetricKind.DURATION,
    "error_rate": MetricKind.RATE,
    "errors": MetricKind.COUNT,
    "cp_share": MetricKind.RATE,
    "self_mean": MetricKind.DURATION,
    "low_confidence_rate": MetricKind.RATE,
}
#: ``psi.FIELD`` budgets name a field after this prefix (kept in its own case).
PSI_PREFIX = "psi."
#: Metrics measured on model records (reports/models.py), scoped by model version, not stage.
MODEL_METRICS = frozenset({"low_confidence_rate"})


def is_model_metric(metric: str) -> bool:
    return metric in MODEL_METRICS or metric.startswith(PSI_PREFIX)


#: ``llm.`` budgets are measured on LLM requests (reports/llm.py), scoped by model.
LLM_PREFIX = "llm."
LLM_DURATIONS = ("e2e", "ttft", "tpot", "queue")
LLM_NUMBERS = ("input_tokens", "output_tokens", "output_tps")
LLM_STATS = ("p50", "p90", "p95", "p99")
LLM_METRICS: dict[str, MetricKind] = {
    **{f"llm.{m}.{s}": MetricKind.DURATION for m in LLM_DURATIONS for s in LLM_STATS},
    **{f"llm.{m}.{s}": MetricKind.INDEX for m in LLM_NUMBERS for s in LLM_STATS},
    "llm.input_tokens.total": MetricKind.COUNT,
    "llm.output_tokens.total": MetricKind.COUNT,
    "llm.queue_share": MetricKind.RATE,
    "llm.error_rate": MetricKind.RATE,
    "llm.requests": MetricKind.COUNT,
}


def is_llm_metric(metric: str) -> bool:
    return metric.startswith(LLM_PREFIX)


def metric_kind(metric: str) -> MetricKind | None:
    """The kind of any budget metric (stage, model, PSI or LLM); None for an unknown one."""
    if metric.startswith(PSI_PREFIX):
        return MetricKind.INDEX
    return METRICS.get(metric) or LLM_METRICS.get(metric)


#: Metrics that only make sense per stage: a request is the whole critical path, and the self
#: time of a root is a property of the stage that serves it, not of the requests.
STAGE_ONLY = frozenset({"cp_share", "self_mean"})
#: Metrics `diff` compares (and so the ones a --fail-on rule may name).
DIFF_METRICS: dict[str, MetricKind] = {
    "count": MetricKind.COUNT,
    "p50": MetricKind.DURATION,
    "p95": MetricKind.DURATION,
    "p99": MetricKind.DURATION,
    "error_rate": MetricKind.RATE,
}

#: Duration units as a power of ten relative to milliseconds.
DURATION_UNITS = {"ns": -6, "us": -3, "µs": -3, "μs": -3, "ms": 0, "s": 3}

OPERATORS: dict[str, Callable[[Fraction, Fraction], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
RULE_OPERATORS = ("<", "<=", ">", ">=")

# Greedy STAGE: the metric is the word after the last ':' that leaves a well-formed tail.
_SHAPE = re.compile(
    r"^(?:(?P<stage>.*):)?\s*(?P<metric>[^\W\d][\w.\-]*)\s*(?P<op>[<>=!]+)\s*(?P<rest>.*?)\s*$",
    re.DOTALL,
)
_NUMBER = re.compile(r"^(?P<sign>[+-]?)\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>.*)$")


@dataclass(frozen=True)
class Budget:
    """One parsed budget; ``limit`` is in the metric's natural unit (ms, fraction or count)."""

    text: str
    stage: str | None
    metric: str
    op: str
    limit: Decimal

    @property
    def kind(self) -> MetricKind:
        kind = metric_kind(self.metric)
        if kind is None:
            raise KeyError(self.metric)
        return kind

    def holds(self, actual: Fraction) -> bool:
        """Whether an exact ``actual`` value (natural unit) meets the budget."""
        return OPERATORS[self.op](actual, Fraction(self.limit))


@dataclass(frozen=True)
class Rule:
    """One parsed --fail-on rule over the change of a metric from baseline to current.

    ``relative``: ``amount`` is a percentage of the baseline value; otherwise an absolute change in
    the natural unit (ms, fraction, count).
    """

    text: str
    stage: str | None
    metric: str
    op: str
    amount: Decimal
    relative: bool

    def exceeded(self, change: float | None, change_pct: float | None) -> bool:
        """Whether a point estimate of the change passes this rule's threshold."""
        value = change_pct if self.relative else change
        if value is None:
            return False
        return OPERATORS[self.op](Fraction(value), Fraction(self.amount))


def parse_budget(text: str, *, origin: str = "--budget") -> Budget:
    """Parse one budget; a UsageError names ``origin``, the budget and what is wrong."""
    stage, metric, op, rest = _split(text, origin=origin, what="budget", syntax=BUDGET_SYNTAX)

    def fail(problem: str) -> UsageError:
        return UsageError(f"{origin} {quoted(text.strip())}: {problem}")

    if metric == PSI_PREFIX:
        raise fail(f"name the field after {quoted(PSI_PREFIX)}, e.g. psi.confidence<0.2")
    if is_llm_metric(metric) and metric not in LLM_METRICS:
        raise fail(
            f"unknown LLM metric {quoted(metric)}; choose llm.MEASURE.STAT (MEASURE: "
            f"{', '.join((*LLM_DURATIONS, *LLM_NUMBERS))}; STAT: {', '.join(LLM_STATS)}, or "
            "total for tokens), llm.queue_share, llm.error_rate or llm.requests"
        )
    if metric not in METRICS and not metric.startswith(PSI_PREFIX) and not is_llm_metric(metric):
        raise fail(
            f"unknown metric {quoted(metric)}; choose one of {', '.join(METRICS)}, {PSI_PREFIX}FIELD, "
            "llm.METRIC"
        )
    if op not in OPERATORS:
        raise fail(f"unknown operator {quoted(op)}; choose one of {' '.join(OPERATORS)}")
    if stage is None and metric in STAGE_ONLY:
        raise fail(f"{metric} needs a stage, e.g. model.inference:{metric}{op}{rest}")
    number = _NUMBER.match(rest)
    if not rest:
        raise fail(f"no value after {quoted(op)}; expected {BUDGET_SYNTAX}")
    if number is None:
        raise fail(f"the value {quoted(rest)} is not a number (digits and an optional unit)")
    if number["sign"]:
        raise fail("a budget value cannot have a sign")
    value = Decimal(number["num"])
    unit = number["unit"].strip()
    kind = metric_kind(metric) or MetricKind.INDEX
    if kind is MetricKind.INDEX:
        if unit:
            raise fail(f"{metric} is a plain number (e.g. 0.2): drop the unit {quoted(unit)}")
        limit = value
    elif kind is MetricKind.DURATION:
        if not unit:
            raise fail(f"{metric} is a duration: add a unit (ns, us, ms, s), e.g. {rest}ms")
        if unit not in DURATION_UNITS:
            raise fail(f"unknown duration unit {quoted(unit)}; use ns, us (or µs), ms or s")
        limit = value.scaleb(DURATION_UNITS[unit])
    elif kind is MetricKind.RATE:
        if unit == "%":
            if value > 100:
                raise fail(f"{value}% is more than 100%")
            limit = value.scaleb(-2)
        elif unit:
            raise fail(f"{metric} is a fraction: write 0.05 or 5%, not {quoted(unit)}")
        elif value > 1:
            raise fail(f"{metric} is a fraction from 0 to 1: did you mean {value}%?")
        else:
            limit = value
    else:
        if unit:
            raise fail(f"{metric} is a plain number: drop the unit {quoted(unit)}")
        if value != value.to_integral_value():
            raise fail(f"{metric} is a whole number, not {value}")
        limit = value
    return Budget(text=text.strip(), stage=stage, metric=metric, op=op, limit=limit)


def parse_budgets(texts: Iterable[str], *, origin: str = "--budget") -> list[Budget]:
    return [parse_budget(text, origin=origin) for text in texts]


def parse_rule(text: str, *, origin: str = "--fail-on") -> Rule:
    """Parse one ``diff --fail-on`` rule; a UsageError names the rule and what is wrong."""
    stage, metric, op, rest = _split(text, origin=origin, what="rule", syntax=RULE_SYNTAX)

    def fail(problem: str) -> UsageError:
        return UsageError(f"{origin} {quoted(text.strip())}: {problem}")

    if metric not in DIFF_METRICS:
        raise fail(f"unknown metric {quoted(metric)}; diff compares {', '.join(DIFF_METRICS)}")
    if op not in RULE_OPERATORS:
        raise fail(f"unknown operator {quoted(op)}; choose one of {' '.join(RULE_OPERATORS)}")
    number = _NUMBER.match(rest)
    if number is None:
        raise fail(f"the change {quoted(rest)} is not a number with a unit; expected {RULE_SYNTAX}")
    value = Decimal(number["num"])
    if number["sign"] == "-":
        value = -value
    unit = number["unit"].strip()
    kind = DIFF_METRICS[metric]
    if unit == "%":
        return Rule(text.strip(), stage, metric, op, value, relative=True)
    if kind is MetricKind.DURATION:
        if unit not in DURATION_UNITS:
            raise fail(
                f"{metric} changes are in % or a duration unit (ns, us, ms, s), not {quoted(unit)}"
            )
        amount = value.scaleb(DURATION_UNITS[unit])
    elif kind is MetricKind.RATE:
        if unit != "pp":
            raise fail(f"{metric} changes are in pp (percentage points) or %, not {quoted(unit)}")
        amount = value.scaleb(-2)
    else:
        if unit:
            raise fail(f"{metric} changes are in % or a plain number, not {quoted(unit)}")
        amount = value
    return Rule(text.strip(), stage, metric, op, amount, relative=False)


def parse_rules(texts: Iterable[str], *, origin: str = "--fail-on") -> list[Rule]:
    return [parse_rule(text, origin=origin) for text in texts]


def _split(text: str, *, origin: str, what: str, syntax: str) -> tuple[str | None, str, str, str]:
    """(stage or None, lower-case metric, operator, value text) of a budget or rule."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{origin}: empty {what}; expected {syntax}")
    match = _SHAPE.match(text.strip())
    if match is None:
        raise UsageError(f"{origin} {quoted(text.strip())}: not a {what}; expected {syntax}")
    stage = match["stage"]
    if stage is not None:
        stage = stage.strip()
        if not stage:
            raise UsageError(f"{origin} {quoted(text.strip())}: empty stage name before ':'")
    metric = match["metric"]
    # psi.FIELD keeps the field's case: attribute keys are case-sensitive.
    if metric.lower().startswith(PSI_PREFIX):
        metric = PSI_PREFIX + metric[len(PSI_PREFIX) :]
    else:
        metric = metric.lower()
    return stage, metric, match["op"], match["rest"]


def format_limit(value: Decimal | float | None, kind: MetricKind) -> str:
    """A limit or actual value for people: ``120 ms``, ``1.5%``, ``1,000``.

    Limits (Decimal) print as written; measured values (float) to the microsecond or to
    a thousandth of a percent, which is finer than any budget anyone writes.
    """
    if value is None:
        return "-"
    if kind is MetricKind.DURATION:
        return f"{_trim(_measured(value, 3))} ms"
    if kind is MetricKind.RATE:
        return f"{_trim(_measured(value * 100, 3))}%"
    if kind is MetricKind.INDEX:
        return _trim(_measured(value, 4))
    return f"{int(value):,}"


def _measured(value: Decimal | float, digits: int) -> Decimal | float:
    """A limit (Decimal) as written, a measured value (float) rounded to ``digits``."""
    return value if isinstance(value, Decimal) else round(value, digits)


def _trim(value: Decimal | float) -> str:
    text = f"{Decimal(str(value)):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
