"""The typer app: parse options, run load -> build -> emit, map errors to exit codes.

Nothing here computes: each command hands typed options to ingest, core and reports, and the one
error handler below turns TracelensError into a one-line message and its exit code.

The app and the shared options live in ``cli.options``; the commands are spread over this
module (the reports), ``cli.request`` (show, traces) and ``cli.gates`` (check, diff, models),
imported here so that ``ml_tracelens.cli:app`` has them all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ml_tracelens.cli.help import EXAMPLES, HelpCommand
from ml_tracelens.cli.options import (
    DebugOpt,
    FieldOpt,
    FormatOpt,
    InputFormatOpt,
    LogTimeOpt,
    NoCacheOpt,
    Paths,
    QuietOpt,
    ServiceOpt,
    SinceOpt,
    StageOpt,
    StrictOpt,
    TopOpt,
    UntilOpt,
    WhereOpt,
    WideOpt,
    _analyse,
    _emit,
    _errors_to_exit_codes,
    _load,
    _progress,
    _read_options,
    app,
    prepare_process,
)
from ml_tracelens.errors import ExitCode
from ml_tracelens.render import OutputFormat
from ml_tracelens.render.console import print_error, print_note, print_warning


@app.command(cls=HelpCommand, epilog=EXAMPLES["summary"])
def summary(
    paths: Paths,
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    fmt: FormatOpt = None,
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """What was read: files and formats, spans, traces, services, time range, errors, anomalies."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.ingest.pipeline import load_analysed
        from ml_tracelens.reports import summary as summary_report

        options = _read_options(field, strict, log_time)
        with _progress(quiet) as progress:
            telemetry, analysis = load_analysed(
                paths,
                input_format=input_format,
                options=options,
                use_cache=not no_cache,
                progress=progress,
            )
        report = summary_report.build(telemetry=telemetry, analysis=analysis)
        _emit(report, fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["latency"])
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
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Latency per stage: count, mean, p50/p90/p95/p99, max, self time, critical-path share, errors."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import latency as latency_report

        _, analysis, mask, context = _analyse(
            paths,
            input_format=input_format,
            strict=strict,
            fields=field,
            log_time=log_time,
            where=where,
            since=since,
            until=until,
            services=service,
            stages=stage,
            no_cache=no_cache,
            quiet=quiet,
            aggregate_by=by.split(","),
            logs=False,
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
        _emit(report, fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["errors"])
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
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Errors per stage (seen and originated), request error rate, top error messages."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import errors as errors_report

        telemetry, analysis, mask, context = _analyse(
            paths,
            input_format=input_format,
            strict=strict,
            fields=field,
            log_time=log_time,
            where=where,
            since=since,
            until=until,
            services=service,
            stages=stage,
            no_cache=no_cache,
            quiet=quiet,
            aggregate_by=[],
        )
        report = errors_report.build(
            analysed=analysis.spans, logs=telemetry.logs, mask=mask, top=top, **context
        )
        _emit(report, fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["bottlenecks"])
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
    wide: WideOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Stages ranked by critical-path share, and what makes the slowest requests slow."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import bottlenecks as bottlenecks_report

        _, analysis, mask, context = _analyse(
            paths,
            input_format=input_format,
            strict=strict,
            fields=field,
            log_time=log_time,
            where=where,
            since=since,
            until=until,
            services=service,
            stages=stage,
            no_cache=no_cache,
            quiet=quiet,
            aggregate_by=[],
            logs=False,
        )
        report = bottlenecks_report.build(
            analysed=analysis.spans, mask=mask, tail=tail, top=top, **context
        )
        _emit(report, fmt, quiet, wide)


@app.command(cls=HelpCommand, epilog=EXAMPLES["convert"])
def convert(
    paths: Paths,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Parquet file to write (the canonical spans).")
    ],
    input_format: InputFormatOpt = None,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write the canonical span and log tables to Parquet; reading it back gives the same reports."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.readers.parquet import write_parquet

        telemetry = _load(paths, input_format, strict, field, log_time)
        if not quiet:
            for warning in telemetry.warnings:
                print_warning(warning)
        write_parquet(telemetry.spans, telemetry.logs, output)
        if not quiet:
            print_note(
                f"wrote {telemetry.spans.height:,} spans and "
                f"{telemetry.logs.height:,} log records to {output}"
            )


@app.command(cls=HelpCommand, epilog=EXAMPLES["formats"])
def formats(fmt: FormatOpt = None, debug: DebugOpt = False) -> None:
    """List the input formats tracelens reads and what each accepts."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports.formats import build

        _emit(build(), fmt, quiet=True)


# Registered for their side effect: each defines commands on ``app``.
from ml_tracelens.cli import gates, request  # noqa: E402, F401

__all__ = ["app", "main"]


def main() -> NoReturn:
    prepare_process()
    try:
        app()
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(0)
