"""The typer app: parse options, run load -> build -> emit, map errors to exit codes.

Nothing here computes: each command hands typed options to ingest, core and reports, and the one
error handler below turns TracelensError into a one-line message and its exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ml_tracelens import __version__
from ml_tracelens.console import print_error, print_note, print_warning
from ml_tracelens.errors import ExitCode, TracelensError, UsageError
from ml_tracelens.render import OutputFormat

app = typer.Typer(
    name="tracelens",
    help="Where the time went and what failed, from ML inference traces and JSON logs.\n\n"
    "Exit codes: 0 success; 1 a budget or regression gate failed; 2 usage or input error; "
    "130 interrupted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Paths = Annotated[
    list[str],
    typer.Argument(
        help="Trace dumps or log files: files, directories, globs, .gz, or - for stdin."
    ),
]
InputFormatOpt = Annotated[
    str | None,
    typer.Option("--input-format", "-i", help="Force a reader (see `tracelens formats`)."),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on the first malformed line instead of skipping it.")
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format; default: a table on a terminal, plain text when piped.",
        case_sensitive=False,
    ),
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="Map a log field: CANONICAL=KEY, e.g. --field trace_id=req --field duration=took_ms.",
        metavar="NAME=KEY",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of unexpected errors.")]
WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where",
        "-w",
        help="SQL condition on spans: service, stage, kind, status, error, duration_ms, start, "
        "trace_id, attr.KEY. E.g. \"stage = 'model.inference' AND duration_ms > 100\".",
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Spans starting at/after an ISO time, or e.g. 10m before the dump's end."
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", help="Spans starting at/before an ISO time, or e.g. 5m before the dump's end."
    ),
]
ServiceOpt = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Only spans of this service (repeatable)."),
]
StageOpt = Annotated[
    list[str] | None, typer.Option("--stage", help="Only spans of this stage (repeatable).")
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Read the inputs even if an analysed copy is cached ($TRACELENS_CACHE_DIR).",
    ),
]
TopOpt = Annotated[int | None, typer.Option("--top", "-n", help="Show only the first N rows.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tracelens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Where the time went and what failed, from ML inference traces and JSON logs."""


