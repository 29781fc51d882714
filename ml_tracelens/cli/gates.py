"""CI gates and model behaviour: `check`, `diff` and `models`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ml_tracelens.cli.options import OUTPUT, READING, Common, Paths, command
from ml_tracelens.exceptions import UsageError

if TYPE_CHECKING:
    from ml_tracelens.api import AnalysedTelemetry, Result

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="TOML file with budgets/fail_on (default: ./tracelens.toml, else [tool.tracelens] "
        "in ./pyproject.toml).",
    ),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option(
        "--junit", metavar="FILE", help="Also write JUnit XML here, for CI test reporters."
    ),
]
BudgetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--budget",
        metavar="BUDGET",
        help="[STAGE:]METRIC OP VALUE[UNIT] (repeatable), e.g. 'model.inference:p95<=120ms', "
        "'error_rate<1%'. Metrics: count mean p50 p90 p95 p99 max error_rate errors "
        "cp_share self_mean; model metrics low_confidence_rate psi.FIELD (e.g. "
        "'psi.confidence<0.2', 'v2:low_confidence_rate<5%': before ':' a model version); "
        "units ns us ms s %. No stage: the requests.",
    ),
]
SidesArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="BASELINE CURRENT",
        help="Two inputs (file, directory or glob each), or use --baseline/--current.",
    ),
]
BaselineOpt = Annotated[
    list[str] | None,
    typer.Option("--baseline", metavar="PATH", help="A baseline input (repeatable)."),
]
CurrentOpt = Annotated[
    list[str] | None,
    typer.Option("--current", metavar="PATH", help="A current input (repeatable)."),
]
FailOnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-on",
        metavar="RULE",
        help="[STAGE:]METRIC OP CHANGE (repeatable), e.g. 'p95>+10%', 'error_rate>+0.5pp', "
        "'model.inference:p99>+20ms'; no stage: every stage and the requests. Exit 1 when "
        "exceeded and the 95% bootstrap interval excludes 0.",
    ),
]
BootstrapOpt = Annotated[
    int,
    typer.Option(
        "--bootstrap", min=100, metavar="N", help="Bootstrap replicates (resampled runs)."
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, metavar="N", help="Bootstrap random seed.")]
MinChangeOpt = Annotated[
    float,
    typer.Option(
        "--min-change",
        min=0,
        metavar="PCT",
        help="Smallest change (percent of the baseline) that gets a verdict.",
    ),
]
LongOpt = Annotated[
    bool, typer.Option("--long", help="One row per stage and metric, with intervals and q.")
]
FeatureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--feature",
        metavar="KEY",
        help="A numeric input attribute to summarise and check for drift (repeatable), "
        "e.g. input.length.",
    ),
]
ModelFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--model-field",
        metavar="KEY",
        help="Model version key (default: model.version, model_version, model).",
    ),
]
PredictionFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--prediction-field",
        metavar="KEY",
        help="Prediction key (default: prediction, label, class, predicted_class).",
    ),
]
ConfidenceFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--confidence-field",
        metavar="KEY",
        help="Confidence key (default: confidence, score, probability).",
    ),
]
LowConfidenceOpt = Annotated[
    float,
    typer.Option("--low-confidence", metavar="X", help="Confidence below X counts as low."),
]
TopClassesOpt = Annotated[
    int,
    typer.Option(
        "--top-classes", metavar="N", help="Classes listed per prediction mix (rest: (others))."
    ),
]
CompareOpt = Annotated[
    str | None,
    typer.Option(
        "--compare",
        metavar="FROM,TO",
        help="Drift between these two model versions (default: each version against the "
        "previous one in version order).",
    ),
]
ModelsBaselineOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--baseline",
        metavar="PATH",
        help="Drift from these baseline inputs to PATHS (repeatable).",
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        metavar="DURATION",
        help="Drift between consecutive periods of this length, e.g. 10m (units ms s m h d).",
    ),
]


@command(READING, OUTPUT)
def check(
    paths: Paths,
    budget: BudgetOpt = None,
    config: ConfigOpt = None,
    junit: JunitOpt = None,
    *,
    common: Common,
) -> None:
    """CI gate: check latency/error budgets; exit 1 when one is not met."""
    from ml_tracelens import api
    from ml_tracelens.gates.config import gate_budgets

    budgets = gate_budgets(budget, config)
    result = api.check(common.load(paths, config=config), budgets)
    write_junit(junit, result)
    common.emit(result)


@command(READING, OUTPUT)
def diff(
    paths: SidesArg = None,
    baseline: BaselineOpt = None,
    current: CurrentOpt = None,
    fail_on: FailOnOpt = None,
    replicates: BootstrapOpt = 1000,
    seed: SeedOpt = 1,
    min_change: MinChangeOpt = 5.0,
    long: LongOpt = False,
    config: ConfigOpt = None,
    junit: JunitOpt = None,
    *,
    common: Common,
) -> None:
    """Compare a baseline with a current run per stage; with --fail-on, a regression gate."""
    from ml_tracelens import api
    from ml_tracelens.gates.config import gate_rules
    from ml_tracelens.reports import sides

    base_paths, cur_paths = sides.sides(paths, baseline, current)
    rules = gate_rules(fail_on, config)
    base, cur = (_diff_side(common, side, config) for side in (base_paths, cur_paths))
    result = api.diff(
        base,
        cur,
        fail_on=rules,
        replicates=replicates,
        seed=seed,
        min_change_pct=min_change,
        long=long,
    )
    write_junit(junit, result)
    common.emit(result)


@command(READING, OUTPUT)
def models(
    paths: Paths,
    feature: FeatureOpt = None,
    model_field: ModelFieldOpt = None,
    prediction_field: PredictionFieldOpt = None,
    confidence_field: ConfidenceFieldOpt = None,
    low_confidence: LowConfidenceOpt = 0.5,
    top_classes: TopClassesOpt = 10,
    compare: CompareOpt = None,
    baseline: ModelsBaselineOpt = None,
    window: WindowOpt = None,
    *,
    common: Common,
) -> None:
    """Model behaviour per model version (errors, latency, predictions, confidence) and drift (PSI)."""
    from ml_tracelens import api
    from ml_tracelens.reports import models as models_report
    from ml_tracelens.reports.model_records import FieldKeys

    options = models_report.ModelOptions(
        keys=FieldKeys.choose(
            model_field=model_field,
            prediction_field=prediction_field,
            confidence_field=confidence_field,
            features=feature or (),
        ),
        low_confidence=low_confidence,
        top_classes=top_classes,
        compare=models_report.parse_compare(compare) if compare else None,
        window=window,
    )
    current = common.read(paths)
    base = common.read(baseline) if baseline else None
    common.emit(api.models(current, baseline=base, options=options))


def _diff_side(common: Common, paths: list[str], config: Path | None) -> AnalysedTelemetry:
    """One side of a diff: span columns only, unless it holds LLM spans, whose per-model
    comparison reads their attributes (loaded again, from the cache when it has them)."""
    side = common.load(paths, by=[], config=config)
    if side.telemetry.llm_spans and "attributes" not in side.spans.columns:
        side = common.load(paths, config=config)
    return side


def write_junit(path: Path | None, result: Result) -> None:
    """Also write the JUnit XML of a gate's result to ``path`` (--junit), when given."""
    if path is None:
        return
    from ml_tracelens.render.junit import render_report

    try:
        path.write_text(render_report(result.report), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--junit {path}: cannot write ({exc.strerror or exc})") from None
