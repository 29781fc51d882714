"""``--format html``: one self-contained page per report (or several reports on one page).

What the page promises:

- **Self-contained.** No external script, style sheet, font or image: charts are inline SVG
  (``render.svg``), the style sheet and the one small script (sorting tables) are inline, and a
  Content-Security-Policy meta tag forbids every load beyond those two, allowed by their
  SHA-256 hashes, so the page works from ``file://`` and never reaches the network.
- **Safe.** Telemetry text reaches the page only as escaped character data (``svg.text``: made
  printable as on a terminal, then HTML-escaped, quotes included); no value becomes a tag, an
  attribute name, a URL or a style. The policy forbids inline event handlers and
  ``javascript:`` URLs as well, should any slip through.
- **Deterministic.** The same report gives the same bytes: no time of the run, no random ids.
- **Bounded.** Pictures and tables of aggregates, and at most ``MAX_WATERFALL_SPANS`` rows per
  waterfall; a report of a million spans is a page of a few hundred kilobytes.
- **Readable.** Text sizes follow the browser's (rem), colours switch with
  ``prefers-color-scheme``, tables have the columns of the text format, axes carry units.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence

import orjson

from ml_tracelens import __version__
from ml_tracelens.render import svg
from ml_tracelens.render.cells import NUMERIC_KINDS, empty_note, format_value
from ml_tracelens.render.svg import text
from ml_tracelens.reports.documents import LatencyPayload
from ml_tracelens.reports.latency import LatencyView
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.reports.show import ShowView

#: Spans drawn per waterfall; the rest are counted under it.
MAX_WATERFALL_SPANS = 400
#: Stages given a histogram on one page (the table lists them all).
MAX_HISTOGRAMS = 40

STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #ffffff;
  --panel: #f6f8fa; --line: #d1d9e0; --bar: #4f7fcf; --cp: #d9822b; --error: #cf222e;
  --ok: #1a7f37; --zero: #8c959f; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --panel: #151b23;
    --line: #3d444d; --bar: #6e9fe6; --cp: #f0a04b; --error: #ff7b72; --ok: #3fb950;
    --zero: #656c76; }
}
html { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 100%;
  color: var(--fg); background: var(--bg); }
body { margin: 0; padding: 1rem; line-height: 1.45; }
main { max-width: 72rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
p.meta, .note { color: var(--muted); font-size: .875rem; }
.headline p { margin: .15rem 0; }
.warnings { background: var(--panel); border-left: 3px solid var(--cp); padding: .25rem 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .875rem; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--panel); cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.prose { max-width: 40rem; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
figure { margin: .5rem 0 1rem; }
figcaption { font-size: .875rem; color: var(--muted); }
.stage-histogram figcaption { color: var(--fg); font-weight: 600; }
.histograms { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr));
  gap: .5rem 1.5rem; }
svg.chart { width: 100%; height: auto; font-size: 12px; }
svg.chart.histogram { font-size: 13px; }
svg.chart.bars, svg.chart.intervals { max-width: 52rem; }
svg.chart text { fill: var(--fg); }
svg.chart .tick, svg.chart .axis-label, svg.chart .value { fill: var(--muted); }
svg.chart .bar { fill: var(--bar); }
svg.chart .bar.error { fill: var(--error); }
svg.chart .axis { stroke: var(--line); }
svg.chart .zero { stroke: var(--zero); stroke-dasharray: 3 3; }
svg.chart .marker { stroke: var(--fg); stroke-width: 1.2; }
svg.chart .marker.p95 { stroke: var(--cp); }
svg.chart .marker.p99 { stroke: var(--error); }
svg.chart .interval { stroke: var(--bar); stroke-width: 2; }
svg.chart .change { fill: var(--bar); }
svg.chart .interval.worse { stroke: var(--error); }
svg.chart .change.worse { fill: var(--error); }
svg.chart .interval.better { stroke: var(--ok); }
svg.chart .change.better { fill: var(--ok); }
table.waterfall td.timeline { width: 45%; min-width: 12rem; }
svg.span-bar { width: 100%; height: .7rem; display: block; }
svg.span-bar rect { fill: var(--bar); }
tr.cp svg.span-bar rect { fill: var(--cp); }
tr.error svg.span-bar rect { fill: var(--error); }
tr.error td.name summary { color: var(--error); }
td.name summary { cursor: pointer; white-space: nowrap; }
td.name .service { color: var(--muted); }
td.name dl { margin: .25rem 0 .25rem 1rem; font-size: .8rem; }
td.name dt { color: var(--muted); }
td.name dd { margin: 0 0 .2rem 1rem; overflow-wrap: anywhere; white-space: pre-wrap; }
.legend span { margin-right: 1rem; font-size: .8rem; }
.legend .cp { color: var(--cp); } .legend .error { color: var(--error); }
.legend .other { color: var(--bar); }
ul.checks { list-style: none; padding: 0; }
ul.checks li { padding: .15rem 0; }
ul.checks .pass::before { content: "\\2713  "; color: var(--ok); }
ul.checks .fail::before { content: "\\2717  "; color: var(--error); }
ul.checks .fail { color: var(--error); }
""" + "".join(
    f"td.name.d{depth} summary {{ padding-left: {depth * 0.9:.1f}rem; }}\n" for depth in range(13)
)

