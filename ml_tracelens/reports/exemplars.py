"""Which requests a report page shows whole: a few exemplars stand for a dump of any size."""

from __future__ import annotations

import polars as pl

from ml_tracelens.core.stats import selected_requests


def exemplar_trace_ids(analysed: pl.DataFrame, mask: pl.Series | None, count: int) -> list[str]:
    """Up to ``count`` trace ids: the slowest request, the median one, then the failed ones
    (slowest first), then the next slowest; each once. Ties break by trace id, so the choice
    is the same on every run."""
    if count <= 0:
        return []
    selected = analysed.filter(mask) if mask is not None else analysed
    requests = (
        selected_requests(analysed, selected, filtered=mask is not None)
        .filter(pl.col("duration_ns").is_not_null())
        .sort(["duration_ns", "trace_id"], descending=[True, False])
    )
    if requests.is_empty():
        return []
    ids = requests.get_column("trace_id").to_list()
    failed = requests.filter(pl.col("request_error")).get_column("trace_id").to_list()
    # The median of n durations sorted longest first: the lower middle one of an even count.
    median = ids[len(ids) // 2]
    chosen = list(dict.fromkeys([ids[0], median, *failed, *ids]))
    return [str(trace_id) for trace_id in chosen[:count]]
