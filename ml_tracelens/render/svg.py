"""Charts for the HTML report, drawn as inline SVG text: no script, no image, no font to load.

Every chart is a function of numbers a report already holds, so its geometry can be checked
against them: a share bar is ``share * PLOT_WIDTH`` wide, a histogram bar's height is its count
over the tallest count times ``PLOT_HEIGHT``, a waterfall bar starts at ``offset / duration`` of
the time axis. Coordinates are written with two decimals, so the same input gives the same
bytes. Text from telemetry (stage names, services) goes through ``text``: made printable as on
a terminal, then escaped for HTML, so it can only ever be character data. Colours come from the
page's style sheet (classes), which switches them for dark mode.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.render.cells import clip
from ml_tracelens.reports.latency import GroupDistribution

#: The plot area of a chart, in SVG user units (the chart scales with the page).
PLOT_WIDTH = 480.0
PLOT_HEIGHT = 120.0
#: Room left of the plot for labels (bars, waterfall), and below it for the axis.
LABEL_WIDTH = 220.0
AXIS_HEIGHT = 34.0
ROW_HEIGHT = 18.0


def text(value: object) -> str:
    """Telemetry text as inert HTML/SVG character data (also safe inside quoted attributes):
    made printable and cut as in a terminal cell (``cells.clip``), then escaped."""
    return html.escape(clip(str(value)), quote=True)


def number(value: float) -> str:
    """A coordinate: two decimals, no "-0.00"."""
    shown = f"{value:.2f}"
    return "0.00" if shown == "-0.00" else shown


def _svg(
    width: float, height: float, label: str, body: list[str], css: str, *, margin: float = 0.0
) -> str:
    box = f"{number(-margin)} 0 {number(width + 2 * margin)} {number(height)}"
    return (
        f'<svg class="chart {css}" viewBox="{box}" '
        f'role="img" aria-label="{text(label)}">' + "".join(body) + "</svg>"
    )


def histogram(distribution: GroupDistribution) -> str:
    """Bars of the span count per bin on a log duration axis, p50/p95/p99 marked."""
    found = distribution.histogram
    counts = found.counts
    peak = max(counts) or 1
    edges = found.edges_ns()
    width = PLOT_WIDTH / len(counts)
    top = 14.0
    body: list[str] = []
    for index, count in enumerate(counts):
        height = count / peak * PLOT_HEIGHT
        low, high = edges[index] / NS_PER_MS, edges[index + 1] / NS_PER_MS
        body.append(
            f'<rect class="bar" x="{number(index * width)}" y="{number(top + PLOT_HEIGHT - height)}"'
            f' width="{number(width)}" height="{number(height)}" data-count="{count}">'
            f"<title>{text(format_duration(low))} to {text(format_duration(high))}: "
            f"{count:,} spans</title></rect>"
        )
    axis_y = top + PLOT_HEIGHT
    body.append(
        f'<line class="axis" x1="0.00" y1="{number(axis_y)}" x2="{number(PLOT_WIDTH)}" '
        f'y2="{number(axis_y)}"/>'
    )
    for name, value in (
        ("p50", distribution.p50_ms),
        ("p95", distribution.p95_ms),
        ("p99", distribution.p99_ms),
    ):
        x = log_position(value, found.low_ns / NS_PER_MS, found.high_ns / NS_PER_MS)
        if x is None:
            continue
        body.append(
            f'<line class="marker {name}" x1="{number(x)}" y1="{number(top)}" x2="{number(x)}" '
            f'y2="{number(axis_y)}" data-ms="{value}"><title>{name} '
            f"{text(format_duration(value))}</title></line>"
            f'<text class="marker-label" x="{number(x)}" y="{number(top - 3)}" '
            f'text-anchor="{_anchor(x)}">{name}</text>'
        )
    for x, anchor, ns in (
        (0.0, "start", found.low_ns),
        (PLOT_WIDTH / 2, "middle", math.sqrt(found.low_ns * found.high_ns)),
        (PLOT_WIDTH, "end", found.high_ns),
    ):
        body.append(
            f'<text class="tick" x="{number(x)}" y="{number(axis_y + 14)}" '
            f'text-anchor="{anchor}">{text(format_duration(ns / NS_PER_MS))}</text>'
        )
    body.append(
        f'<text class="axis-label" x="{number(PLOT_WIDTH / 2)}" y="{number(axis_y + 30)}" '
        'text-anchor="middle">duration (log scale); bar height: spans</text>'
    )
    label = f"{distribution.label}: latency histogram"
    return _svg(PLOT_WIDTH, axis_y + AXIS_HEIGHT, label, body, "histogram", margin=6.0)


def _anchor(x: float) -> str:
    """Text anchored so a label near either end of the plot stays inside it."""
    if x < 16:
        return "start"
    return "end" if x > PLOT_WIDTH - 16 else "middle"


def log_position(value: float | None, low: float, high: float) -> float | None:
    """Where ``value`` falls on a log axis from ``low`` to ``high`` over ``PLOT_WIDTH``; None
    outside it (or without a value)."""
    if value is None or value <= 0 or low <= 0 or not low <= value <= high:
        return None
    if high == low:
        return 0.0
    return math.log(value / low) / math.log(high / low) * PLOT_WIDTH


@dataclass(frozen=True)
class Bar:
    label: str
    share: float | None  # 0..1
    note: str = ""  # shown after the bar, e.g. the percentage
    css: str = ""


def share_bars(bars: Sequence[Bar], label: str) -> str:
    """One horizontal bar per item, ``share * PLOT_WIDTH`` wide, on a 0-100% axis."""
    body: list[str] = []
    for index, bar in enumerate(bars):
        y = index * ROW_HEIGHT
        share = min(max(bar.share or 0.0, 0.0), 1.0)
        body.append(
            f'<text class="label" x="{number(LABEL_WIDTH - 6)}" y="{number(y + 13)}" '
            f'text-anchor="end">{text(_short(bar.label))}<title>{text(bar.label)}</title></text>'
            f'<rect class="bar {bar.css}" x="{number(LABEL_WIDTH)}" y="{number(y + 3)}" '
            f'width="{number(share * PLOT_WIDTH)}" height="{number(ROW_HEIGHT - 6)}" '
            f'data-share="{bar.share}"/>'
            f'<text class="value" x="{number(LABEL_WIDTH + share * PLOT_WIDTH + 4)}" '
            f'y="{number(y + 13)}">{text(bar.note)}</text>'
        )
    height = len(bars) * ROW_HEIGHT
    body.append(_share_axis(height))
    return _svg(LABEL_WIDTH + PLOT_WIDTH + 60, height + AXIS_HEIGHT, label, body, "bars")


def _share_axis(y: float) -> str:
    ticks = [
        f'<text class="tick" x="{number(LABEL_WIDTH + PLOT_WIDTH * f)}" y="{number(y + 14)}" '
        f'text-anchor="middle">{round(f * 100)}%</text>'
        for f in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    return (
        f'<line class="axis" x1="{number(LABEL_WIDTH)}" y1="{number(y)}" '
        f'x2="{number(LABEL_WIDTH + PLOT_WIDTH)}" y2="{number(y)}"/>' + "".join(ticks)
    )


def _short(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


@dataclass(frozen=True)
class Interval:
    label: str
    change: float | None  # ms
    low: float | None
    high: float | None
    css: str = ""
    note: str = ""


def intervals(items: Sequence[Interval], label: str, unit: str = "ms") -> str:
    """Per item a line from ``low`` to ``high`` and a dot at ``change``, on an axis symmetric
    around zero (drawn), so a change whose interval crosses zero reads as noise."""
    reach = max(
        (abs(v) for i in items for v in (i.change, i.low, i.high) if v is not None), default=1.0
    )
    reach = reach or 1.0
    middle = LABEL_WIDTH + PLOT_WIDTH / 2

    def x(value: float) -> float:
        return middle + value / reach * (PLOT_WIDTH / 2)

    body: list[str] = []
    for index, item in enumerate(items):
        y = index * ROW_HEIGHT + ROW_HEIGHT / 2
        body.append(
            f'<text class="label" x="{number(LABEL_WIDTH - 6)}" y="{number(y + 4)}" '
            f'text-anchor="end">{text(_short(item.label))}<title>{text(item.label)}</title></text>'
        )
        if item.low is not None and item.high is not None:
            body.append(
                f'<line class="interval {item.css}" x1="{number(x(item.low))}" y1="{number(y)}" '
                f'x2="{number(x(item.high))}" y2="{number(y)}" data-low="{item.low}" '
                f'data-high="{item.high}"/>'
            )
        if item.change is not None:
            body.append(
                f'<circle class="change {item.css}" cx="{number(x(item.change))}" '
                f'cy="{number(y)}" r="3.5" data-change="{item.change}">'
                f"<title>{text(item.note)}</title></circle>"
            )
    height = len(items) * ROW_HEIGHT
    body.append(
        f'<line class="zero" x1="{number(middle)}" y1="0.00" x2="{number(middle)}" '
        f'y2="{number(height)}"/>'
        f'<line class="axis" x1="{number(LABEL_WIDTH)}" y1="{number(height)}" '
        f'x2="{number(LABEL_WIDTH + PLOT_WIDTH)}" y2="{number(height)}"/>'
    )
    for value, anchor in ((-reach, "start"), (0.0, "middle"), (reach, "end")):
        shown = f"{value:+.3g} {unit}" if value else f"0 {unit}"
        body.append(
            f'<text class="tick" x="{number(x(value))}" y="{number(height + 14)}" '
            f'text-anchor="{anchor}">{text(shown)}</text>'
        )
    return _svg(LABEL_WIDTH + PLOT_WIDTH + 20, height + AXIS_HEIGHT, label, body, "intervals")


def span_bar(offset_ms: float | None, duration_ms: float | None, total_ms: float | None) -> str:
    """A waterfall row's bar: from ``offset / total`` to ``(offset + duration) / total`` of
    the time axis (``PLOT_WIDTH``); an untimed span has none."""
    if offset_ms is None or duration_ms is None or not total_ms or total_ms <= 0:
        return '<svg class="span-bar" viewBox="0 0 480 10" aria-hidden="true"></svg>'
    start = min(max(offset_ms / total_ms, 0.0), 1.0) * PLOT_WIDTH
    width = max(min(duration_ms / total_ms, 1.0) * PLOT_WIDTH, 1.0)
    width = min(width, PLOT_WIDTH - start) if start < PLOT_WIDTH else 1.0
    return (
        f'<svg class="span-bar" viewBox="0 0 {number(PLOT_WIDTH)} 10" aria-hidden="true">'
        f'<rect x="{number(start)}" y="1.00" width="{number(width)}" height="8.00"/></svg>'
    )
