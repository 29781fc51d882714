"""The typer app, the options every command shares, and the one error handler.

Nothing here computes: each command hands typed options to ingest, core and reports, and the one
error handler below turns TracelensError into a one-line message and its exit code.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ml_tracelens import __version__
from ml_tracelens.console import print_error, print_warning
from ml_tracelens.errors import ExitCode, OutputError, StdoutGone, TracelensError, UsageError
from ml_tracelens.render import OutputFormat

if TYPE_CHECKING:  # imported where used, after startup: a command pays only for what it runs
    import polars as pl

    from ml_tracelens.core import Analysis
    from ml_tracelens.readers.base import ReadOptions
    from ml_tracelens.reports.model import Report
    from ml_tracelens.reports.summary import ReportContext
    from ml_tracelens.telemetry import Progress, Telemetry

app = typer.Typer(
    name="tracelens",
    help="Where the time went and what failed, from ML inference traces and JSON logs.\n\n"
    "Exit codes: 0 success; 1 a budget or regression gate failed; 2 usage or input error; "
    "130 interrupted; 141 (SIGPIPE) the reader of stdout went away.",
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
LogTimeOpt = Annotated[
    str | None,
    typer.Option(
        "--log-time",
        help="What a stage log line's timestamp marks: end (default: the line is written when "
        "the stage finishes) or start. Config key: log_time.",
        metavar="end|start",
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
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Show every column, however wide the terminal (a narrow one hides some, named "
        "under the table).",
    ),
]


def _version(value: bool) -> None:
    if value:
        _write_stdout(f"tracelens {__version__}\n")
        raise typer.Exit()


def _write_stdout(text: str) -> None:
    """Write ``text`` to stdout, failing as a report would (one line naming stdout, or quietly
    on a closed pipe)."""
    from ml_tracelens.render import write

    try:
        write(text, sys.stdout)
    except (StdoutGone, OutputError) as exc:
        _stdout_failed(exc)


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


#: Set by ``prepare_process``: this is the tracelens command, which may end itself by a signal.
_FILTER_PROCESS = False


def prepare_process() -> None:
    """Set up the tracelens process as a Unix filter (``main`` calls it; the library does not).

    * A closed stdin, stdout or stderr (``>&-``) is pointed at /dev/null: otherwise the next file
      opened (a cache entry, the --junit file) would get its number, and whatever writes to
      "stdout" would write into that file. The report still fails: ``sys.stdout`` stays None.
    * Text the encoding of stdout or stderr cannot carry is written as backslash escapes, also
      by writers tracelens does not own (typer's usage errors, tracebacks).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    global _FILTER_PROCESS
    _FILTER_PROCESS = True


def _stdout_failed(exc: StdoutGone | OutputError) -> NoReturn:
    """A write to stdout failed: quietly when its reader went away, else one line naming it."""
    if isinstance(exc, StdoutGone):
        _end_as_a_filter_whose_reader_went_away()
    _discard_stdout()
    print_error(str(exc))
    raise typer.Exit(int(exc.exit_code)) from None


def _end_as_a_filter_whose_reader_went_away() -> NoReturn:
    """End as ``cat`` or ``grep`` do when the reader of stdout goes away (``| head -1``):
    silently, killed by SIGPIPE (141 in a shell), never with 1 (a failed gate) or 2.

    Only stdout's own broken pipe comes here: SIGPIPE cannot simply get its default action for
    the whole run, since a pipe to a worker process that died would then kill tracelens
    silently too, instead of an error saying so.
    """
    _discard_stdout()
    if _FILTER_PROCESS and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.raise_signal(signal.SIGPIPE)
    # Not the tracelens process (a test, the library), or SIGPIPE is blocked: the same status.
    raise typer.Exit(int(ExitCode.BROKEN_PIPE))


def _let_ctrl_c_interrupt_reads() -> None:
    """Importing polars installs a SIGINT handler flagged SA_RESTART (it passes the signal on to
    Python's): a read from stdin or a FIFO that Ctrl-C interrupts is restarted by the kernel, and
    Python, still waiting in it, never raises KeyboardInterrupt. Clear the flag, keep the handler:
    the read fails with EINTR, Python runs its handler, and the command ends with 130."""
    import polars  # noqa: F401  (installs its handler on import)

    if hasattr(signal, "siginterrupt") and threading.current_thread() is threading.main_thread():
        signal.siginterrupt(signal.SIGINT, True)


def _discard_stdout() -> None:
    """Point stdout's file descriptor at /dev/null after a write to it failed: Python flushes
    stdout again on exit, and the text left in its buffer would fail again ("Exception ignored",
    exit status 120)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


@contextmanager
def _errors_to_exit_codes(debug: bool) -> Iterator[None]:
    try:
        _let_ctrl_c_interrupt_reads()  # inside: a Ctrl-C during polars' import is handled too
        yield
    except (StdoutGone, OutputError) as exc:
        _stdout_failed(exc)
    except TracelensError as exc:
        if debug:
            raise
        print_error(str(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        print_error("interrupted")
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


def _read_options(
    fields: list[str] | None, strict: bool, log_time: str | None = None
) -> ReadOptions:
    """The reader options every command builds from --field, --strict and --log-time (else the
    config file's ``log_time``)."""
    from ml_tracelens.config import log_time_setting
    from ml_tracelens.readers.base import ReadOptions

    return ReadOptions(
        field_map=_field_map(fields), strict=strict, log_time=log_time_setting(log_time)
    )


def _load(
    paths: list[str],
    input_format: str | None,
    strict: bool,
    fields: list[str] | None,
    log_time: str | None = None,
) -> Telemetry:
    from ml_tracelens import ingest

    options = _read_options(fields, strict, log_time)
    return ingest.load(paths, input_format=input_format, options=options)


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr for big inputs on a terminal; nothing when quiet or piped."""
    if quiet or sys.stderr is None or not sys.stderr.isatty():
        yield None
        return
    from ml_tracelens.render.progress import InputProgress

    with InputProgress() as progress:
        yield progress


def _analyse(
    paths: list[str],
    *,
    input_format: str | None,
    strict: bool,
    fields: list[str] | None,
    log_time: str | None = None,
    where: str | None = None,
    since: str | None = None,
    until: str | None = None,
    services: list[str] | None = None,
    stages: list[str] | None = None,
    no_cache: bool = False,
    quiet: bool = False,
    aggregate_by: list[str] | None = None,
    logs: bool = True,
) -> tuple[Telemetry, Analysis, pl.Series | None, ReportContext]:
    """Load, analyse every tree, and compute the filter mask: what every report starts from.

    ``aggregate_by`` marks a report that only aggregates columns (its groupings): then a warm
    cache reads the bulky per-span JSON columns only when a grouping or --where names attr.KEY.
    """
    from ml_tracelens.pipeline import HEAVY_COLUMNS, load_analysed
    from ml_tracelens.query import SpanFilter, matching
    from ml_tracelens.reports.summary import inputs_of, warnings_of

    with _progress(quiet) as progress:
        telemetry, analysis = load_analysed(
            paths,
            input_format=input_format,
            options=_read_options(fields, strict, log_time),
            use_cache=not no_cache,
            progress=progress,
            without=HEAVY_COLUMNS if _attribute_free(aggregate_by, where) else (),
            logs=logs,
        )
    if telemetry.spans.is_empty():
        from ml_tracelens.errors import InputError
        from ml_tracelens.reports.summary import no_spans_message

        raise InputError(no_spans_message(telemetry))
    span_filter = SpanFilter(
        where=where,
        since=since,
        until=until,
        services=tuple(services or ()),
        stages=tuple(stages or ()),
    )
    mask = matching(analysis.spans, span_filter) if span_filter.active else None
    context: ReportContext = {
        "inputs": inputs_of(telemetry),
        "warnings": warnings_of(telemetry, analysis),
    }
    return telemetry, analysis, mask, context


def _attribute_free(aggregate_by: list[str] | None, where: str | None) -> bool:
    if aggregate_by is None:
        return False
    keys = [*aggregate_by, where or ""]
    return not any("attr." in key for key in keys)


def _emit(report: Report, fmt: OutputFormat | None, quiet: bool, wide: bool = False) -> None:
    from ml_tracelens.render import emit

    if not quiet:
        for warning in report.warnings:
            print_warning(warning)
    emit(report, fmt or OutputFormat.TABLE, stdout=sys.stdout, wide=wide)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
