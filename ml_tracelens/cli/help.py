"""How every command's --help reads: ``Usage: tracelens show [OPTIONS] ID PATHS...`` (typer
would write ``{ID} {paths}...``), and two or three real examples at the end (a test runs every
example that names only files of ``sample_data/`` and no pipe).
"""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperCommand


class HelpCommand(TyperCommand):
    """A command whose arguments read as upper-case names in its usage and argument list."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is None and param.name:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")

    # The base class takes click's Context, which typer has no public name for (it vendors
    # click privately since 0.2x); only passed on, so typer's subclass of it names it here.
    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        # typer wraps required arguments in braces; usage lines elsewhere do not.
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


def _examples(*commands: str) -> str:
    # "\b" keeps click from re-wrapping the lines into one paragraph.
    return "Examples:\n\n\b\n" + "\n".join(f"  {c}" for c in commands)


EXAMPLES: dict[str, str] = {
    "summary": _examples(
        "tracelens summary sample_data/traces.otlp.jsonl",
        "tracelens summary dumps/ --format json | jq .skipped_lines",
        "tracelens summary app.log.jsonl   # how many log lines became spans, and why not",
    ),
    "latency": _examples(
        "tracelens latency sample_data/traces.otlp.jsonl",
        "tracelens latency app.log.jsonl --by service --format json | jq '.rows[0]'",
        "tracelens latency dump.jsonl --where \"attr.model.version = 'v2'\" --since 10m",
    ),
    "errors": _examples(
        "tracelens errors sample_data/traces.otlp.jsonl",
        'tracelens errors app.log.jsonl --format markdown >> "$GITHUB_STEP_SUMMARY"',
    ),
    "bottlenecks": _examples(
        "tracelens bottlenecks sample_data/traces.otlp.jsonl",
        "tracelens bottlenecks dump.jsonl --tail 0.99 --format json | jq .verdict",
        "tracelens bottlenecks archive/ --engine spark --spark-master spark://head:7077",
    ),
    "report": _examples(
        "tracelens report dump.jsonl -o report.html   # one page to upload as a CI artifact",
        "tracelens report sample_data/traces.otlp.jsonl --exemplars 2",
    ),
    "check": _examples(
        "tracelens check dump.jsonl --budget 'model.inference:p95<=120ms' --budget 'error_rate<1%'",
        "tracelens check dump.jsonl --junit budgets.xml   # budgets from tracelens.toml",
    ),
    "diff": _examples(
        "tracelens diff baseline.jsonl current.jsonl",
        "tracelens diff --baseline main/ --current pr/ --fail-on 'p95>+10%'",
    ),
    "show": _examples(
        "tracelens show 146c07 sample_data/traces.otlp.jsonl",
        "tracelens show req-3d78b2 sample_data/app.log.jsonl --critical-only",
        "tracelens show req-3d78b2 sample_data/traces.otlp.jsonl --compare typical",
    ),
    "traces": _examples(
        "tracelens traces sample_data/traces.otlp.jsonl --slowest 5",
        "tracelens traces dump.jsonl --errors --format csv",
    ),
    "llm": _examples(
        "tracelens llm sample_data/llm.otlp.jsonl",
        "tracelens llm sample_data/llm.otlp.jsonl --by operation,provider --format markdown",
        "tracelens llm sample_data/llm.log.jsonl --service chat-app",
    ),
    "models": _examples(
        "tracelens models sample_data/traces.otlp.jsonl",
        "tracelens models current.jsonl --baseline last-week.jsonl --format json",
    ),
    "why": _examples(
        "tracelens why sample_data/traces.otlp.jsonl --slow p95",
        "tracelens why sample_data/traces.otlp.jsonl --failed --all",
        "tracelens why dump.jsonl --slow '>500ms' --stage model.inference --format json",
    ),
    "schema": _examples(
        "tracelens schema latency",
        "tracelens schema check > check.schema.json",
    ),
    "convert": _examples(
        "tracelens convert dumps/ -o dump.parquet",
        "tracelens latency dump.parquet",
    ),
    "formats": _examples(
        "tracelens formats",
        "tracelens formats --format json | jq '.rows[].name'",
    ),
}
