"""Tree order and span selection for `tracelens show` (one trace, in Python, never recursive).

``tree_order`` walks one trace depth first with an explicit stack (a 10,000-level chain is
fine): tops are spans whose parent is not in the trace (roots first, then orphans), siblings go
by start time (untimed last), then span id. ``select_spans`` applies ``--critical-only`` (spans
with critical-path time plus their ancestors, so the tree stays connected; the request's root
always) and ``--depth N`` (spans at most N levels below their top), counting per shown span how
many descendants the depth limit hid. Everything is a pass over the order array: children come
after their parents, so walking it backwards visits children first.
"""

from __future__ import annotations

from collections.abc import Sequence

from ml_tracelens.reports.result import JsonValue


def tree_order(
    span_ids: Sequence[str | None],
    parent_ids: Sequence[str | None],
    starts: Sequence[int | None],
) -> tuple[list[int], list[int], list[int | None]]:
    """Depth-first order of one trace's spans, each span's depth, and its parent's index.

    Iterative (an explicit stack), so a 10,000-deep chain is fine. Tops are spans without a
    parent in the trace (roots, then orphans); siblings go by start time (untimed last), then id.
    """
    n = len(span_ids)
    index = {sid: i for i, sid in enumerate(span_ids) if sid is not None}
    parent_index: list[int | None] = []
    children: list[list[int]] = [[] for _ in range(n)]
    tops: list[int] = []
    for i, pid in enumerate(parent_ids):
        p = index.get(pid) if pid is not None else None
        if p is None or p == i:
            parent_index.append(None)
            tops.append(i)
        else:
            parent_index.append(p)
            children[p].append(i)

    def key(i: int) -> tuple[bool, int, str]:
        start = starts[i]
        return (start is None, start or 0, span_ids[i] or "")

    tops.sort(key=lambda i: (parent_ids[i] is not None, *key(i)))
    order: list[int] = []
    depths = [0] * n
    seen = [False] * n
    stack = list(reversed(tops))
    while stack:
        i = stack.pop()
        if seen[i]:  # a cycle the analysis missed must not loop forever
            continue
        seen[i] = True
        order.append(i)
        kids = sorted(children[i], key=key)
        for c in kids:
            depths[c] = depths[i] + 1
        stack.extend(reversed(kids))
    # Spans on a parent cycle are unreachable from any top: list them as tops rather than lose them.
    for i in range(n):
        if not seen[i]:
            seen[i] = True
            parent_index[i] = None
            order.append(i)
    return order, depths, parent_index


def select_spans(
    order: list[int],
    depths: list[int],
    parent_index: list[int | None],
    rows: list[dict[str, JsonValue]],
    max_depth: int | None,
    critical_only: bool,
) -> tuple[list[int], dict[int, int]]:
    """The spans to show, in tree order, and per shown span how many descendants --depth hid."""
    keep = [True] * len(rows)
    if critical_only:
        keep = [bool(r["_cp"]) for r in rows]
        for i in reversed(order):  # children come after parents: one pass marks ancestors
            p = parent_index[i]
            if keep[i] and p is not None:
                keep[p] = True
        for i in order:
            if parent_index[i] is None and rows[i]["parent_id"] is None:
                keep[i] = True  # the request's root always heads the view
                break
    hidden_below: dict[int, int] = {}
    if max_depth is not None:
        size = [1 if k else 0 for k in keep]
        for i in reversed(order):
            p = parent_index[i]
            if p is not None:
                size[p] += size[i]
        for i in order:
            if keep[i] and depths[i] > max_depth:
                keep[i] = False
                p = parent_index[i]
                if p is not None and depths[p] == max_depth and keep[p]:
                    hidden_below[p] = hidden_below.get(p, 0) + size[i]
    return [i for i in order if keep[i]], hidden_below


def nearest_shown(
    i: int | None, parent_index: list[int | None], position: dict[int, int]
) -> int | None:
    """The shown span at or above span ``i`` (a log of a hidden span moves up to it)."""
    while i is not None and i not in position:
        i = parent_index[i]
    return position.get(i) if i is not None else None