SCRIPT = """
document.querySelectorAll("table.sortable thead th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.classList.contains("num");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    function key(row) {
      var raw = row.cells[index].getAttribute("data-value");
      if (!numeric) { return raw === null ? "" : raw; }
      return raw === null || raw === "" ? null : parseFloat(raw);
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


POLICY = (
    f"default-src 'none'; style-src {_hash(STYLE)}; script-src {_hash(SCRIPT)}; "
    "img-src 'none'; base-uri 'none'; form-action 'none'"
)


def render(report: Report) -> str:
    """One report as a page."""
    return page([report], title=report.title)


def page(reports: Sequence[Report], *, title: str) -> str:
    """Several reports on one page, each a section, under ``title``."""
    names = ", ".join(dict.fromkeys(r.name for r in reports))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{text(title)}</title>",
        f"<style>{STYLE}</style></head>",
        "<body><main>",
        f"<header><h1>{text(title)}</h1>",
        f'<p class="meta">tracelens {text(__version__)} · {text(names)}</p></header>',
    ]
    warnings = list(dict.fromkeys(w for r in reports for w in r.warnings))
    if warnings:
        items = "".join(f"<li>{text(w)}</li>" for w in warnings)
        parts.append(f'<section class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>')
    for report in reports:
        parts.append(_section(report, titled=len(reports) > 1))
    if reports and reports[0].inputs and all(r.name != "summary" for r in reports):
        parts.append(_inputs(reports[0].inputs))
    parts.append(f"</main><script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _section(report: Report, *, titled: bool) -> str:
    parts = [f'<section class="report" data-report="{text(report.name)}">']
    if titled:
        parts.append(f"<h2>{text(report.title)}</h2>")
    if report.headline:
        lines = "".join(f"<p>{text(line)}</p>" for line in report.headline)
        parts.append(f'<div class="headline">{lines}</div>')
    parts.extend(_pictures(report))
    for table in report.text_tables:
        if isinstance(report.view, ShowView) and table.key == "spans":
            continue  # drawn as the waterfall, which has its columns
        parts.append(_table(table, titled=True))
    parts.append("</section>")
    return "\n".join(parts)


def _pictures(report: Report) -> list[str]:
    if isinstance(report.view, LatencyView):
        return _latency_pictures(report, report.view)
    if isinstance(report.view, ShowView):
        return [_waterfall(report.view)]
    primary = report.primary
    rows = primary.rows if primary is not None else []
    if report.name == "bottlenecks":
        bars = [_share_bar(row, "cp_share") for row in rows]
        return [_figure(svg.share_bars(bars, "critical-path share"), "Critical-path share")]
    if report.name == "errors":
        bars = [_share_bar(row, "error_rate", css="error") for row in rows]
        return [_figure(svg.share_bars(bars, "error rate per stage"), "Error rate per stage")]
    if report.name == "check" and primary is not None:
        return [_checks(primary)]
    if report.name == "diff":
        metric_rows = next((t.rows for t in report.tables if t.key == "rows"), [])
        return _diff_pictures(metric_rows)
    return []


def _figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{text(caption)}</figcaption></figure>"


def _share_bar(
    row: Mapping[str, JsonValue],
    key: str,
    *,
    labels: Sequence[str] = ("stage",),
    missing: str = "(requests)",
    css: str = "",
) -> svg.Bar:
    """The bar of a row's ``key`` share, labelled by its ``labels`` values (``missing`` where
    one is null)."""
    label = " · ".join(missing if row.get(k) is None else str(row.get(k)) for k in labels)
    share = row.get(key)
    value = float(share) if isinstance(share, int | float) else None
    note = format_value(value, ColumnKind.SHARE) if value is not None else "-"
    return svg.Bar(label=label, share=value, note=note, css=css)


def _latency_pictures(report: Report, view: LatencyView) -> list[str]:
    parts: list[str] = []
    primary = report.primary
    if primary is not None and primary.rows and "cp_share" in primary.rows[0]:
        payload = report.payload
        names = payload.group_by if isinstance(payload, LatencyPayload) else []
        bars = [_share_bar(row, "cp_share", labels=names, missing="(none)") for row in primary.rows]
        parts.append(_figure(svg.share_bars(bars, "critical-path share"), "Critical-path share"))
    shown = view.distributions[:MAX_HISTOGRAMS]
    figures = [
        f'<figure class="stage-histogram"><figcaption>{text(d.label)}</figcaption>'
        f"{svg.histogram(d)}</figure>"
        for d in shown
    ]
    if figures:
        parts.append('<h3>Latency distributions</h3><div class="histograms">')
        parts.extend(figures)
        parts.append("</div>")
        if len(view.distributions) > len(shown):
            rest = len(view.distributions) - len(shown)
            parts.append(f'<p class="note">{rest:,} more groups in the table below.</p>')
    return parts


def _checks(table: Table) -> str:
    """The budgets as a pass/fail list, actual against limit in the metric's unit."""
    by_key = {c.key: c for c in table.columns}
    items = []
    for row in table.rows:
        passed = bool(row.get("passed"))
        unit = by_key.get("actual", Column("actual", "actual", ColumnKind.FLOAT))
        kind = unit.kind_in(row)
        actual, limit = row.get("actual"), row.get("limit")
        shown_actual = format_value(actual, kind) if actual is not None else "no value"
        shown_limit = format_value(limit, kind) if limit is not None else "-"
        items.append(
            f'<li class="{"pass" if passed else "fail"}">{text(row.get("budget"))}: '
            f"{text(shown_actual)} (limit {text(shown_limit)})</li>"
        )
    return f'<ul class="checks">{"".join(items)}</ul>'


