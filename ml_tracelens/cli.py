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
):
    """Load, analyse every tree, and compute the filter mask: what every report starts from."""
    from ml_tracelens.core import analyze
    from ml_tracelens.query import SpanFilter, matching
    from ml_tracelens.reports.summary import inputs_of, warnings_of

    telemetry = _load(paths, input_format, strict, fields)
    if telemetry.spans.is_empty():
        from ml_tracelens.errors import InputError

        raise InputError(
            "no spans to analyse: the inputs hold only log lines without stage and duration "
            "fields (see --field, e.g. --field stage=step --field duration=took_ms)"
        )
    analysis = analyze(telemetry.spans)
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
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """What was read: files and formats, spans, traces, services, time range, errors, anomalies."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.core import analyze
        from ml_tracelens.reports import summary as summary_report

        telemetry = _load(paths, input_format, strict, field)
        report = summary_report.build(telemetry=telemetry, analysis=analyze(telemetry.spans))
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
            paths, input_format, strict, field, where, since, until, service, stage
        )
        report = latency_report.build(
            analysed=analysis.spans, mask=mask, by=by.split(","), sort=sort, top=top, **context
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
            paths, input_format, strict, field, where, since, until, service, stage
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
            paths, input_format, strict, field, where, since, until, service, stage
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


def main() -> NoReturn:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(0)
