"""The ``tracelens`` command: a thin layer over the library (``ml_tracelens.api``).

Each command parses its options, calls the library, renders the result and exits; the shared
options and their handling are declared once in ``cli.options``, exit codes come from
``cli.exits``. The commands are spread over this module (the reports), ``cli.request`` (show,
traces) and ``cli.gates`` (check, diff, models), imported here so that ``ml_tracelens.cli:app``
has them all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ml_tracelens.cli.engines import (
    DEFAULT_MASTER,
    Engine,
    EngineOpt,
    SparkMasterOpt,
    spark_report,
)
from ml_tracelens.cli.exits import ExitCode, prepare_process
from ml_tracelens.cli.options import (
    FILTERS,
    OUTPUT,
    READING,
    ByOpt,
    Common,
    Paths,
    TopOpt,
    app,
    command,
)
from ml_tracelens.exceptions import quoted
from ml_tracelens.render.console import (
    print_error,
    print_note,
    print_traceback,
    print_warning,
)

SortOpt = Annotated[
    str | None, typer.Option("--sort", help="Sort by a column key (default: cp_share).")
]
ErrorsTopOpt = Annotated[int, typer.Option("--top", "-n", help="How many error messages to list.")]
TailOpt = Annotated[
    float, typer.Option("--tail", help="Quantile above which requests count as the tail.")
]
ExemplarsOpt = Annotated[
    int,
    typer.Option(
        "--exemplars", help="Requests drawn as waterfalls: the slowest, the median, failures."
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Parquet file to write (the canonical spans)."),
]
DatasetOpt = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Directory of a trace-bucketed Parquet dataset to write or append to "
        "(README: Large archives).",
    ),
]
BucketsOpt = Annotated[
    int | None,
    typer.Option("--buckets", help="Trace buckets of a new dataset (default 64)."),
]
ReplaceOpt = Annotated[
    bool,
    typer.Option("--replace", help="Write the dataset again from these inputs only."),
]


@command(READING, OUTPUT)
def summary(paths: Paths, *, common: Common) -> None:
    """What was read: files and formats, spans, traces, services, time range, errors, anomalies."""
    from ml_tracelens import api

    common.emit(api.summary(common.load(paths)))


@command(FILTERS, READING, OUTPUT)
def latency(
    paths: Paths,
    by: ByOpt = "stage",
    sort: SortOpt = None,
    top: TopOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
    *,
    common: Common,
) -> None:
    """Latency per stage: count, mean, p50/p90/p95/p99, max, self time, critical-path share, errors."""
    from ml_tracelens import api

    groups = by.split(",")
    if engine is Engine.SPARK:
        result = spark_report(
            "latency", paths, common, master=spark_master, by=groups, sort=sort, top=top
        )
    else:
        filtered = any(common.filters.values())
        t = common.load(
            paths,
            by=groups,
            logs=False,
            unread=api.LATENCY_UNREAD,
            opaque=api.LATENCY_OPAQUE,
            # Beyond the memory budget, only what the report needs of each group of traces
            # is kept; filters need the spans.
            summarise=None if filtered else api.LatencySummarise(tuple(groups)),
            push_filters=True,
        )
        result = api.latency(
            t, by=groups, sort=sort, top=top, distribution=common.pictures, **common.filters
        )
    common.emit(result)


@command(FILTERS, READING, OUTPUT)
def errors(
    paths: Paths,
    top: ErrorsTopOpt = 10,
    engine: EngineOpt = Engine.LOCAL,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
    *,
    common: Common,
) -> None:
    """Errors per stage (seen and originated), request error rate, top error messages."""
    from ml_tracelens import api

    if engine is Engine.SPARK:
        common.emit(spark_report("errors", paths, common, master=spark_master, error_top=top))
        return
    t = common.load(paths, by=[], push_filters=True)
    common.emit(api.errors(t, top=top, **common.filters))


@command(FILTERS, READING, OUTPUT)
def bottlenecks(
    paths: Paths,
    tail: TailOpt = 0.95,
    top: TopOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
    *,
    common: Common,
) -> None:
    """Stages ranked by critical-path share, and what makes the slowest requests slow."""
    from ml_tracelens import api

    if engine is Engine.SPARK:
        result = spark_report("bottlenecks", paths, common, master=spark_master, tail=tail, top=top)
        common.emit(result)
        return
    t = common.load(paths, by=[], logs=False, push_filters=True)
    common.emit(api.bottlenecks(t, tail=tail, top=top, **common.filters))


@command(FILTERS, READING, ("output", "quiet", "debug"))
def report(paths: Paths, exemplars: ExemplarsOpt = 5, *, common: Common) -> None:
    """One self-contained HTML page: summary, latency histograms, errors, bottlenecks, and the
    waterfalls of a few requests (to --output, else stdout)."""
    from ml_tracelens import api

    t = common.load(paths)
    common.emit_page(api.report(t, exemplars=exemplars, **common.filters))


LlmByOpt = Annotated[
    str,
    typer.Option(
        "--by",
        "-b",
        help="Group by model, operation, provider, service, stage, attr.KEY; comma-separated.",
    ),
]


@command(FILTERS, READING, OUTPUT)
def llm(paths: Paths, by: LlmByOpt = "model", *, common: Common) -> None:
    """LLM serving per model: e2e, time to first token, time per output token, queueing, tokens."""
    from ml_tracelens import api

    t = common.load(paths, logs=False)
    common.emit(api.llm(t, by=by.split(","), **common.filters))


@command(("input_format", "strict", "field", "log_time", "derived_stages", "quiet", "debug"))
def convert(
    paths: Paths,
    output: OutputOpt = None,
    dataset: DatasetOpt = None,
    buckets: BucketsOpt = None,
    replace: ReplaceOpt = False,
    *,
    common: Common,
) -> None:
    """Write the canonical span and log tables to Parquet; reading it back gives the same reports."""
    from ml_tracelens.api.loading import write_parquet_copy
    from ml_tracelens.exceptions import UsageError

    if (output is None) == (dataset is None):
        raise UsageError("name one of --output FILE or --dataset DIR")
    if output is None:
        assert dataset is not None  # one of the two, checked above
        _convert_dataset(paths, dataset, buckets=buckets, replace=replace, common=common)
        return
    if buckets is not None or replace:
        raise UsageError("--buckets and --replace go with --dataset DIR")
    telemetry = common.read(paths)
    if not common.quiet:
        for warning in telemetry.warnings:
            print_warning(warning)
    spans = write_parquet_copy(telemetry, output)
    if not common.quiet:
        print_note(f"wrote {spans:,} spans and {telemetry.logs.height:,} log records to {output}")


def _convert_dataset(
    paths: Paths, directory: Path, *, buckets: int | None, replace: bool, common: Common
) -> None:
    from ml_tracelens import api

    written = api.convert_dataset(
        paths, directory, buckets=buckets, replace=replace, **common.reading()
    )
    if not common.quiet:
        for warning in written.warnings:
            print_warning(warning)
        print_note(
            f"wrote {written.spans:,} spans and {written.logs:,} log records to {directory} "
            f"({written.total_spans:,} spans, {written.total_logs:,} log records in "
            f"{written.buckets} buckets)"
        )


@command(("fmt", "debug"))
def formats(*, common: Common) -> None:
    """List the input formats tracelens reads and what each accepts."""
    from ml_tracelens import api
    from ml_tracelens.reports.formats import build

    common.emit(api.Result(build()))


SlowOpt = Annotated[
    str | None,
    typer.Option(
        "--slow",
        help="Select the requests slower than a percentile of their end-to-end duration (p95, "
        "p99.9) or than a duration ('>500ms').",
        metavar="pNN|>DURATION",
    ),
]
FailedOpt = Annotated[bool, typer.Option("--failed", help="Select the failed requests.")]
WhyWhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where",
        "-w",
        help="Select the requests with a span meeting this SQL condition (as in latency --where).",
    ),
]
BaselineWhereOpt = Annotated[
    str | None,
    typer.Option(
        "--baseline-where",
        help="Compare with the requests with a span meeting this condition (default: all others).",
    ),
]
WhyStageOpt = Annotated[
    str | None,
    typer.Option(
        "--stage",
        help="Analyse the spans of this stage (their duration, their errors) instead of requests.",
    ),
]
ScopeOpt = Annotated[
    str,
    typer.Option(
        "--scope",
        help="Whose attributes a request has: request (any of its spans) or root (its root span).",
        metavar="request|root",
    ),
]
MinCountOpt = Annotated[
    int,
    typer.Option("--min-count", help="Test only values held by at least this many selected units."),
]
AllOpt = Annotated[
    bool, typer.Option("--all", help="Show every test, not only those with q < 0.05.")
]


@command(READING, OUTPUT)
def why(
    paths: Paths,
    slow: SlowOpt = None,
    failed: FailedOpt = False,
    where: WhyWhereOpt = None,
    baseline_where: BaselineWhereOpt = None,
    stage: WhyStageOpt = None,
    scope: ScopeOpt = "request",
    min_count: MinCountOpt = 5,
    show_all: AllOpt = False,
    *,
    common: Common,
) -> None:
    """What sets the slow or failed requests apart: attribute values over-represented among them
    (Fisher / Mann-Whitney, Benjamini-Hochberg q), and the critical-path stage that shifts."""
    from ml_tracelens import api
    from ml_tracelens.exceptions import UsageError

    if scope not in ("request", "root"):
        raise UsageError(f"{quoted(scope)}: choose request or root", option="scope")
    # A condition may name any column.
    unread = () if where or baseline_where else api.WHY_UNREAD
    # The requests' index serves every selection of requests with every span's attributes.
    indexed = api.why_index_serves(
        stage=stage, scope=scope, where=where, baseline_where=baseline_where
    )
    t = common.load(
        paths, logs=False, unread=unread, pairs=True, derived=api.WHY_INDEX if indexed else None
    )
    result = api.why(
        t,
        slow=slow,
        failed=failed,
        where=where,
        baseline_where=baseline_where,
        stage=stage,
        scope="root" if scope == "root" else "request",
        min_count=min_count,
        show_all=show_all,
    )
    common.emit(result)


ReportArg = Annotated[
    str,
    typer.Argument(
        metavar="REPORT",
        help="summary, latency, errors, bottlenecks, check, diff, show, traces, models, llm, "
        "formats, why, compare.",
    ),
]


@command(("debug",))
def schema(report: ReportArg, *, common: Common) -> None:
    """Print the JSON Schema of a report's --format json output."""
    from ml_tracelens.cli.exits import write_stdout
    from ml_tracelens.exceptions import UsageError
    from ml_tracelens.render.json import render_schema
    from ml_tracelens.reports import documents

    if report not in documents.DOCUMENTS:
        choices = ", ".join(documents.DOCUMENTS)
        raise UsageError(f"no report {quoted(report)}: choose one of {choices}")
    write_stdout(render_schema(report))


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
    except Exception as error:
        # What --debug lets through. typer puts its own excepthook in place, which would print
        # the message as it is, control characters and all.
        print_traceback(type(error), error, error.__traceback__)
        sys.exit(1)
    sys.exit(0)
