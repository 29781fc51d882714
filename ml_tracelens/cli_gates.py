"""CI gates and model behaviour: `check`, `diff` and `models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ml_tracelens.cli_base import (
    DebugOpt,
    FieldOpt,
    FormatOpt,
    InputFormatOpt,
    LogTimeOpt,
    NoCacheOpt,
    Paths,
    QuietOpt,
    StrictOpt,
    WideOpt,
    _analyse,
    _emit,
    _errors_to_exit_codes,
    _load,
    app,
)
from ml_tracelens.cli_help import EXAMPLES, HelpCommand

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


@app.command(cls=HelpCommand, epilog=EXAMPLES["check"])
def check(
    paths: Paths,
    budget: Annotated[
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
    ] = None,
    config: ConfigOpt = None,
    junit: JunitOpt = None,
    no_cache: NoCacheOpt = False,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """CI gate: check latency/error budgets; exit 1 when one is not met."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.config import gate_budgets, log_time_setting
        from ml_tracelens.render.junit import write_report
        from ml_tracelens.reports import check as check_report

        budgets = gate_budgets(budget, config)
        telemetry, analysis, _, context = _analyse(
            paths,
            input_format=input_format,
            strict=strict,
            fields=field,
            log_time=log_time_setting(log_time, config),
            no_cache=no_cache,
            quiet=quiet,
        )
        report = check_report.build(
            analysed=analysis.spans, budgets=budgets, logs=telemetry.logs, **context
        )
        if junit is not None:
            write_report(junit, report)
        _emit(report, fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["diff"])
def diff(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="BASELINE CURRENT",
            help="Two inputs (file, directory or glob each), or use --baseline/--current.",
        ),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option("--baseline", metavar="PATH", help="A baseline input (repeatable)."),
    ] = None,
    current: Annotated[
        list[str] | None,
        typer.Option("--current", metavar="PATH", help="A current input (repeatable)."),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            metavar="RULE",
            help="[STAGE:]METRIC OP CHANGE (repeatable), e.g. 'p95>+10%', 'error_rate>+0.5pp', "
            "'model.inference:p99>+20ms'; no stage: every stage and the requests. Exit 1 when "
            "exceeded and the 95% bootstrap interval excludes 0.",
        ),
    ] = None,
    replicates: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=100, metavar="N", help="Bootstrap replicates (resampled runs)."
        ),
    ] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, metavar="N", help="Bootstrap random seed.")
    ] = 1,
    min_change: Annotated[
        float,
        typer.Option(
            "--min-change",
            min=0,
            metavar="PCT",
            help="Smallest change (percent of the baseline) that gets a verdict.",
        ),
    ] = 5.0,
    long: Annotated[
        bool, typer.Option("--long", help="One row per stage and metric, with intervals and q.")
    ] = False,
    config: ConfigOpt = None,
    junit: JunitOpt = None,
    no_cache: NoCacheOpt = False,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compare a baseline with a current run per stage; with --fail-on, a regression gate."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.config import gate_rules, log_time_setting
        from ml_tracelens.core.bootstrap import Bootstrap
        from ml_tracelens.render.junit import write_report
        from ml_tracelens.reports import diff as diff_report
        from ml_tracelens.reports import sides

        base_paths, cur_paths = sides.sides(paths, baseline, current)
        rules = gate_rules(fail_on, config)
        log_time = log_time_setting(log_time, config)
        (_, base, _, base_context), (_, cur, _, cur_context) = (
            _analyse(
                side,
                input_format=input_format,
                strict=strict,
                fields=field,
                log_time=log_time,
                no_cache=no_cache,
                quiet=quiet,
                aggregate_by=[],
            )
            for side in (base_paths, cur_paths)
        )
        context = sides.side_context(base_context, cur_context)
        report = diff_report.build(
            baseline=base.spans,
            current=cur.spans,
            rules=rules,
            bootstrap=Bootstrap(replicates=replicates, seed=seed),
            min_change_pct=min_change,
            **context,
        )
        if junit is not None:
            write_report(junit, report)
        _emit(report if long else diff_report.by_stage(report), fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["models"])
def models(
    paths: Paths,
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            metavar="KEY",
            help="A numeric input attribute to summarise and check for drift (repeatable), "
            "e.g. input.length.",
        ),
    ] = None,
    model_field: Annotated[
        str | None,
        typer.Option(
            "--model-field",
            metavar="KEY",
            help="Model version key (default: model.version, model_version, model).",
        ),
    ] = None,
    prediction_field: Annotated[
        str | None,
        typer.Option(
            "--prediction-field",
            metavar="KEY",
            help="Prediction key (default: prediction, label, class, predicted_class).",
        ),
    ] = None,
    confidence_field: Annotated[
        str | None,
        typer.Option(
            "--confidence-field",
            metavar="KEY",
            help="Confidence key (default: confidence, score, probability).",
        ),
    ] = None,
    low_confidence: Annotated[
        float,
        typer.Option("--low-confidence", metavar="X", help="Confidence below X counts as low."),
    ] = 0.5,
    top_classes: Annotated[
        int,
        typer.Option(
            "--top-classes", metavar="N", help="Classes listed per prediction mix (rest: (others))."
        ),
    ] = 10,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="FROM,TO",
            help="Drift between these two model versions (default: each version against the "
            "previous one in version order).",
        ),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            metavar="PATH",
            help="Drift from these baseline inputs to PATHS (repeatable).",
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            metavar="DURATION",
            help="Drift between consecutive periods of this length, e.g. 10m (units ms s m h d).",
        ),
    ] = None,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Model behaviour per model version (errors, latency, predictions, confidence) and drift (PSI)."""
    with _errors_to_exit_codes(debug):
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
        current = _load(paths, input_format, strict, field, log_time)
        base = _load(baseline, input_format, strict, field, log_time) if baseline else None
        report = models_report.build(current=current, baseline=base, options=options)
        _emit(report, fmt, quiet, wide)
