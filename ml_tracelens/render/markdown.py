"""GitHub-flavoured markdown: fits a CI job summary ($GITHUB_STEP_SUMMARY) or a PR comment.

Everything from the data is shown, never obeyed: control characters escaped as on the terminal
(``printable``), markdown and HTML syntax backslash-escaped, and nothing GitHub turns into a
notification or a link. GitHub finds ``@user``, ``@org/team``, ``#123``, ``GH-123``, e-mail
addresses and bare ``www.``/``https://`` URLs in the *rendered* text, where a backslash escape
is already gone, so a word joiner (U+2060, invisible) goes after the ``@``, the ``#`` or the
``GH-``, inside ``://`` and after ``www``: the text reads the same and no longer matches.
"""

from __future__ import annotations

import re

from ml_tracelens.render.cells import NUMERIC_KINDS, empty_note, format_value, printable
from ml_tracelens.reports.result import Report, Table

#: Invisible, and not a word character: GitHub's patterns stop matching at it.
WORD_JOINER = "\u2060"
_REFERENCES = re.compile(r"@(?=\w)|(?:#|\bGH-)(?=\d)|(?<=:)(?=//)|(?<=\bwww)(?=\.)", re.IGNORECASE)
_MARKDOWN_SYNTAX = "\\|`*_[]<>&~"


def render(report: Report) -> str:
    parts = [f"### {_escape(report.title)}", ""]
    parts.extend(f"{_escape(line)}  " for line in report.headline)
    if report.headline:
        parts.append("")
    for table in report.text_tables:
        parts.extend(_table(table, titled=len(report.text_tables) > 1))
    if report.warnings:
        parts.append("<details><summary>Warnings</summary>\n")
        parts.extend(f"- {_escape(w)}" for w in report.warnings)
        parts.append("\n</details>")
    return "\n".join(parts).rstrip() + "\n"


def _table(table: Table, *, titled: bool) -> list[str]:
    columns = [c for c in table.columns if c.machine]
    lines = [f"**{_escape(table.title)}**", ""] if titled or not table.rows else []
    if not table.rows:
        return [*lines, _escape(empty_note(table)), ""]
    lines.append("| " + " | ".join(_escape(c.header) for c in columns) + " |")
    lines.append(
        "|" + "|".join("---:" if c.kind in NUMERIC_KINDS else "---" for c in columns) + "|"
    )
    for row in table.rows:
        # format_value has already made the text printable (a second pass would double the
        # backslashes of its escapes).
        cells = (_markdown(format_value(row.get(c.key), c.kind_in(row))) for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _escape(text: str) -> str:
    return _markdown(printable(text))


def _markdown(shown: str) -> str:
    # Pipes end a cell; backticks, brackets, and angle brackets could start markup or HTML; an
    # ampersand an entity; tildes strike through.
    for char in _MARKDOWN_SYNTAX:
        shown = shown.replace(char, "\\" + char)
    return _REFERENCES.sub(_join, shown)


def _join(match: re.Match[str]) -> str:
    return match.group() + WORD_JOINER
