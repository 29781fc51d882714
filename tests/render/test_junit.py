"""JUnit XML: valid, parsed back by ElementTree, one testcase per budget, failures with messages."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.render.junit import Case, render
from tests.factories import Child, Request, write_requests

runner = CliRunner()


def test_render_escapes_markup_and_control_characters() -> None:
    cases = [
        Case('a<b & "c":p95<=1ms'),
        Case("x:max<1s", failure="stage 'x\x1b[31m' is not <there> & \x00 gone\udcff"),
    ]
    root = ET.fromstring(render("tracelens check", cases).encode("utf-8"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "tracelens check"
    assert suite.get("tests") == "2"
    first, second = suite.findall("testcase")
    assert first.get("name") == 'a<b & "c":p95<=1ms'
    assert first.find("failure") is None
    failure = second.find("failure")
    assert failure is not None
    # Markup survives as text; the control characters are shown escaped, not written raw.
    assert failure.get("message") == "stage 'x\\x1b[31m' is not <there> & \\x00 gone\\udcff"
    assert failure.text == failure.get("message")
    assert failure.get("type") == "budget"


def test_check_writes_junit_even_when_failing(tmp_path: Path) -> None:
    children = [Child("model.inference", 0, 50_000_000)]
    dump = write_requests(tmp_path / "run.json", [Request(80_000_000, children=children)] * 3)
    report = tmp_path / "reports" / "tracelens.xml"
    report.parent.mkdir()
    result = runner.invoke(
        app,
        [
            "check",
            str(dump),
            "--budget",
            "model.inference:p95<=40ms",
            "--budget",
            "p99<100ms",
            "--budget",
            "missing:p50<1s",
            "--junit",
            str(report),
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = {case.get("name"): case.find("failure") for case in suite.findall("testcase")}
    assert set(cases) == {"model.inference:p95<=40ms", "p99<100ms", "missing:p50<1s"}
    assert cases["p99<100ms"] is None
    slow = cases["model.inference:p95<=40ms"]
    assert slow is not None
    assert "50 ms is not <= 40 ms" in slow.get("message", "")
    gone = cases["missing:p50<1s"]
    assert gone is not None
    assert "'missing' is not in the data" in gone.get("message", "")


def test_unwritable_junit_path_is_a_usage_error(tmp_path: Path) -> None:
    dump = write_requests(tmp_path / "run.json", [Request(1_000_000)])
    result = runner.invoke(
        app, ["check", str(dump), "--budget", "p50<1s", "--junit", str(tmp_path / "no" / "x.xml")]
    )
    assert result.exit_code == 2
    assert "--junit" in result.stderr
    assert "cannot write" in result.stderr
