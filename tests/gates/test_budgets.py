"""The budget and --fail-on grammars: every metric, unit and operator, stages read from the right,
and a UsageError (exit 2) naming the budget and what is wrong."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from ml_tracelens.cli.exits import exit_code_for
from ml_tracelens.exceptions import UsageError
from ml_tracelens.gates.budgets import METRICS, MetricKind, parse_budget, parse_rule


@pytest.mark.parametrize(
    ("text", "stage", "metric", "op", "limit"),
    [
        ("model.inference:p95<=120ms", "model.inference", "p95", "<=", Decimal(120)),
        ("error_rate<1%", None, "error_rate", "<", Decimal("0.01")),
        ("POST /predict:p99<0.3s", "POST /predict", "p99", "<", Decimal(300)),
        ("fetch_features:cp_share<=0.4", "fetch_features", "cp_share", "<=", Decimal("0.4")),
        ("count>=1000", None, "count", ">=", Decimal(1000)),
        # Stage names keep their ':' and spaces: the metric follows the LAST ':'.
        ("grpc:Predict v2:max<=2s", "grpc:Predict v2", "max", "<=", Decimal(2000)),
        ("  a:b:c : mean > 5 ms ", "a:b:c", "mean", ">", Decimal(5)),
        ("x<y:p50==1ms", "x<y", "p50", "==", Decimal(1)),
        ("P90 != 3ms", None, "p90", "!=", Decimal(3)),
    ],
)
def test_a_budget_reads_as_stage_metric_operator_and_limit(
    text: str, stage: str | None, metric: str, op: str, limit: Decimal
) -> None:
    budget = parse_budget(text)
    assert (budget.stage, budget.metric, budget.op, budget.limit) == (stage, metric, op, limit)
    assert budget.text == text.strip()


@pytest.mark.parametrize(
    ("value", "limit_ms"),
    [
        ("1234567ns", "1.234567"),
        ("1500us", "1.5"),
        ("1500µs", "1.5"),
        ("1500μs", "1.5"),  # Greek mu as well as the micro sign
        ("120ms", "120"),
        ("0.3s", "300"),
        ("2s", "2000"),
        (".5ms", "0.5"),
    ],
)
def test_duration_units_convert_exactly_to_ms(value: str, limit_ms: str) -> None:
    assert parse_budget(f"p50<{value}").limit == Decimal(limit_ms)


def test_every_metric_parses_with_its_kind_of_value() -> None:
    values = {MetricKind.COUNT: "10", MetricKind.DURATION: "10ms", MetricKind.RATE: "0.1"}
    for metric, kind in METRICS.items():
        budget = parse_budget(f"stage:{metric}<{values[kind]}")
        assert budget.metric == metric
        assert budget.kind is kind
    assert parse_budget("s:cp_share<40%").limit == Decimal("0.40")
    assert parse_budget("error_rate<=0.5%").limit == Decimal("0.005")


@pytest.mark.parametrize(
    ("op", "below", "equal", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
        ("==", False, True, False),
        ("!=", True, False, True),
    ],
)
def test_every_operator_holds_below_at_and_above_the_limit_as_written(
    op: str, below: bool, equal: bool, above: bool
) -> None:
    budget = parse_budget(f"p95{op}120ms")
    assert budget.holds(Fraction(119_999_999, 1_000_000)) is below
    assert budget.holds(Fraction(120)) is equal
    assert budget.holds(Fraction(120_000_001, 1_000_000)) is above


def test_thresholds_are_exact_not_float() -> None:
    # 0.1 + 0.2 != 0.3 in floats; the limit and the comparison are exact.
    budget = parse_budget("p50<=0.3ms")
    assert budget.holds(Fraction(1, 10) + Fraction(2, 10))
    assert parse_budget("p50==0.0003s").holds(Fraction(3, 10))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p96<=120ms", "unknown metric 'p96'"),
        ("model.inference:latency<1s", "unknown metric 'latency'"),
        ("p95=<120ms", "unknown operator '=<'"),
        ("p95<=fast", "is not a number"),
        ("p95<=", "no value"),
        ("p95<=120", "add a unit"),
        ("p95<=120min", "unknown duration unit 'min'"),
        ("p95<=-1ms", "cannot have a sign"),
        ("error_rate<5", "did you mean 5%"),
        ("error_rate<5ms", "is a fraction"),
        ("error_rate<150%", "more than 100%"),
        ("cp_share<0.4", "needs a stage"),
        ("self_mean<1ms", "needs a stage"),
        ("count>=10.5", "whole number"),
        ("count>=10ms", "drop the unit"),
        (":p95<1ms", "empty stage name"),
        ("model.inference", "not a budget"),
        ("", "empty budget"),
        ("p95 < 1e3ms", "unknown duration unit"),
    ],
)
def test_bad_budgets_name_the_budget_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_budget(text, origin="--budget")
    message = str(info.value)
    assert expected in message
    assert message.startswith("--budget")
    if text:
        assert repr(text.strip()) in message
    assert exit_code_for(info.value) == 2


@pytest.mark.parametrize(
    ("text", "stage", "metric", "op", "amount", "relative"),
    [
        ("p95>+10%", None, "p95", ">", Decimal(10), True),
        ("p95>10%", None, "p95", ">", Decimal(10), True),
        ("error_rate>+0.5pp", None, "error_rate", ">", Decimal("0.005"), False),
        ("error_rate>=+50%", None, "error_rate", ">=", Decimal(50), True),
        ("model.inference:p99>+20ms", "model.inference", "p99", ">", Decimal(20), False),
        ("POST /predict:p50>0.1s", "POST /predict", "p50", ">", Decimal(100), False),
        ("count<-20%", None, "count", "<", Decimal(-20), True),
        ("count<-100", None, "count", "<", Decimal(-100), False),
    ],
)
def test_a_fail_on_rule_reads_as_stage_metric_operator_and_change(
    text: str, stage: str | None, metric: str, op: str, amount: Decimal, relative: bool
) -> None:
    rule = parse_rule(text)
    assert (rule.stage, rule.metric, rule.op, rule.amount, rule.relative) == (
        stage,
        metric,
        op,
        amount,
        relative,
    )


def test_a_rule_is_exceeded_only_past_its_change() -> None:
    rule = parse_rule("p95>+10%")
    assert rule.exceeded(change=5.0, change_pct=10.5)
    assert not rule.exceeded(change=5.0, change_pct=10.0)
    assert not rule.exceeded(change=None, change_pct=None)
    pp = parse_rule("error_rate>+0.5pp")
    assert pp.exceeded(change=0.006, change_pct=None)
    assert not pp.exceeded(change=0.004, change_pct=400.0)
    drop = parse_rule("count<-20%")
    assert drop.exceeded(change=-50, change_pct=-50.0)
    assert not drop.exceeded(change=-10, change_pct=-10.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mean>+10%", "diff compares count, p50, p95, p99, error_rate"),
        ("p95==+10%", "unknown operator '=='"),
        ("p95>+10", "% or a duration unit"),
        ("error_rate>+0.5ms", "pp (percentage points)"),
        ("count>+5ms", "% or a plain number"),
        ("p95>lots", "is not a number"),
    ],
)
def test_bad_rules_name_the_rule_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_rule(text)
    assert expected in str(info.value)
    assert str(info.value).startswith(f"--fail-on {text!r}")


# --- LLM budgets (issue 17) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stage", "metric", "kind", "limit"),
    [
        ("llm.ttft.p95 < 500ms", None, "llm.ttft.p95", "duration", "500"),
        ("llm.tpot.p50 <= 40ms", None, "llm.tpot.p50", "duration", "40"),
        ("llm.queue_share < 20%", None, "llm.queue_share", "rate", "0.20"),
        ("llm.output_tps.p50 >= 30", None, "llm.output_tps.p50", "index", "30"),
        ("llama-3-8b:llm.ttft.p99 < 1s", "llama-3-8b", "llm.ttft.p99", "duration", "1E+3"),
        ("org/model:v1:llm.e2e.p50<2s", "org/model:v1", "llm.e2e.p50", "duration", "2E+3"),
        ("llm.output_tokens.total>=1000", None, "llm.output_tokens.total", "count", "1000"),
        ("llm.error_rate<1%", None, "llm.error_rate", "rate", "0.01"),
    ],
)
def test_llm_budgets_parse_with_a_model_prefix(
    text: str, stage: str | None, metric: str, kind: str, limit: str
) -> None:
    from decimal import Decimal

    from ml_tracelens.gates.budgets import parse_budget

    budget = parse_budget(text)
    assert (budget.stage, budget.metric, budget.kind.value) == (stage, metric, kind)
    assert budget.limit == Decimal(limit)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("llm.ttft.p95 < 500", "add a unit"),
        ("llm.ttft.p42 < 5ms", "unknown LLM metric"),
        ("llm.colour < 5", "unknown LLM metric"),
        ("llm.output_tps.p50 >= 30ms", "plain number"),
        ("llm.queue_share < 120%", "more than 100%"),
    ],
)
def test_malformed_llm_budgets_say_what_is_wrong(text: str, problem: str) -> None:
    from ml_tracelens.exceptions import UsageError
    from ml_tracelens.gates.budgets import parse_budget

    with pytest.raises(UsageError, match=problem):
        parse_budget(text)
