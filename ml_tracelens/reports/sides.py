"""Two-sided inputs (a baseline and a current run), shared by `diff` and `models --baseline`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ml_tracelens.exceptions import UsageError

if TYPE_CHECKING:
    from ml_tracelens.reports.context import ReportContext


def sides(
    paths: Sequence[str] | None, baseline: Sequence[str] | None, current: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The baseline and current inputs: ``BASELINE CURRENT`` or repeated --baseline/--current."""
    paths, baseline, current = list(paths or ()), list(baseline or ()), list(current or ())
    if paths and (baseline or current):
        raise UsageError("give either BASELINE CURRENT or --baseline/--current options, not both")
    if paths:
        if len(paths) != 2:
            raise UsageError(
                f"expected BASELINE CURRENT (two paths), got {len(paths)}; for several files per "
                "side use --baseline A --baseline B --current C ..."
            )
        return [paths[0]], [paths[1]]
    if not baseline or not current:
        raise UsageError("nothing to compare: give BASELINE CURRENT, or --baseline and --current")
    return baseline, current


def side_context(baseline: ReportContext, current: ReportContext) -> ReportContext:
    """Merge the two sides' ``inputs``/``warnings`` (summary.inputs_of/warnings_of) into one,
    each input marked with its side and each warning prefixed with it."""
    return {
        "inputs": [
            {"side": side, **item}
            for side, context in (("baseline", baseline), ("current", current))
            for item in context["inputs"]
        ],
        "warnings": [
            f"{side}: {warning}"
            for side, context in (("baseline", baseline), ("current", current))
            for warning in context["warnings"]
        ],
    }
