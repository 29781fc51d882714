"""How a gate metric's values read in text formats, for `check` (budgets) and `diff` (rules):
a duration in ms (``75.0ms``), a rate as a share (``6.0%``), a count whole; anything else (a
PSI) as a plain number. JSON keeps the numbers either way."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ml_tracelens.gates.budgets import MetricKind, metric_kind
from ml_tracelens.reports.result import ColumnKind, JsonValue

SHOWN_AS = {
    MetricKind.DURATION: ColumnKind.MS,
    MetricKind.RATE: ColumnKind.SHARE,
    MetricKind.COUNT: ColumnKind.INT,
}


def in_metric_unit(
    metrics: Mapping[str, MetricKind],
) -> Callable[[Mapping[str, JsonValue]], ColumnKind]:
    """A ``Column.row_kind``: each row's value in the unit of the metric its ``metric`` key
    names, looked up in ``metrics``."""

    def kind_of(row: Mapping[str, JsonValue]) -> ColumnKind:
        metric = row.get("metric")
        kind = (metrics.get(metric) or metric_kind(metric)) if isinstance(metric, str) else None
        return ColumnKind.FLOAT if kind is None else SHOWN_AS.get(kind, ColumnKind.FLOAT)

    return kind_of