def _diff_pictures(rows: Sequence[Mapping[str, JsonValue]]) -> list[str]:
    parts = []
    for metric in ("p95", "p50", "error_rate"):
        chosen = [r for r in rows if r.get("metric") == metric]
        if not chosen:
            continue
        share = metric == "error_rate"
        scale = 100.0 if share else 1.0
        items = []
        for row in chosen:
            stage = row.get("stage")
            label = "(requests)" if stage is None else str(stage)
            direction = row.get("direction")
            css = ""
            if row.get("significant"):
                css = "worse" if direction in ("slower", "more errors") else "better"
            items.append(
                svg.Interval(
                    label=label,
                    change=_scaled(row.get("change"), scale),
                    low=_scaled(row.get("ci_low"), scale),
                    high=_scaled(row.get("ci_high"), scale),
                    css=css,
                    note=str(row.get("note") or direction or ""),
                )
            )
        unit = "points" if share else "ms"
        caption = (
            f"Change of {metric} per stage, current minus baseline, with its 95% bootstrap "
            f"interval ({unit}; red: significantly worse, green: significantly better)"
        )
        parts.append(_figure(svg.intervals(items, f"{metric} change", unit), caption))
    return parts


def _scaled(value: JsonValue, scale: float) -> float | None:
    return float(value) * scale if isinstance(value, int | float) else None


