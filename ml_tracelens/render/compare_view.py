"""The terminal waterfall of ``show --compare``: both requests on one time axis, span by span.

Each span of the combined tree takes two lines, A's then B's: its duration, self time and
critical-path time, and a bar from its start to its end on the axis both requests share, so a
stage that starts later or runs longer in B shows at a glance. B's line ends with the change
(B − A) and the attribute keys whose values differ. A span one request lacks has a line for
the other only, marked ``only in A``/``only in B``. Lines never wrap; a narrow console shortens
names and then the bar, as the ``show`` waterfall does.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.text import Text

from ml_tracelens.durations import format_duration
from ml_tracelens.render.cells import clip, printable, shorten_middle
from ml_tracelens.reports.compare import ComparedSpan, CompareView, KeyedSpan
from ml_tracelens.reports.result import Report

_NAME_MAX = 44
_NAME_MIN = 16
_NUMBER = 9  # "12.3ms" and friends, right-aligned, and a space
_BAR_MIN = 10
_BAR_MAX = 60
_TAIL = 24  # room right of the bar for the change and the differing attributes
_INDENT = 2
_MAX_INDENT = 12


def render_compare(report: Report, console: Console) -> RenderableType:
    view = report.view
    if not isinstance(view, CompareView):
        raise TypeError(f"the {report.name} report has no compare view")
    name_width = min(
        _NAME_MAX,
        max([_indent(c.depth) + len(clip(c.label)) + len(" (only in A)") for c in view.spans])
        if view.spans
        else _NAME_MIN,
    )
    fixed = name_width + 3 + 3 * _NUMBER + 2
    while fixed + _BAR_MIN + _TAIL > console.width and name_width > _NAME_MIN:
        name_width -= 1
        fixed -= 1
    bar_width = max(_BAR_MIN, min(_BAR_MAX, console.width - fixed - _TAIL))
    lines: list[Text] = [Text(printable(report.title), style="bold")]
    lines.extend(Text(clip(line)) for line in view.headline)
    lines.append(Text(""))
    header = Text(style="bold")
    header.append("span".ljust(name_width) + "   ")
    header.append("duration".rjust(_NUMBER - 1) + " " + "self".rjust(_NUMBER - 1) + " ")
    header.append("critical".rjust(_NUMBER - 1) + " ")
    axis = f"0 .. {format_duration(view.axis_ms)}" if view.axis_ms is not None else "?"
    header.append("|" + axis[:bar_width].ljust(bar_width) + "| B − A, attributes that differ")
    lines.append(_line(header))
    for compared in view.spans:
        lines.extend(_pair(compared, name_width, bar_width, view.axis_ms))
    if not view.spans:
        lines.append(Text("(no spans to compare)"))
    return Group(*lines)


def _pair(
    compared: ComparedSpan, name_width: int, bar_width: int, axis: float | None
) -> list[Text]:
    only = " (only in A)" if compared.b is None else " (only in B)" if compared.a is None else ""
    indent = " " * _indent(compared.depth)
    room = max(1, name_width - len(indent) - len(only))
    name = (indent + shorten_middle(clip(compared.label), room) + only).ljust(name_width)
    out = []
    for side, span in (("A", compared.a), ("B", compared.b)):
        if span is None:
            continue
        text = Text()
        first = side == "A" or compared.a is None
        text.append(name if first else " " * name_width, "bold" if first else "")
        text.append(f" {side} ", "cyan")
        for value in (span.ms, span.self_ms, span.cp_ms):
            text.append(format_duration(value).rjust(_NUMBER - 1) + " ")
        critical = (span.cp_ms or 0) > 0
        text.append("|")
        text.append(_bar(span, bar_width, axis), "magenta" if critical else "dim")
        text.append("|")
        if side == "B" and compared.a is not None:
            a, b = compared.a.ms, span.ms
            if a is not None and b is not None:
                delta = b - a
                style = "red" if delta > 0 else "green" if delta < 0 else ""
                sign = "+" if delta > 0 else ""
                text.append(f" {sign}{format_duration(delta)}", style)
            if compared.attrs_changed:
                text.append("  " + clip(", ".join(compared.attrs_changed)), "yellow")
        out.append(_line(text))
    return out


def _bar(span: KeyedSpan, width: int, axis: float | None) -> str:
    if span.offset_ms is None or span.ms is None or not axis or axis <= 0:
        return " " * width
    start = min(width - 1, max(0, round(span.offset_ms / axis * width)))
    length = max(1, round(span.ms / axis * width))
    length = min(length, width - start)
    return " " * start + "█" * length + " " * (width - start - length)


def _indent(depth: int) -> int:
    return _INDENT * min(depth, _MAX_INDENT)


def _line(text: Text) -> Text:
    text.rstrip()
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text
