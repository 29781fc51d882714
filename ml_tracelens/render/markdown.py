"""GitHub-flavoured markdown: fits a CI job summary ($GITHUB_STEP_SUMMARY) or a PR comment."""

from __future__ import annotations

from ml_tracelens.render.cells import format_value, printable
from ml_tracelens.reports.model import Report, Table


def render(report: Report) -> str:
    parts = [f"### {_escape(report.title)}", ""]
    parts.extend(f"{_escape(line)}  " for line in report.headline)
    if report.headline:
        parts.append("")
    for table in report.tables:
        parts.extend(_table(table, titled=len(report.tables) > 1))
    if report.warnings:
        parts.append("<details><summary>Warnings</summary>\n")
        parts.extend(f"- {_escape(w)}" for w in report.warnings)
        parts.append("\n</details>")
    return "\n".join(parts).rstrip() + "\n"


def _table(table: Table, *, titled: bool) -> list[str]:
    columns = [c for c in table.columns if c.machine]
    lines = [f"**{_escape(table.title)}**", ""] if titled else []
    if not table.rows:
        return [*lines, "_none_", ""]
    lines.append("| " + " | ".join(_escape(c.header) for c in columns) + " |")
    lines.append("|" + "|".join("---" if c.kind == "text" else "---:" for c in columns) + "|")
    for row in table.rows:
        cells = (_escape(format_value(row.get(c.key), c.kind)) for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _escape(text: str) -> str:
    # Pipes end a cell; backticks, brackets, and angle brackets could start markup or HTML; an
    # ampersand an entity; tildes strike through. Control characters (terminal escapes, bidi
    # overrides, line breaks that would end a table row) are shown escaped, as on a terminal.
    text = printable(text)
    for char in "\\|`*_[]<>&~":
        text = text.replace(char, "\\" + char)
    return text
