"""The typer app and the options commands share, declared once.

A command declares its own options and names the shared groups it takes (``READING``,
``FILTERS``, ``OUTPUT``); ``command`` adds those to its signature and hands them to it as one
``Common`` object, which loads inputs, emits results and runs the command inside the one error
handler of ``cli.exits``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, get_type_hints

import typer

from ml_tracelens.cli.exits import errors_to_exit_codes, exit_code_of, show_version
from ml_tracelens.cli.help import EXAMPLES, HelpCommand
from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.render import SUFFIX_FORMATS, OutputFormat, write_file
from ml_tracelens.render.console import print_warning

if TYPE_CHECKING:
    from ml_tracelens.api import AnalysedTelemetry, LogTime, Page, Result, SpanFilters
    from ml_tracelens.core import Derived
    from ml_tracelens.ingest.telemetry import Progress, Telemetry

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
OutputFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report to FILE instead of stdout; its suffix picks the format unless "
        "--format does (.html, .json, .csv, .md).",
        dir_okay=False,
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
DerivedStagesOpt = Annotated[
    bool,
    typer.Option(
        "--derived-stages/--no-derived-stages",
        help="Add queue/prefill/decode child spans to LLM spans that carry those times "
        "(vLLM's gen_ai.latency.* attributes); --no-derived-stages leaves the spans as read.",
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


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Where the time went and what failed, from ML inference traces and JSON logs."""


ByOpt = Annotated[
    str,
    typer.Option(
        "--by", "-b", help="Group by stage, service, kind, status, attr.KEY; comma-separated."
    ),
]
IdAttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id-attr",
        metavar="KEY",
        help="Also treat this span attribute as a request id (repeatable); built in: request.id, "
        "request_id, correlation_id, http.request_id, x-request-id.",
    ),
]

#: The shared options, by the name of their parameter: (annotation, default).
SHARED: dict[str, tuple[Any, Any]] = {
    "where": (WhereOpt, None),
    "since": (SinceOpt, None),
    "until": (UntilOpt, None),
    "service": (ServiceOpt, None),
    "stage": (StageOpt, None),
    "input_format": (InputFormatOpt, None),
    "strict": (StrictOpt, False),
    "field": (FieldOpt, None),
    "log_time": (LogTimeOpt, None),
    "derived_stages": (DerivedStagesOpt, True),
    "no_cache": (NoCacheOpt, False),
    "fmt": (FormatOpt, None),
    "output": (OutputFileOpt, None),
    "wide": (WideOpt, False),
    "quiet": (QuietOpt, False),
    "debug": (DebugOpt, False),
}
FILTERS = ("where", "since", "until", "service", "stage")
READING = ("input_format", "strict", "field", "log_time", "derived_stages", "no_cache")
OUTPUT = ("fmt", "output", "wide", "quiet", "debug")


class Reading(TypedDict):
    """The reading options, as ``api.load``, ``api.read`` and ``api.show`` take them."""

    input_format: str | None
    fields: dict[str, str]
    strict: bool
    log_time: LogTime
    derived_stages: bool


