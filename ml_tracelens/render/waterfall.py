"""The terminal waterfall of `tracelens show`: one request's span tree on a common time axis.

One line per span, indented under its parent (siblings by start time)::

    service   stage                 start  duration  |   ████████          |   self  crit  flags

The bar places the span on an axis from the trace's earliest start to its latest end, scaled to
the console width; critical-path spans are drawn with full blocks and carry their critical-path
time, the others with light shade. Errors are marked with their message; orphans, clock-skewed
spans and spans wholly outside their parent are flagged. The request's log lines sit under the
span they belong to, interleaved by time with its children. ``--attrs`` adds attributes and span
events under each span; ``--collapse`` folds repeated sibling stages (same service and stage)
into one line "stage ×N" with their total, mean and max duration.

The walk is iterative (an explicit stack), so a 10,000-deep chain draws without recursion; deep
indentation is capped and the depth printed instead. Every piece of telemetry text goes through
``clip`` (``printable``, cut at ``MAX_CELL_CHARS``: rich measures a 10 MB message for seconds) into
``rich.text.Text`` (never markup).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from ml_tracelens.durations import NS_PER_MS, format_duration
from ml_tracelens.render.cells import clip, printable, shorten_middle
from ml_tracelens.reports.result import Report
from ml_tracelens.reports.show import ShowView

#: Indentation levels drawn as spaces; deeper spans show their depth as a number.
MAX_INDENT = 12
_SERVICE_WIDTH = 20
_STAGE_WIDTH = 44
#: Wide enough for any duration (``-2.51ms``, ``59m59s``, ``25h00m``) and the header "duration".
_NUMBER_WIDTH = 8
_BAR_MIN, _BAR_MAX = 10, 60
#: What a narrow console shortens names to (in the middle, with "…") before it drops numbers.
_SERVICE_MIN, _STAGE_MIN = 8, 14
#: Room left for flags and error messages when sizing the bar.
_TAIL_ROOM = 28
_ON_PATH, _OFF_PATH = "█", "░"

# Stack entries: (kind, payload, depth); kind "span" (index), "group" (indices), "log" (index),
# "more" (hidden count).
_Entry = tuple[str, Any, int]


def render_show(report: Report, console: Console) -> RenderableType:
    view = report.view
    if not isinstance(view, ShowView):
        raise TypeError(f"the {report.name} report has no waterfall view")
    layout = _Layout(view, console.width)
    lines: list[Text] = [Text(printable(report.title), style="bold")]
    # Headlines wrap: they hold the request's numbers and times.
    lines.extend(Text(clip(line)) for line in view.headline)
    lines.append(Text(""))
    lines.append(layout.header())
    for kind, payload, depth in _walk(view):
        if kind == "span":
            lines.append(layout.span_line(view.spans[payload], depth))
            if view.attrs:
                lines.extend(layout.detail_lines(view.spans[payload], depth, view.origin_ns))
        elif kind == "group":
            lines.append(layout.group_line([view.spans[i] for i in payload], depth))
        elif kind == "log":
            lines.append(layout.log_line(view.logs[payload], depth))
        else:
            lines.append(
                layout.note_line(
                    f"… {payload:,} span{'' if payload == 1 else 's'} below (--depth)", depth
                )
            )
    if not view.spans:
        lines.append(Text("(no spans to show)"))
    return Group(*lines)


def _walk(view: ShowView) -> Iterable[_Entry]:
    """Tree order with each span's logs and children merged by time; collapsed groups folded."""
    n = len(view.spans)
    index = {row["span_id"]: i for i, row in enumerate(view.spans)}
    children: list[list[int]] = [[] for _ in range(n)]
    tops: list[int] = []
    for i, row in enumerate(view.spans):  # rows come in tree order: siblings already sorted
        parent = index.get(row["parent_id"]) if row["parent_id"] is not None else None
        (tops if parent is None or parent == i else children[parent]).append(i)
    logs_of: dict[int | None, list[int]] = {}
    for li, home in enumerate(view.log_home):
        logs_of.setdefault(home, []).append(li)

    stack: list[_Entry] = []
    stack.extend(reversed(_merge(view, tops, logs_of.get(None, []), 0)))
    while stack:
        entry = stack.pop()
        yield entry
        kind, payload, depth = entry
        if kind == "span":
            below: list[_Entry] = []
            hidden = view.hidden_below.get(payload)
            if hidden:
                below.append(("more", hidden, depth + 1))
            below.extend(_merge(view, children[payload], logs_of.get(payload, []), depth + 1))
            stack.extend(reversed(below))
        elif kind == "group":
            # Logs of every span folded into the group show under the group line.
            folded = _subtree(payload, children)
            logs = sorted(
                (li for i in folded for li in logs_of.get(i, ())),
                key=lambda li: _log_key(view, li),
            )
            stack.extend(reversed([("log", li, depth + 1) for li in logs]))