@contextmanager
def _errors_to_exit_codes(debug: bool) -> Iterator[None]:
    try:
        yield
    except TracelensError as exc:
        if debug:
            raise
        print_error(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
    except BaseException as exc:
        # A Rust panic inside polars arrives as pyo3's PanicException, not an Exception.
        if debug or type(exc).__name__ != "PanicException":
            raise
        print_error(
            f"internal error: polars panicked: {exc} (rerun with --debug for the traceback)"
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None


def _field_map(fields: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in fields or ():
        name, sep, key = item.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise UsageError(f"--field {item!r}: expected NAME=KEY, e.g. trace_id=req")
        mapping[name.strip()] = key.strip()
    return mapping


def _load(paths: list[str], input_format: str | None, strict: bool, fields: list[str] | None):
    from ml_tracelens import ingest
    from ml_tracelens.readers.base import ReadOptions

    options = ReadOptions(field_map=_field_map(fields), strict=strict)
    return ingest.load(paths, input_format=input_format, options=options)


@contextmanager
def _progress(quiet: bool) -> Iterator[object | None]:
    """A progress bar on stderr for big inputs on a terminal; nothing when quiet or piped."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from ml_tracelens.render.progress import InputProgress

    with InputProgress() as progress:
        yield progress


def _analyse(
    paths: list[str],
    input_format: str | None,
    strict: bool,
    fields: list[str] | None,
    where: str | None = None,
    since: str | None = None,
    until: str | None = None,
    services: list[str] | None = None,
    stages: list[str] | None = None,
    no_cache: bool = False,
    quiet: bool = False,
):
    """Load, analyse every tree, and compute the filter mask: what every report starts from."""
    from ml_tracelens.pipeline import load_analysed
    from ml_tracelens.query import SpanFilter, matching
    from ml_tracelens.readers.base import ReadOptions
    from ml_tracelens.reports.summary import inputs_of, warnings_of

    options = ReadOptions(field_map=_field_map(fields), strict=strict)
    with _progress(quiet) as progress:
        telemetry, analysis = load_analysed(
            paths,
            input_format=input_format,
            options=options,
            use_cache=not no_cache,
            progress=progress,
        )
    if telemetry.spans.is_empty():
        from ml_tracelens.errors import InputError

        raise InputError(
            "no spans to analyse: the inputs hold only log lines without stage and duration "
            "fields (see --field, e.g. --field stage=step --field duration=took_ms)"
        )
    span_filter = SpanFilter(
        where=where,
        since=since,
        until=until,
        services=tuple(services or ()),
        stages=tuple(stages or ()),
    )
    mask = matching(analysis.spans, span_filter) if span_filter.active else None
    context = {"inputs": inputs_of(telemetry), "warnings": warnings_of(telemetry, analysis)}
    return telemetry, analysis, mask, context


def _emit(report, fmt: OutputFormat | None, quiet: bool) -> None:
    from ml_tracelens.render import emit

    if not quiet:
        for warning in report.warnings:
            print_warning(warning)
    emit(report, fmt or OutputFormat.TABLE, stdout=sys.stdout)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command()
def summary(
    paths: Paths,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """What was read: files and formats, spans, traces, services, time range, errors, anomalies."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.pipeline import load_analysed
        from ml_tracelens.readers.base import ReadOptions
        from ml_tracelens.reports import summary as summary_report

        options = ReadOptions(field_map=_field_map(field), strict=strict)
        with _progress(quiet) as progress:
            telemetry, analysis = load_analysed(
                paths,
                input_format=input_format,
                options=options,
                use_cache=not no_cache,
                progress=progress,
            )
        report = summary_report.build(telemetry=telemetry, analysis=analysis)
        _emit(report, fmt, quiet)


@app.command()
def latency(
    paths: Paths,
    by: Annotated[
        str,
        typer.Option(
            "--by", "-b", help="Group by stage, service, kind, status, attr.KEY; comma-separated."
        ),
    ] = "stage",
    sort: Annotated[
        str | None, typer.Option("--sort", help="Sort by a column key (default: cp_share).")
    ] = None,
    top: TopOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    service: ServiceOpt = None,
    stage: StageOpt = None,
    no_cache: NoCacheOpt = False,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Latency per stage: count, mean, p50/p90/p95/p99, max, self time, critical-path share, errors."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import latency as latency_report

        _, analysis, mask, context = _analyse(
            paths, input_format, strict, field, where, since, until, service, stage, no_cache, quiet
        )
        report = latency_report.build(
            analysed=analysis.spans,
            mask=mask,
            by=by.split(","),
            sort=sort,
            top=top,
            distribution=fmt in (None, OutputFormat.TABLE),
            **context,
        )
        _emit(report, fmt, quiet)


@app.command()
def errors(
    paths: Paths,
    top: Annotated[int, typer.Option("--top", "-n", help="How many error messages to list.")] = 10,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    service: ServiceOpt = None,
    stage: StageOpt = None,
    no_cache: NoCacheOpt = False,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Errors per stage (seen and originated), request error rate, top error messages."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import errors as errors_report

        telemetry, analysis, mask, context = _analyse(
            paths, input_format, strict, field, where, since, until, service, stage, no_cache, quiet
        )
        report = errors_report.build(
            analysed=analysis.spans, logs=telemetry.logs, mask=mask, top=top, **context
        )
        _emit(report, fmt, quiet)


@app.command()
def bottlenecks(
    paths: Paths,
    tail: Annotated[
        float, typer.Option("--tail", help="Quantile above which requests count as the tail.")
    ] = 0.95,
    top: TopOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    service: ServiceOpt = None,
    stage: StageOpt = None,
    no_cache: NoCacheOpt = False,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Stages ranked by critical-path share, and what makes the slowest requests slow."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import bottlenecks as bottlenecks_report

        _, analysis, mask, context = _analyse(
            paths, input_format, strict, field, where, since, until, service, stage, no_cache, quiet
        )
        report = bottlenecks_report.build(
            analysed=analysis.spans, mask=mask, tail=tail, top=top, **context
        )
        _emit(report, fmt, quiet)


@app.command()
def convert(
    paths: Paths,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Parquet file to write (the canonical spans).")
    ],
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write the canonical span and log tables to Parquet; reading it back gives the same reports."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.readers.parquet import write_parquet

        telemetry = _load(paths, input_format, strict, field)
        if not quiet:
            for warning in telemetry.warnings:
                print_warning(warning)
        write_parquet(telemetry.spans, telemetry.logs, output)
        if not quiet:
            print_note(
                f"wrote {telemetry.spans.height:,} spans and "
                f"{telemetry.logs.height:,} log records to {output}"
            )


@app.command()
def formats(fmt: FormatOpt = None, debug: DebugOpt = False) -> None:
    """List the input formats tracelens reads and what each accepts."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports.formats import build

        _emit(build(), fmt, quiet=True)


IdAttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id-attr",
        help="Also treat this span attribute as a request id (repeatable); built in: request.id, "
        "request_id, correlation_id, http.request_id, x-request-id.",
        metavar="KEY",
    ),
]


@app.command()
def show(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="Trace id (any case), a unique prefix of 6+ hex digits, or a request id.",
        ),
    ],
    paths: Paths,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth", min=0, metavar="N", help="Show spans at most N levels below the root (0)."
        ),
    ] = None,
    collapse: Annotated[
        bool,
        typer.Option("--collapse", help="Fold repeated sibling stages into one line each."),
    ] = False,
    critical_only: Annotated[
        bool,
        typer.Option("--critical-only", help="Only spans on the critical path (and ancestors)."),
    ] = False,
    attrs: Annotated[
        bool, typer.Option("--attrs", help="Show span attributes and events.")
    ] = False,
    id_attr: IdAttrOpt = None,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    no_cache: NoCacheOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One request as a waterfall: its spans, timings, critical path, errors and log lines."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.pipeline import load_cached_or_raw
        from ml_tracelens.readers.base import ReadOptions
        from ml_tracelens.reports import request as request_report
        from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS
        from ml_tracelens.reports.summary import inputs_of, warnings_of

        options = ReadOptions(field_map=_field_map(field), strict=strict)
        with _progress(quiet) as progress:
            telemetry, analysis = load_cached_or_raw(
                paths,
                input_format=input_format,
                options=options,
                use_cache=not no_cache,
                progress=progress,
            )
        report = request_report.build(
            spans=analysis.spans if analysis is not None else telemetry.spans,
            logs=telemetry.logs,
            ident=ident,
            id_attrs=(*DEFAULT_ID_ATTRS, *(id_attr or ())),
            depth=depth,
            collapse=collapse,
            critical_only=critical_only,
            attrs=attrs,
            inputs=inputs_of(telemetry),
            warnings=warnings_of(telemetry),
        )
        _emit(report, fmt, quiet)


@app.command()
def traces(
    paths: Paths,
    slowest: Annotated[
        int | None,
        typer.Option("--slowest", min=1, metavar="N", help="Only the N slowest requests."),
    ] = None,
    errors_only: Annotated[bool, typer.Option("--errors", help="Only requests in error.")] = False,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="start (default), duration_ms, spans, errors, trace_id, correlation_id, stage, "
            "service; numbers sort largest first.",
        ),
    ] = None,
    top: TopOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    service: ServiceOpt = None,
    stage: StageOpt = None,
    id_attr: IdAttrOpt = None,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List requests (trace id, request id, root stage, start, duration, spans, errors) to `show`."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import traces as traces_report
        from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS

        telemetry, analysis, mask, context = _analyse(
            paths, input_format, strict, field, where, since, until, service, stage
        )
        report = traces_report.build(
            analysed=analysis.spans,
            logs=telemetry.logs,
            mask=mask,
            slowest=slowest,
            errors_only=errors_only,
            sort=sort,
            top=top,
            id_attrs=(*DEFAULT_ID_ATTRS, *(id_attr or ())),
            **context,
        )
        _emit(report, fmt, quiet)


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


@app.command()
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
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """CI gate: check latency/error budgets; exit 1 when one is not met."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.config import gate_budgets
        from ml_tracelens.render.junit import write_report
        from ml_tracelens.reports import check as check_report

        budgets, config_warnings = gate_budgets(budget, config)
        telemetry, analysis, _, context = _analyse(paths, input_format, strict, field)
        context["warnings"] = [*config_warnings, *context["warnings"]]
        report = check_report.build(
            analysed=analysis.spans, budgets=budgets, logs=telemetry.logs, **context
        )
        if junit is not None:
            write_report(junit, report)
        _emit(report, fmt, quiet)


@app.command()
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
    config: ConfigOpt = None,
    junit: JunitOpt = None,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compare a baseline with a current run per stage; with --fail-on, a regression gate."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.config import gate_rules
        from ml_tracelens.render.junit import write_report
        from ml_tracelens.reports import diff as diff_report

        base_paths, cur_paths = diff_report.sides(paths, baseline, current)
        rules, config_warnings = gate_rules(fail_on, config)
        _, base, _, base_context = _analyse(base_paths, input_format, strict, field)
        _, cur, _, cur_context = _analyse(cur_paths, input_format, strict, field)
        context = diff_report.side_context(base_context, cur_context)
        context["warnings"] = [*config_warnings, *context["warnings"]]
        report = diff_report.build(
            baseline=base.spans,
            current=cur.spans,
            rules=rules,
            bootstrap=diff_report.Bootstrap(replicates=replicates, seed=seed),
            **context,
        )
        if junit is not None:
            write_report(junit, report)
        _emit(report, fmt, quiet)


@app.command()
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
    field: FieldOpt = None,
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
        current = _load(paths, input_format, strict, field)
        base = _load(baseline, input_format, strict, field) if baseline else None
        report = models_report.build(current=current, baseline=base, options=options)
        _emit(report, fmt, quiet)


def main() -> NoReturn:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(0)