@dataclass(frozen=True)
class Common:
    """The shared options of one command line, and what every command does with them."""

    where: str | None = None
    since: str | None = None
    until: str | None = None
    service: list[str] | None = None
    stage: list[str] | None = None
    input_format: str | None = None
    strict: bool = False
    field: list[str] | None = None
    log_time: str | None = None
    derived_stages: bool = True
    no_cache: bool = False
    fmt: OutputFormat | None = None
    output: Path | None = None
    wide: bool = False
    quiet: bool = False
    debug: bool = False

    @property
    def filters(self) -> SpanFilters:
        """The span filters, as the library's report functions take them."""
        return {
            "where": self.where,
            "since": self.since,
            "until": self.until,
            "services": tuple(self.service or ()),
            "stages": tuple(self.stage or ()),
        }

    @property
    def output_format(self) -> OutputFormat:
        """``--format``, else the one the ``--output`` file's suffix names, else a table."""
        if self.fmt is not None:
            return self.fmt
        if self.output is not None:
            return SUFFIX_FORMATS.get(self.output.suffix.lower(), OutputFormat.TABLE)
        return OutputFormat.TABLE

    @property
    def terminal_table(self) -> bool:
        """Whether the output is the table people read (not a machine format)."""
        return self.output_format is OutputFormat.TABLE and self.output is None

    @property
    def pictures(self) -> bool:
        """Whether the output draws distributions (a terminal's sparklines, HTML's charts)."""
        return self.terminal_table or self.output_format is OutputFormat.HTML

    def reading(self, config: Path | None = None) -> Reading:
        """The reading options, as ``api.load`` takes them (``log_time`` from the option, else
        the config file)."""
        from ml_tracelens.gates.config import log_time_setting

        return {
            "input_format": self.input_format,
            "fields": field_map(self.field),
            "strict": self.strict,
            "log_time": log_time_setting(self.log_time, config),
            "derived_stages": self.derived_stages,
        }

    def load(
        self,
        paths: Sequence[str],
        *,
        by: Sequence[str] | None = None,
        logs: bool = True,
        config: Path | None = None,
        unread: Sequence[str] = (),
        opaque: Sequence[str] = (),
        summarise: Callable[[Any], object] | None = None,
        push_filters: bool = False,
        pairs: bool = False,
        derived: Derived | None = None,
    ) -> AnalysedTelemetry:
        """Read and analyse ``paths`` with a progress bar on a terminal. ``by``: the groupings
        of a report that only aggregates columns; unless they or ``--where`` name an
        attribute, the per-span JSON stays on disk on a warm cache. ``unread``: span columns
        the report does not read, left out too unless ``--where`` may name them; ``opaque``:
        id columns it only groups and joins by; ``summarise``: what to keep of each group of
        traces beyond the memory budget; ``push_filters``: the report reads only the traces
        holding a span the filters keep, so a dataset may leave out the others; ``pairs``:
        the spans' attribute pairs come along, ``derived`` a report's tables (see
        ``api.load``)."""
        from ml_tracelens import api

        attributes = by is None or any("attr." in key for key in [*by, self.where or ""])
        with progress_bar(self.quiet) as progress:
            return api.load(
                paths,
                **self.reading(config),
                cache=not self.no_cache,
                attributes=attributes,
                logs=logs,
                progress=progress,
                unread=() if self.where else unread,
                opaque=() if self.where else opaque,
                summarise=summarise,
                pushdown=self.filters if push_filters else None,
                pairs=pairs,
                derived=derived,
            )

    def read(self, paths: Sequence[str]) -> Telemetry:
        """Read ``paths`` without analysing them or using the cache."""
        from ml_tracelens import api

        return api.read(paths, **self.reading())

    def emit(self, result: Result) -> None:
        """Warnings to stderr, the result to stdout, and a failed gate's exit code."""
        from ml_tracelens.render import emit

        if not self.quiet:
            for warning in result.warnings:
                print_warning(warning)
        fmt = self.output_format
        if self.output is None:
            emit(result.report, fmt, stdout=sys.stdout, wide=self.wide)
        else:
            target = str(self.output)
            write_file(
                target,
                lambda handle: emit(result.report, fmt, stdout=handle, wide=True, target=target),
            )
        code = exit_code_of(result)
        if code:
            raise typer.Exit(int(code))

    def emit_page(self, page: Page) -> None:
        """Warnings to stderr, the page's HTML to ``--output`` or stdout."""
        from ml_tracelens.render import write

        if not self.quiet:
            for warning in dict.fromkeys(w for r in page.results for w in r.warnings):
                print_warning(warning)
        text = page.to_html()
        if self.output is None:
            write(text, sys.stdout)
        else:
            target = str(self.output)
            write_file(target, lambda handle: write(text, handle, target=target))


def command(
    *shared: Sequence[str], name: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command on ``app`` with its own parameters plus the ``shared`` option groups;
    the function receives those as ``common: Common`` and runs inside the error handler."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(function, include_extras=True)
        own = [
            parameter.replace(annotation=hints[parameter.name])
            for parameter in inspect.signature(function).parameters.values()
            if parameter.name != "common"
        ]
        names = [option for group in shared for option in group]
        added = [
            inspect.Parameter(
                option,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=SHARED[option][0],
                default=SHARED[option][1],
            )
            for option in names
        ]

        @functools.wraps(function)
        def run(**arguments: Any) -> None:
            common = Common(**{option: arguments.pop(option) for option in names})
            with errors_to_exit_codes(common.debug):
                function(**arguments, common=common)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        command_name = name or function.__name__
        app.command(command_name, cls=HelpCommand, epilog=EXAMPLES[command_name])(run)
        return run

    return register


def field_map(fields: Sequence[str] | None) -> dict[str, str]:
    """``--field NAME=KEY`` options -> {canonical field: key}."""
    mapping: dict[str, str] = {}
    for item in fields or ():
        name, sep, key = item.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise UsageError(f"--field {quoted(item)}: expected NAME=KEY, e.g. trace_id=req")
        mapping[name.strip()] = key.strip()
    return mapping


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr for big inputs on a terminal; nothing when quiet or piped."""
    if quiet or sys.stderr is None or not sys.stderr.isatty():
        yield None
        return
    from ml_tracelens.render.progress import InputProgress

    with InputProgress() as progress:
        yield progress