def _merge(view: ShowView, spans: list[int], logs: list[int], depth: int) -> list[_Entry]:
    """Child spans (or collapsed groups of them) and log lines, in time order."""
    items: list[tuple[tuple[bool, float, int], _Entry]] = []
    if view.collapse:
        groups: dict[tuple[Any, Any], list[int]] = {}
        for i in spans:
            row = view.spans[i]
            groups.setdefault((row["service"], row["stage"]), []).append(i)
        for members in groups.values():
            first = members[0]
            entry: _Entry = (
                ("group", members, depth) if len(members) > 1 else ("span", first, depth)
            )
            items.append((_span_key(view, first), entry))
    else:
        items.extend((_span_key(view, i), ("span", i, depth)) for i in spans)
    items.extend((_log_key(view, li), ("log", li, depth)) for li in logs)
    items.sort(key=lambda item: item[0])
    return [entry for _, entry in items]


def _span_key(view: ShowView, i: int) -> tuple[bool, float, int]:
    offset = view.spans[i]["start_offset_ms"]
    return (offset is None, offset if offset is not None else 0.0, 0)


def _log_key(view: ShowView, li: int) -> tuple[bool, float, int]:
    offset = view.logs[li]["offset_ms"]
    return (offset is None, offset if offset is not None else 0.0, 1)


def _subtree(members: list[int], children: list[list[int]]) -> list[int]:
    out: list[int] = []
    stack = list(members)
    while stack:
        i = stack.pop()
        out.append(i)
        stack.extend(children[i])
    return out


