"""--format html: a self-contained, deterministic page whose pictures are the report's numbers.

Geometry is checked against values computed here from the spans themselves (numpy percentiles,
polars counts), not against what the renderer computed; the browser tests
(``test_html_browser.py``) check that the pages load and behave.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import ml_tracelens as tl
from ml_tracelens.cli import app
from ml_tracelens.render import svg
from tests.conftest import REPO

TRACES = str(REPO / "sample_data" / "traces.otlp.jsonl")
LOGS = str(REPO / "sample_data" / "app.log.jsonl")
runner = CliRunner()


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, css: str | None = None) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (css is None or css in (a.get("class") or "").split())
        ]


def html_of(*args: str) -> str:
    result = runner.invoke(app, [*args, "--format", "html"])
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def test_a_page_is_the_same_bytes_on_every_run() -> None:
    assert html_of("latency", TRACES) == html_of("latency", TRACES)


def test_the_policy_allows_exactly_the_inline_style_and_script_by_their_hashes() -> None:
    page = html_of("bottlenecks", TRACES)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style
    assert script
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy

    def digest(source: str) -> str:
        return base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()

    rules = dict(rule.strip().split(" ", 1) for rule in policy.group(1).split(";"))
    assert rules["default-src"] == "'none'"
    assert rules["style-src"] == f"'sha256-{digest(style.group(1))}'"
    assert rules["script-src"] == f"'sha256-{digest(script.group(1))}'"
    # Nothing on the page refers to anything outside it.
    elements = Elements(page)
    assert not [a for _, a in elements.tags if {"src", "href", "srcset", "xlink:href"} & set(a)]
    assert "http://" not in page
    assert "https://" not in page
    assert len(elements.find("script")) == 1


def _stage_durations() -> dict[str, np.ndarray]:
    spans = tl.load(TRACES, cache=False).spans
    return {
        name: group.get_column("duration_ns").to_numpy()
        for (name,), group in spans.filter(pl.col("duration_ns") > 0).group_by("name")
    }


def test_each_stage_histogram_counts_its_spans_and_marks_its_percentiles() -> None:
    page = html_of("latency", TRACES)
    durations = _stage_durations()
    figures = re.findall(r'<figure class="stage-histogram">(.*?)</figure>', page, re.S)
    assert len(figures) == len(durations)
    for figure in figures:
        stage = Elements(figure).text[0]
        values = durations[stage]
        bars = Elements(figure).find("rect", "bar")
        counts = [int(b["data-count"] or 0) for b in bars]
        assert sum(counts) == len(values)
        # Bins of equal width on a log axis from the shortest to the longest span.
        low, high = values.min(), values.max()
        edges = low * (high / low) ** (np.arange(len(bars) + 1) / len(bars))
        expected, _ = np.histogram(values, bins=edges)
        assert counts == expected.tolist()
        peak = max(counts)
        for bar, count in zip(bars, counts, strict=True):
            assert float(bar["height"] or 0) == pytest.approx(
                count / peak * svg.PLOT_HEIGHT, abs=0.01
            )
        for marker in Elements(figure).find("line", "marker"):
            quantile = {"p50": 50, "p95": 95, "p99": 99}[(marker["class"] or "").split()[1]]
            value_ms = np.percentile(values, quantile) / 1e6
            x = math.log(value_ms * 1e6 / low) / math.log(high / low) * svg.PLOT_WIDTH
            assert float(marker["x1"] or 0) == pytest.approx(x, abs=0.01)


def test_a_share_bar_is_its_share_of_the_axis() -> None:
    page = html_of("bottlenecks", TRACES)
    spans = tl.load(TRACES, cache=False).spans
    tops = spans.filter(pl.col("span_id") == pl.col("top_id"))
    total = tops.get_column("duration_ns").clip(lower_bound=0).sum()
    cp = dict(spans.group_by("name").agg(pl.col("cp_ns").sum()).iter_rows())
    bars = Elements(page).find("rect", "bar")
    assert bars
    labels = [t for t in Elements(page).text if t in cp]
    assert len(labels) >= len(bars)
    for bar in bars:
        share = float(bar["data-share"] or 0)
        assert float(bar["width"] or 0) == pytest.approx(share * svg.PLOT_WIDTH, abs=0.01)
    shares = sorted(float(b["data-share"] or 0) for b in bars)
    assert shares == pytest.approx(sorted(v / total for v in cp.values()), abs=1e-9)


def test_a_waterfall_bar_spans_its_share_of_the_request() -> None:
    page = html_of("show", "req-3d78b2", LOGS)
    rows = re.findall(r'<tr class="span[^"]*"[^>]*>(.*?)</tr>', page, re.S)
    document = tl.show(tl.load(LOGS, cache=False), "req-3d78b2").document
    spans = document.spans  # type: ignore[attr-defined]
    assert len(rows) == len(spans)
    total = max(s.start_offset_ms + s.duration_ms for s in spans)
    for row, span in zip(rows, spans, strict=True):
        (rect,) = Elements(row).find("rect")
        assert float(rect["x"] or 0) == pytest.approx(
            span.start_offset_ms / total * svg.PLOT_WIDTH, abs=0.01
        )
        width = max(span.duration_ms / total * svg.PLOT_WIDTH, 1.0)
        assert float(rect["width"] or 0) == pytest.approx(width, abs=0.01)
    on_path = {s.span_id for s in spans if (s.cp_ms or 0) > 0}
    marked = {a["data-span-id"] for a in Elements(page).find("tr", "cp")}
    assert marked == on_path


def test_check_lists_each_budget_as_passed_or_failed_with_actual_and_limit() -> None:
    page = html_of(
        "check", TRACES, "--budget", "model.inference:p95<=50ms", "--budget", "error_rate<=10%"
    )
    items = re.findall(r'<li class="(pass|fail)">(.*?)</li>', page)
    assert [state for state, _ in items] == ["fail", "pass"]
    assert items[0][1].startswith("model.inference:p95&lt;=50ms: ")
    assert "(limit 50.0ms)" in items[0][1]
    assert "(limit 10.0%)" in items[1][1]


def test_diff_draws_each_stages_change_inside_its_interval() -> None:
    page = html_of("diff", LOGS, TRACES)
    result = tl.diff(tl.load(LOGS, cache=False), tl.load(TRACES, cache=False))
    rows = [r for r in result.rows.iter_rows(named=True) if r["metric"] == "p95"]
    first = re.search(r'<svg class="chart intervals".*?</svg>', page, re.S)
    assert first
    dots = Elements(first.group()).find("circle", "change")
    lines = Elements(first.group()).find("line", "interval")
    assert len(dots) == sum(r["change"] is not None for r in rows)
    assert len(lines) == sum(r["ci_low"] is not None for r in rows)
    for line in lines:
        assert float(line["x1"] or 0) <= float(line["x2"] or 0)


def test_every_report_command_writes_a_page(tmp_path: Path) -> None:
    commands = [
        ["latency", TRACES],
        ["errors", TRACES],
        ["bottlenecks", TRACES],
        ["show", "req-3d78b2", LOGS],
        ["traces", TRACES],
        ["check", TRACES, "--budget", "error_rate<=50%"],
        ["diff", LOGS, TRACES],
        ["models", TRACES],
        ["summary", TRACES],
        ["llm", str(REPO / "sample_data" / "llm.otlp.jsonl")],
        ["why", TRACES, "--slow", "p95"],
    ]
    for args in commands:
        out = tmp_path / f"{args[0]}.html"
        result = runner.invoke(app, [*args, "-o", str(out)])
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stdout == ""
        page = out.read_text()
        assert page.startswith("<!DOCTYPE html>")
        assert page.rstrip().endswith("</html>")
        assert f'data-report="{args[0]}"' in page


def test_the_output_suffix_picks_the_format_unless_format_does(tmp_path: Path) -> None:
    runner.invoke(app, ["latency", TRACES, "-o", str(tmp_path / "a.json")])
    assert (tmp_path / "a.json").read_text().lstrip().startswith("{")
    runner.invoke(app, ["latency", TRACES, "-o", str(tmp_path / "b.html"), "--format", "csv"])
    assert (tmp_path / "b.html").read_text().startswith("stage,")


def test_an_unwritable_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["latency", TRACES, "-o", str(tmp_path / "no" / "x.html")])
    assert result.exit_code == 2
    assert "cannot write to" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_report_page_holds_the_aggregates_and_the_exemplar_waterfalls(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", TRACES, "-o", str(out), "--exemplars", "3"])
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    sections = re.findall(r'data-report="(\w+)"', page)
    assert sections == ["latency", "bottlenecks", "errors", "show", "show", "show", "summary"]
    # The slowest request, the median one, then a failed one.
    requests = (
        tl.load(TRACES, cache=False)
        .spans.filter(pl.col("is_root"))
        .sort(["duration_ns", "trace_id"], descending=[True, False])
    )
    ids = requests.get_column("trace_id").to_list()
    shown = re.findall(r"<h3>Waterfall of ([0-9a-f]+)</h3>", page)
    assert shown[:2] == [ids[0], ids[len(ids) // 2]]
    failed = dict(
        tl.load(TRACES, cache=False)
        .spans.group_by("trace_id")
        .agg((pl.col("status") == "error").any())
        .iter_rows()
    )
    assert failed[shown[2]]


def test_a_huge_request_is_drawn_up_to_the_waterfall_limit(tmp_path: Path) -> None:
    from ml_tracelens.render.html import MAX_WATERFALL_SPANS
    from tests.factories import MS, T0, TRACE, otlp_document, otlp_span, sid

    count = MAX_WATERFALL_SPANS + 100
    spans = [otlp_span(TRACE, sid(0), None, "root", T0, T0 + count * MS)]
    spans += [
        otlp_span(TRACE, sid(i), sid(0), f"step {i}", T0 + i * MS, T0 + (i + 1) * MS)
        for i in range(1, count)
    ]
    dump = tmp_path / "big.jsonl"
    dump.write_text(json.dumps(otlp_document(spans)) + "\n")
    page = html_of("show", TRACE, str(dump))
    assert len(re.findall(r'<tr class="span', page)) == MAX_WATERFALL_SPANS
    assert f"{count - MAX_WATERFALL_SPANS:,} more spans in --format json" in page
