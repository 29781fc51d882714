"""The HTML pages in a real browser (headless Chromium): they load with no console error, ask
the network for nothing but themselves, show the expected elements, and sort their tables.

A screenshot of every page is taken; a failing test keeps it under ``tests/artifacts/``. Without
Chromium (Debian's ``chromium`` package, which ``.ci/run`` installs) these tests are skipped
with that reason, never passed silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import ml_tracelens as tl
from ml_tracelens.cli import app
from tests.browser import Browser, Page, find_chromium
from tests.conftest import REPO

TRACES = str(REPO / "sample_data" / "traces.otlp.jsonl")
LOGS = str(REPO / "sample_data" / "app.log.jsonl")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = find_chromium()

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt install chromium, or set TRACELENS_CHROMIUM): "
    "the HTML pages were not checked in a browser",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    started = Browser(CHROMIUM)
    yield started
    started.close()


def write(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / f"{name}.html"
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code in (0, 1), result.stderr
    return out


def opened(browser: Browser, path: Path, request: pytest.FixtureRequest) -> Page:
    page = browser.open(path)
    shot = path.with_suffix(".png")
    page.screenshot(shot)
    request.node.user_properties.append(("screenshot", str(shot)))
    return page


@pytest.fixture(autouse=True)
def keep_screenshots_of_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)  # set by conftest's makereport hook
    failed = report is not None and report.failed
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for key, value in request.node.user_properties:
            if key == "screenshot" and Path(value).exists():
                target = ARTIFACTS / f"{request.node.name}-{Path(value).name}"
                target.write_bytes(Path(value).read_bytes())


def assert_clean(page: Page) -> None:
    assert page.console_problems() == []
    assert page.requests() == [page.url]


def test_the_latency_page_draws_one_histogram_per_stage(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = opened(browser, write(tmp_path, "latency", "latency", TRACES), request)
    assert_clean(page)
    stages = tl.load(TRACES, cache=False).spans.get_column("name").n_unique()
    assert page.evaluate("document.querySelectorAll('figure.stage-histogram svg').length") == stages
    rendered = page.evaluate(
        "Array.from(document.querySelectorAll('figure.stage-histogram svg'))"
        ".map(s => s.getBoundingClientRect().width)"
    )
    assert all(width > 100 for width in rendered)  # laid out, not collapsed


def test_a_numeric_column_sorts_when_its_header_is_clicked(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = opened(browser, write(tmp_path, "sorted", "latency", TRACES), request)
    header_index = page.evaluate(
        "Array.from(document.querySelectorAll('table.sortable')[0].tHead.rows[0].cells)"
        ".findIndex(c => c.textContent === 'p95')"
    )
    assert header_index > 0
    column = (
        "Array.from(document.querySelectorAll('table.sortable')[0].tBodies[0].rows)"
        f".map(r => parseFloat(r.cells[{header_index}].getAttribute('data-value')))"
    )
    page.evaluate(
        "document.querySelectorAll('table.sortable')[0].tHead.rows[0]"
        f".cells[{header_index}].click()"
    )
    ascending = page.evaluate(column)
    assert ascending == sorted(ascending)
    page.evaluate(
        "document.querySelectorAll('table.sortable')[0].tHead.rows[0]"
        f".cells[{header_index}].click()"
    )
    assert page.evaluate(column) == sorted(ascending, reverse=True)
    assert_clean(page)


def test_the_show_page_draws_every_span_and_expands_a_row(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = opened(browser, write(tmp_path, "show", "show", "req-3d78b2", LOGS), request)
    assert_clean(page)
    spans = tl.show(tl.load(LOGS, cache=False), "req-3d78b2").rows.height
    assert page.evaluate("document.querySelectorAll('table.waterfall tbody tr').length") == spans
    assert page.evaluate("document.querySelectorAll('tr.cp').length") > 0
    opened_before = page.evaluate("document.querySelectorAll('details[open]').length")
    page.evaluate("document.querySelector('table.waterfall summary').click()")
    assert page.evaluate("document.querySelectorAll('details[open]').length") == opened_before + 1


def test_the_diff_page_draws_the_intervals(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = opened(browser, write(tmp_path, "diff", "diff", LOGS, TRACES), request)
    assert_clean(page)
    result = tl.diff(tl.load(LOGS, cache=False), tl.load(TRACES, cache=False))
    with_interval = result.rows.filter(pl.col("ci_low").is_not_null())
    drawn = page.evaluate("document.querySelectorAll('svg.intervals line.interval').length")
    assert (
        drawn == with_interval.filter(pl.col("metric").is_in(["p50", "p95", "error_rate"])).height
    )


@pytest.mark.parametrize(
    "args",
    [
        ("errors", TRACES),
        ("bottlenecks", TRACES),
        ("traces", TRACES),
        ("check", TRACES, "--budget", "model.inference:p95<=50ms"),
        ("models", TRACES),
        ("summary", LOGS),
        ("report", TRACES),
        ("llm", str(REPO / "sample_data" / "llm.otlp.jsonl")),
        ("report", str(REPO / "sample_data" / "llm.otlp.jsonl")),
        ("why", TRACES, "--slow", "p95"),
        ("show", "req-eaf584", TRACES, "--compare", "typical"),
    ],
    ids=lambda a: a[0],
)
def test_every_page_loads_cleanly(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest, args: tuple[str, ...]
) -> None:
    page = opened(browser, write(tmp_path, args[0], *args), request)
    assert_clean(page)
    assert page.evaluate("document.querySelectorAll('section.report').length") >= 1


def test_the_checks_catch_a_page_that_loads_from_the_network(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A control: the same policy on a page with a remote image and an inline handler."""
    page_text = write(tmp_path, "latency", "latency", TRACES).read_text()
    tampered = page_text.replace(
        "</main>",
        '<img src="https://evil.example/x.png"><p onclick="x()">x</p></main>',
    )
    path = tmp_path / "tampered.html"
    path.write_text(tampered)
    page = opened(browser, path, request)
    problems = page.console_problems()
    assert any("Content Security Policy" in p for p in problems), problems
    # The browser refuses the load, and the request list still shows it was attempted.
    assert "https://evil.example/x.png" in page.requests()


def test_a_page_of_hostile_names_runs_nothing_of_theirs(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests._hostile import hostile_otlp, names
    from tests.acceptance.test_security import HTML_PAYLOADS

    dump = tmp_path / "hostile.jsonl"
    dump.write_text(hostile_otlp([*HTML_PAYLOADS, *names()]) + "\n")
    page = opened(browser, write(tmp_path, "hostile", "report", str(dump)), request)
    assert_clean(page)
    dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert dialogs == []
    text = page.evaluate("document.body.innerText")
    for payload in HTML_PAYLOADS:
        assert payload in text
    # Only the page's own script and none of the names became an element.
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.querySelectorAll('img, iframe, a, object, embed').length") == 0


def test_the_page_follows_the_browsers_dark_mode(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = opened(browser, write(tmp_path, "dark", "latency", TRACES), request)
    background = "getComputedStyle(document.documentElement).backgroundColor"
    bar = "getComputedStyle(document.querySelector('svg.chart rect.bar')).fill"
    light = (page.evaluate(background), page.evaluate(bar))
    browser.send(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        session=page.session,
    )
    dark = (page.evaluate(background), page.evaluate(bar))
    assert light[0] == "rgb(255, 255, 255)"
    assert dark[0] == "rgb(13, 17, 23)"
    assert dark[1] != light[1]
