"""One request and the list of requests: `show` and `traces`."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_tracelens.cli.options import (
    FILTERS,
    OUTPUT,
    READING,
    Common,
    IdAttrOpt,
    Paths,
    TopOpt,
    command,
)

IdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="Trace id (any case), a unique prefix of 6+ hex digits, or a request id."
    ),
]
DepthOpt = Annotated[
    int | None,
    typer.Option(
        "--depth", min=0, metavar="N", help="Show spans at most N levels below the root (0)."
    ),
]
CollapseOpt = Annotated[
    bool, typer.Option("--collapse", help="Fold repeated sibling stages into one line each.")
]
CriticalOnlyOpt = Annotated[
    bool, typer.Option("--critical-only", help="Only spans on the critical path (and ancestors).")
]
AttrsOpt = Annotated[bool, typer.Option("--attrs", help="Show span attributes and events.")]
CompareOpt = Annotated[
    str | None,
    typer.Option(
        "--compare",
        metavar="OTHER|typical",
        help="Compare with another request (an id), or typical: the median request of the same "
        "root stage; spans aligned by stage path and occurrence.",
    ),
]
SlowestOpt = Annotated[
    int | None, typer.Option("--slowest", min=1, metavar="N", help="Only the N slowest requests.")
]
ErrorsOnlyOpt = Annotated[bool, typer.Option("--errors", help="Only requests in error.")]
TracesSortOpt = Annotated[
    str | None,
    typer.Option(
        "--sort",
        help="start (default), duration_ms, spans, errors, trace_id, correlation_id, stage, "
        "service; numbers sort largest first.",
    ),
]


@command(READING, ("fmt", "output", "quiet", "debug"))
def show(
    ident: IdArg,
    paths: Paths,
    depth: DepthOpt = None,
    collapse: CollapseOpt = False,
    critical_only: CriticalOnlyOpt = False,
    attrs: AttrsOpt = False,
    id_attr: IdAttrOpt = None,
    compare: CompareOpt = None,
    *,
    common: Common,
) -> None:
    """One request as a waterfall: its spans, timings, critical path, errors and log lines."""
    from ml_tracelens import api
    from ml_tracelens.cli.options import progress_bar

    if compare is not None:
        from ml_tracelens.exceptions import UsageError

        if depth is not None or collapse or critical_only or attrs:
            raise UsageError(
                "takes no --depth, --collapse, --critical-only or --attrs", option="compare"
            )
        # "typical" needs every request of the dump: analyse it all.
        t = common.load(paths, logs=True)
        common.emit(api.compare(t, ident, compare, id_attrs=id_attr or ()))
        return

    with progress_bar(common.quiet) as progress:
        # Given paths, the library analyses only the request shown, or reads only it from the
        # cache.
        result = api.show(
            paths,
            ident,
            depth=depth,
            collapse=collapse,
            critical_only=critical_only,
            attrs=attrs,
            id_attrs=id_attr or (),
            **common.reading(),
            cache=not common.no_cache,
            progress=progress,
        )
    common.emit(result)


@command(FILTERS, READING, OUTPUT)
def traces(
    paths: Paths,
    slowest: SlowestOpt = None,
    errors_only: ErrorsOnlyOpt = False,
    sort: TracesSortOpt = None,
    top: TopOpt = None,
    id_attr: IdAttrOpt = None,
    *,
    common: Common,
) -> None:
    """List requests (trace id, request id, root stage, start, duration, spans, errors) to `show`."""
    from ml_tracelens import api

    result = api.traces(
        common.load(paths),
        slowest=slowest,
        errors_only=errors_only,
        sort=sort,
        top=top,
        id_attrs=id_attr or (),
        **common.filters,
    )
    common.emit(result)