class _Layout:
    """Column widths for one view on one console, and the line builders."""

    def __init__(self, view: ShowView, width: int) -> None:
        self.axis = view.duration_ms
        spans = view.spans
        self.service_width = min(
            _SERVICE_WIDTH, max([len(clip(r["service"] or "")) for r in spans] + [7])
        )
        # Collapsed groups append " ×N" to the stage.
        suffix = len(f" ×{len(spans):,}") if view.collapse else 0
        self.stage_width = min(
            _STAGE_WIDTH,
            max([len(clip(r["stage"] or "")) + _indent_len(r["depth"]) for r in spans] + [5])
            + suffix,
        )
        self.width = width
        # Self and critical time, right of the bar; a narrow console drops them (critical
        # first) rather than cut a number.
        self.numbers_after = 2
        while self._fixed() + _BAR_MIN > width:
            service_slack = self.service_width - _SERVICE_MIN
            stage_slack = self.stage_width - _STAGE_MIN
            if max(service_slack, stage_slack) > 0:
                if service_slack > stage_slack:
                    self.service_width -= 1
                else:
                    self.stage_width -= 1
            elif self.numbers_after:
                self.numbers_after -= 1
            else:
                break  # a console under ~50 columns: the terminal folds what is left
        self.bar_width = max(_BAR_MIN, min(_BAR_MAX, width - self._fixed() - _TAIL_ROOM))

    def _fixed(self) -> int:
        """Cells taken by everything but the bar and the flags."""
        numbers = (2 + self.numbers_after) * (_NUMBER_WIDTH + 1)
        return self.service_width + 1 + self.stage_width + 1 + numbers + 3

    def _after_bar(self, text: Text, cells: list[tuple[str, str]]) -> None:
        for value, style in cells[: self.numbers_after]:
            text.append(_num(value), style)

    def header(self) -> Text:
        text = Text(style="bold")
        text.append(_cell("service", self.service_width) + " ")
        text.append(_cell("stage", self.stage_width) + " ")
        text.append(_num("start") + _num("duration"))
        axis = f"0 .. {_axis_text(self.axis)}"
        if len(axis) > self.bar_width:
            axis = axis.replace(" .. ", "..")
        text.append("|" + _cell(axis, self.bar_width) + "| ")
        self._after_bar(text, [("self", ""), ("critical", "")])
        if text.cell_len + len(" flags") <= self.width:
            text.append(" flags")
        return _line(text)

    def span_line(self, row: dict[str, Any], depth: int) -> Text:
        critical = (row["cp_ms"] or 0) > 0
        text = Text()
        text.append(_name(row["service"] or "?", self.service_width) + " ", "cyan")
        label = _stage_label(row["stage"] or "?", depth, "", self.stage_width)
        text.append(label + " ", "bold" if critical else "")
        text.append(_num(_ms(row["start_offset_ms"])) + _num(_ms(row["duration_ms"])))
        bar_style = "red" if row["error"] else ("magenta" if critical else "dim")
        text.append("|")
        text.append(
            self._bar(row["start_offset_ms"], row["duration_ms"], critical), style=bar_style
        )
        text.append("| ")
        self._after_bar(
            text, [(_ms(row["self_ms"]), ""), (_ms(row["cp_ms"]) if critical else "", "magenta")]
        )
        self._flags(text, row)
        return _line(text)

    def group_line(self, rows: list[dict[str, Any]], depth: int) -> Text:
        durations = [r["duration_ms"] for r in rows if r["duration_ms"] is not None]
        starts = [r["start_offset_ms"] for r in rows if r["start_offset_ms"] is not None]
        ends = [
            r["start_offset_ms"] + r["duration_ms"]
            for r in rows
            if r["start_offset_ms"] is not None and r["duration_ms"] is not None
        ]
        cp = sum(r["cp_ms"] or 0 for r in rows)
        self_ms = sum(r["self_ms"] or 0 for r in rows)
        errors = sum(1 for r in rows if r["error"])
        first = rows[0]
        text = Text()
        text.append(_name(first["service"] or "?", self.service_width) + " ", "cyan")
        label = _stage_label(first["stage"] or "?", depth, f" ×{len(rows):,}", self.stage_width)
        text.append(label + " ", "bold" if cp > 0 else "")
        span_ms = (max(ends) - min(starts)) if starts and ends else None
        text.append(_num(_ms(min(starts) if starts else None)) + _num(_ms(span_ms)))
        text.append("|")
        text.append(
            self._bar(min(starts) if starts else None, span_ms, cp > 0),
            style="red" if errors else "magenta" if cp > 0 else "dim",
        )
        text.append("| ")
        self._after_bar(text, [(_ms(self_ms), ""), (_ms(cp) if cp > 0 else "", "")])
        if durations:
            total = sum(durations)
            summary = (
                f" total {format_duration(total)}, mean {format_duration(total / len(durations))}, "
                f"max {format_duration(max(durations))}"
            )
            # All of it or none: the line's end is cut on a narrow console, never a number.
            if text.cell_len + len(summary) <= self.width:
                text.append(summary)
        if errors:
            text.append(f"  ✗ {errors:,} errors", "bold red")
        return _line(text)

    def log_line(self, row: dict[str, Any], depth: int) -> Text:
        level = (row["level"] or "log").lower()
        style = "red" if level in ("error", "fatal") else "yellow" if level == "warn" else "dim"
        text = Text(" " * (self.service_width + 1))
        text.append(_indent(depth) + "» ", "dim")
        text.append(f"+{_ms(row['offset_ms'])} ", "dim")
        text.append(clip(level.upper()) + " ", style)
        text.append(clip(row["message"] or ""))
        return _line(text)

    def note_line(self, note: str, depth: int) -> Text:
        return _line(Text(" " * (self.service_width + 1) + _indent(depth) + note, style="dim"))

    def detail_lines(
        self, row: dict[str, Any], depth: int, origin_ns: int | None
    ) -> Iterable[Text]:
        pad = " " * (self.service_width + 1) + _indent(depth + 1)
        attributes = row["attributes"] if isinstance(row["attributes"], dict) else {}
        for key in sorted(attributes):
            text = Text(pad + clip(str(key)) + " = ", "dim")
            text.append(clip(_value(attributes[key])))
            yield _line(text)
        for event in row["events"] if isinstance(row["events"], list) else ():
            if not isinstance(event, dict):
                continue
            time_ns = event.get("time_ns")
            when = (
                f"+{_ms(float(time_ns - origin_ns) / NS_PER_MS)}"
                if isinstance(time_ns, int) and origin_ns is not None
                else "?"
            )
            text = Text(pad + "◇ ", "dim")
            text.append(clip(str(event.get("name") or "event")) + f" {when}")
            if event.get("attributes"):
                text.append(" " + clip(_value(event["attributes"])), "dim")
            yield _line(text)

    def _bar(self, offset: float | None, duration: float | None, critical: bool) -> str:
        width = self.bar_width
        if offset is None or duration is None:
            return _cell("?", width)
        if not self.axis or self.axis <= 0:
            return (_ON_PATH if critical else _OFF_PATH) + " " * (width - 1)
        start = min(width - 1, max(0, math.floor(offset / self.axis * width)))
        end = min(width, max(start + 1, math.ceil((offset + duration) / self.axis * width)))
        char = _ON_PATH if critical else _OFF_PATH
        return " " * start + char * (end - start) + " " * (width - end)

    @staticmethod
    def _flags(text: Text, row: dict[str, Any]) -> None:
        for flag, name in (("orphan", "orphan"), ("skewed", "skew"), ("outside_parent", "outside")):
            if row.get(flag):
                text.append(f" [{name}]", "yellow")
        attributes = row.get("attributes")
        # A stage tracelens laid out from an LLM span's attributes (core/llm.py), not read.
        if isinstance(attributes, dict) and attributes.get("tracelens.derived") == "llm":
            text.append(" [derived]", "cyan")
        if row["error"]:
            message = row["error_message"]
            text.append(" ✗ " + (clip(message) if message else "error"), "bold red")


def _line(text: Text) -> Text:
    text.rstrip()  # an empty flags column leaves spaces a pipe would carry
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _indent(depth: int) -> str:
    if depth <= MAX_INDENT:
        return "  " * depth
    return "  " * (MAX_INDENT - 2) + f"[{depth}] "


def _indent_len(depth: int) -> int:
    return len(_indent(depth))


def _name(raw: str, width: int) -> str:
    """A name padded to ``width``, or shortened in the middle to it."""
    return shorten_middle(raw, width).ljust(width)


def _stage_label(raw: str, depth: int, suffix: str, width: int) -> str:
    """The indented stage (and a " ×N" suffix, kept whole) in ``width`` cells."""
    indent = _indent(depth)
    room = max(1, width - len(indent) - len(suffix))
    return (indent + shorten_middle(raw, room) + suffix).ljust(width)


def _cell(value: str, width: int) -> str:
    return value[: width - 1] + "…" if len(value) > width else value.ljust(width)


def _num(value: str) -> str:
    return value.rjust(_NUMBER_WIDTH) + " "


def _ms(value: float | None) -> str:
    return format_duration(value)


def _axis_text(axis: float | None) -> str:
    return "?" if axis is None else format_duration(axis)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    import orjson

    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)
