"""Commands about single requests: `show` and `traces`."""

from __future__ import annotations

from typing import Annotated

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
    _progress,
    _read_options,
    app,
)

IdAttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id-attr",
        help="Also treat this span attribute as a request id (repeatable); built in: request.id, "
        "request_id, correlation_id, http.request_id, x-request-id.",
        metavar="KEY",
    ),
]


@app.command(cls=HelpCommand, epilog=EXAMPLES["show"])
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
    log_time: LogTimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One request as a waterfall: its spans, timings, critical path, errors and log lines."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.ingest.pipeline import load_cached_or_raw
        from ml_tracelens.reports import show as request_report
        from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS
        from ml_tracelens.reports.summary import inputs_of, warnings_of

        options = _read_options(field, strict, log_time)
        with _progress(quiet) as progress:
            telemetry, spans, logs = load_cached_or_raw(
                paths,
                input_format=input_format,
                options=options,
                use_cache=not no_cache,
                progress=progress,
            )
        report = request_report.build(
            spans=spans,
            logs=logs,
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


@app.command(cls=HelpCommand, epilog=EXAMPLES["traces"])
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
    """List requests (trace id, request id, root stage, start, duration, spans, errors) to `show`."""
    with _errors_to_exit_codes(debug):
        from ml_tracelens.reports import traces as traces_report
        from ml_tracelens.reports.request_id import DEFAULT_ID_ATTRS

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
        _emit(report, fmt, quiet, wide)