def _waterfall(view: ShowView) -> str:
    total = view.duration_ms
    shown = view.spans[:MAX_WATERFALL_SPANS]
    logs_of: dict[int, list[int]] = {}
    for log_index, home in enumerate(view.log_home):
        if home is not None:
            logs_of.setdefault(home, []).append(log_index)
    rows = []
    for index, span in enumerate(shown):
        classes = ["span"]
        if (span.get("cp_ms") or 0) > 0:
            classes.append("cp")
        if span.get("error"):
            classes.append("error")
        depth = min(int(span.get("depth") or 0), 12)
        details = _span_details(span, [view.logs[i] for i in logs_of.get(index, [])])
        service = span.get("service")
        rows.append(
            f'<tr class="{" ".join(classes)}" data-span-id="{text(span.get("span_id"))}">'
            f'<td class="name d{depth}"><details><summary>{text(span.get("stage"))}'
            + (f' <span class="service">{text(service)}</span>' if service is not None else "")
            + f"</summary>{details}</details></td>"
            f'<td class="timeline">'
            f"{svg.span_bar(span.get('start_offset_ms'), span.get('duration_ms'), total)}</td>"
            + "".join(
                f'<td class="num" data-value="{_data(span.get(k))}">'
                f"{text(format_value(span.get(k), ColumnKind.MS))}</td>"
                for k in ("start_offset_ms", "duration_ms", "self_ms", "cp_ms")
            )
            + "</tr>"
        )
    more = len(view.spans) - len(shown)
    note = f'<p class="note">{more:,} more spans in --format json.</p>' if more > 0 else ""
    axis = format_value(total, ColumnKind.MS) if total is not None else "-"
    return (
        f'<h3>Waterfall of {text(view.trace_id)}</h3><p class="legend">'
        '<span class="cp">■ on the critical path</span><span class="error">■ error</span>'
        '<span class="other">■ other</span>'
        "<span>click a span for its attributes and log lines</span></p>"
        '<div class="scroll"><table class="waterfall"><thead><tr><th>span</th>'
        f'<th>timeline (0 to {text(axis)})</th><th class="num">start</th>'
        '<th class="num">duration</th><th class="num">self</th><th class="num">crit path</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def _span_details(span: Mapping[str, object], logs: Sequence[Mapping[str, object]]) -> str:
    items = [("span id", span.get("span_id")), ("kind", span.get("kind"))]
    if span.get("error_message"):
        items.append(("error", span.get("error_message")))
    attributes = span.get("attributes")
    if isinstance(attributes, dict):
        items.extend((f"attr.{k}", v) for k, v in sorted(attributes.items()))
    for log in logs:
        level = log.get("level") or "log"
        offset = format_value(_ms(log.get("offset_ms")), ColumnKind.MS)
        items.append((f"{level} at {offset}", log.get("message")))
    shown = "".join(
        f"<dt>{text(k)}</dt><dd>{text(_plain(v))}</dd>" for k, v in items if v is not None
    )
    return f"<dl>{shown}</dl>"


def _ms(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _plain(value: object) -> str:
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _data(value: object) -> str:
    """A numeric cell's ``data-value``, which the sorting script reads as a number."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return repr(value) if isinstance(value, int | float) else ""


def _table(table: Table, *, titled: bool) -> str:
    heading = f"<h3>{text(table.title)}</h3>" if titled else ""
    if not table.rows:
        return f'{heading}<p class="note">{text(empty_note(table))}</p>'
    columns = table.columns
    head = "".join(
        f'<th class="{"num" if c.kind in NUMERIC_KINDS else "text"}" scope="col">'
        f"{text(c.header)}</th>"
        for c in columns
    )
    body = []
    for row in table.rows:
        cells = []
        for column in columns:
            kind = column.kind_in(row)
            value = row.get(column.key)
            shown = format_value(value, kind)
            css = "num" if kind in NUMERIC_KINDS else "prose" if kind is ColumnKind.PROSE else ""
            # format_value has made the text printable; escaping is all that is left.
            sort_value = _data(value) if css == "num" else _escaped(shown)
            cells.append(f'<td class="{css}" data-value="{sort_value}">{_escaped(shown)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'{heading}<div class="scroll"><table class="sortable" data-key="{text(table.key)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _escaped(shown: str) -> str:
    return html.escape(shown, quote=True)


def _inputs(inputs: Sequence[Mapping[str, JsonValue]]) -> str:
    rows = "".join(
        f"<tr><td>{text(i.get('path'))}</td><td>{text(i.get('format'))}</td>"
        + "".join(
            f'<td class="num" data-value="{_data(i.get(k))}">'
            f"{text(format_value(i.get(k), ColumnKind.INT))}</td>"
            for k in ("spans", "logs", "lines", "skipped")
        )
        + "</tr>"
        for i in inputs
    )
    return (
        '<section class="inputs"><h2>Inputs</h2><div class="scroll"><table class="sortable">'
        '<thead><tr><th>file</th><th>format</th><th class="num">spans</th>'
        '<th class="num">logs</th><th class="num">lines</th><th class="num">skipped</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div></section>"
    )
