"""JUnit XML for CI test reporters: one testcase per budget (check) or per gated row (diff).

Shape (the subset every reporter reads: GitHub/GitLab/Jenkins/Azure)::

    <testsuites name="tracelens" tests="2" failures="1" errors="0">
      <testsuite name="tracelens check" tests="2" failures="1" errors="0" skipped="0" time="0">
        <testcase classname="tracelens.check" name="model.inference:p95&lt;=120ms" time="0">
          <failure message="131.2 ms is not &lt;= 120 ms" type="budget">...</failure>
        </testcase>
        <testcase classname="tracelens.check" name="error_rate&lt;1%" time="0"/>
      </testsuite>
    </testsuites>

ElementTree escapes markup characters; characters XML 1.0 cannot carry at all (control
characters from span names in a message) are shown escaped first, as on the terminal.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from ml_tracelens.render.cells import SURROGATES, printable
from ml_tracelens.reports.result import Report

# Beyond what ``printable`` escapes, XML 1.0 has no way to write lone surrogates (undecodable
# command-line bytes arrive as them) or U+FFFE/U+FFFF.
_NOT_XML = re.compile(f"[{SURROGATES}\ufffe\uffff]")


@dataclass(frozen=True)
class Case:
    """One testcase: ``failure`` is None when it passed."""

    name: str
    failure: str | None = None
    details: str | None = None


def render(suite: str, cases: Sequence[Case], *, kind: str = "budget") -> str:
    """The XML document (with declaration) for ``cases`` in one suite named ``suite``."""
    failures = sum(case.failure is not None for case in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "tracelens", **counts})
    suite_element = ET.SubElement(
        root, "testsuite", {"name": _clean(suite), **counts, "skipped": "0", "time": "0"}
    )
    classname = _clean(suite.replace(" ", "."))
    for case in cases:
        element = ET.SubElement(
            suite_element,
            "testcase",
            {"classname": classname, "name": _clean(case.name), "time": "0"},
        )
        if case.failure is not None:
            failure = ET.SubElement(
                element, "failure", {"message": _clean(case.failure), "type": kind}
            )
            failure.text = _clean(case.details or case.failure)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def cases_of(report: Report) -> list[Case]:
    """Testcases of a check report (one per budget) or a diff report (one per compared value a
    --fail-on rule covers; every value when there are no rules)."""
    tables = [t for t in report.tables if t.in_json]
    rows = tables[0].rows if tables else []
    if report.name == "check":
        return [
            Case(str(row["budget"]), None if row["passed"] else str(row.get("note") or "not met"))
            for row in rows
        ]
    gated = [row for row in rows if row.get("_gated")] or rows
    return [
        Case(
            f"{row['stage'] if row['stage'] is not None else 'requests'} {row['metric']}",
            str(row.get("note") or "regression") if row["regression"] else None,
        )
        for row in gated
    ]


def render_report(report: Report) -> str:
    """The JUnit XML of a check or diff report."""
    kind = "budget" if report.name == "check" else "regression"
    return render(f"tracelens {report.name}", cases_of(report), kind=kind)


def _clean(text: str) -> str:
    return _NOT_XML.sub(_escape, printable(text))


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
