"""`tracelens models`: model behaviour per model version, and drift, from the same dumps.

Records come from model_records.py (one per request and model version; field aliases and
overrides are described there). Per model version (JSON ``rows``): requests (records), errors
(records whose inference failed), error_rate, p50_ms/p95_ms of the inference latency (the
inference stage's duration, else the request's), prediction_mix (class -> share of the
version's records that carry a prediction, so the shares add up to 1; the ``--top-classes``
most frequent, the rest summed under ``(others)``), confidence_p10/p50/p90, low_confidence_rate
(share of the records with a confidence below ``--low-confidence``, default 0.5). Percentiles
interpolate linearly between closest ranks, as everywhere in tracelens. Named features are
summarised in ``features`` (count, mean, p10/p50/p90, min, max per version and feature).

Drift (JSON ``drift``): the PSI of drift.py for the prediction, the confidence and each feature,
between (one mode at a time)

- model versions: by default each version against the previous one in natural version order
  (v1 -> v2 -> v10; with exactly two versions, the older against the newer); ``--compare A,B``
  names the pair;
- ``--baseline PATH``: the baseline dumps against PATHS, all versions pooled;
- ``--window 10m``: consecutive periods of that length (aligned to multiples of it since the
  epoch, by record time: a span's start, a log line's time), each against the previous
  non-empty one, all versions pooled; the per-period statistics are in ``windows``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from ml_tracelens.core import Analysis, analyze
from ml_tracelens.core.stats import ms_quantile, quantile
from ml_tracelens.exceptions import InputError, UsageError, quoted
from ml_tracelens.ingest.telemetry import Telemetry
from ml_tracelens.reports.context import ReportContext, inputs_of, warnings_of
from ml_tracelens.reports.documents import ModelsPayload
from ml_tracelens.reports.drift import (
    drift_entries,
    parse_compare,
    parse_window,
    version_pairs,
    window_frame,
    window_pairs,
)
from ml_tracelens.reports.model_records import (
    FieldKeys,
    ModelRecords,
    extract,
    natural_key,
    versions_in,
)
from ml_tracelens.reports.result import Column, ColumnKind, JsonValue, Report, Table
from ml_tracelens.reports.sides import side_context

__all__ = ["ModelOptions", "budget_values", "build", "parse_compare", "parse_window"]

OTHERS = "(others)"

STAT_COLUMNS = (
    Column("requests", "requests", ColumnKind.INT),
    Column("errors", "errors", ColumnKind.INT, hide_rank=3),
    Column("error_rate", "err rate", ColumnKind.SHARE),
    Column("p50_ms", "p50", ColumnKind.MS),
    Column("p95_ms", "p95", ColumnKind.MS, hide_rank=5),
    Column("prediction_mix", "prediction mix", ColumnKind.SHARES, hide_rank=6),
    Column("confidence_p10", "conf p10", ColumnKind.FLOAT, hide_rank=1),
    Column("confidence_p50", "conf p50", ColumnKind.FLOAT, hide_rank=7),
    Column("confidence_p90", "conf p90", ColumnKind.FLOAT, hide_rank=2),
    Column("low_confidence_rate", "low conf", ColumnKind.SHARE, hide_rank=4),
)
DRIFT_COLUMNS = (
    Column("field", "field"),
    Column("from", "from"),
    Column("to", "to"),
    Column("psi", "PSI", ColumnKind.FLOAT),
    Column("reading", "reading"),
    Column("n_from", "n from", ColumnKind.INT, hide_rank=1),
    Column("n_to", "n to", ColumnKind.INT, hide_rank=2),
)
FEATURE_COLUMNS = (
    Column("model_version", "model version"),
    Column("feature", "feature"),
    Column("count", "count", ColumnKind.INT),
    Column("mean", "mean", ColumnKind.FLOAT),
    Column("p10", "p10", ColumnKind.FLOAT, hide_rank=3),
    Column("p50", "p50", ColumnKind.FLOAT),
    Column("p90", "p90", ColumnKind.FLOAT, hide_rank=4),
    Column("min", "min", ColumnKind.FLOAT, hide_rank=1),
    Column("max", "max", ColumnKind.FLOAT, hide_rank=2),
)


class Mix(dict[str, float]):
    """class -> share; a plain JSON object in JSON/CSV, ``billing 31%, other 9%`` on terminals."""

    def __str__(self) -> str:
        return ", ".join(f"{name} {share * 100:.0f}%" for name, share in self.items())


@dataclass(frozen=True)
class ModelOptions:
    keys: FieldKeys = field(default_factory=FieldKeys)
    low_confidence: float = 0.5
    top_classes: int = 10
    #: (from, to) model versions; None: consecutive versions
    compare: tuple[str, str] | None = None
    #: the --window text (e.g. "10m"); None: no window drift
    window: str | None = None


def records_of(
    telemetry: Telemetry, keys: FieldKeys, *, what: str | None = None
) -> tuple[ModelRecords, Analysis | None]:
    """The model records of a dump and its analysis (None for a dump of log lines only)."""
    analysis = analyze(telemetry.spans) if telemetry.spans.height else None
    what = what or ", ".join(i.path for i in telemetry.inputs) or "the inputs"
    records = extract(
        analysed=analysis.spans if analysis else None, logs=telemetry.logs, keys=keys, what=what
    )
    return records, analysis


def group_rows(
    frame: pl.DataFrame, key: str, *, low_confidence: float, top_classes: int
) -> list[dict[str, JsonValue]]:
    """Per value of ``key``: the STAT_COLUMNS, in natural order of the key."""
    confidence = pl.col("confidence")
    stats = frame.group_by(key).agg(
        requests=pl.len(),
        errors=pl.col("error").sum().cast(pl.Int64),
        p50_ms=ms_quantile("latency_ns", 0.5),
        p95_ms=ms_quantile("latency_ns", 0.95),
        confidence_p10=quantile(confidence, 0.1),
        confidence_p50=quantile(confidence, 0.5),
        confidence_p90=quantile(confidence, 0.9),
        _with_confidence=confidence.count(),
        _low=(confidence < low_confidence).sum(),
    )
    mixes = _mixes(frame, key, top_classes)
    rows = []
    for row in stats.iter_rows(named=True):
        with_confidence = row.pop("_with_confidence")
        low = row.pop("_low")
        row["error_rate"] = row["errors"] / row["requests"]
        row["low_confidence_rate"] = low / with_confidence if with_confidence else None
        row["prediction_mix"] = mixes.get(row[key], Mix())
        rows.append({k: row[k] for k in (key, *(c.key for c in STAT_COLUMNS))})
    return sorted(rows, key=lambda r: natural_key(r[key]))


def _mixes(frame: pl.DataFrame, key: str, top_classes: int) -> dict[Any, Mix]:
    counts = (
        frame.filter(pl.col("prediction").is_not_null())
        .group_by(key, "prediction")
        .len()
        .sort([key, "len", "prediction"], descending=[False, True, False], nulls_last=True)
    )
    out: dict[Any, Mix] = {}
    totals: dict[Any, int] = {}
    for group, _, n in counts.iter_rows():
        totals[group] = totals.get(group, 0) + n
    for group, prediction, n in counts.iter_rows():
        mix = out.setdefault(group, Mix())
        name = prediction if len(mix) < top_classes else OTHERS
        mix[name] = mix.get(name, 0.0) + n / totals[group]
    return out


def feature_rows(frame: pl.DataFrame, features: Sequence[str]) -> list[dict[str, JsonValue]]:
    """Per model version and feature: count, mean, p10/p50/p90, min, max."""
    rows = []
    for feature in features:
        values = pl.col(feature)
        stats = frame.group_by("model_version").agg(
            count=values.count(),
            mean=values.mean(),
            p10=quantile(values, 0.1),
            p50=quantile(values, 0.5),
            p90=quantile(values, 0.9),
            min=values.min(),
            max=values.max(),
        )
        for row in stats.iter_rows(named=True):
            rows.append({"feature": feature, **row})
    return sorted(rows, key=lambda r: (natural_key(r["model_version"]), r["feature"]))


def build(
    *,
    current: Telemetry,
    baseline: Telemetry | None = None,
    options: ModelOptions | None = None,
) -> Report:
    """The models report for ``current`` (and drift against ``baseline`` when given)."""
    options = options or ModelOptions()
    modes = [options.compare is not None, baseline is not None, options.window is not None]
    if sum(modes) > 1:
        raise UsageError("choose one drift comparison: --compare, --baseline or --window")
    if options.low_confidence < 0:
        raise UsageError("must not be negative", option="low_confidence")
    if options.top_classes < 1:
        raise UsageError("must be at least 1", option="top_classes")
    records, analysis = records_of(current, options.keys)
    frame = records.frame
    features = options.keys.features
    group_stats = functools.partial(
        group_rows, low_confidence=options.low_confidence, top_classes=options.top_classes
    )
    rows = group_stats(frame, "model_version")
    tables = [
        Table(
            key="rows",
            title="Model versions",
            columns=_columns("model_version", "model version"),
            rows=rows,
        )
    ]
    extra_tables: list[Table] = []
    context: ReportContext = {
        "inputs": inputs_of(current),
        "warnings": warnings_of(current, analysis),
    }
    if baseline is not None:
        base_records, base_analysis = records_of(baseline, options.keys)
        context = side_context(
            {"inputs": inputs_of(baseline), "warnings": warnings_of(baseline, base_analysis)},
            context,
        )
        context["warnings"] += [f"baseline: {w}" for w in base_records.warnings]
        pairs = [("baseline", base_records.frame, "current", frame)]
        drift_by = "baseline"
        extra_tables.append(
            Table(
                key="baseline_rows",
                title="Baseline model versions",
                columns=_columns("model_version", "model version"),
                rows=group_stats(base_records.frame, "model_version"),
            )
        )
    elif options.window is not None:
        timed = window_frame(frame, parse_window(options.window))
        if timed.height < frame.height:
            context["warnings"].append(
                f"{frame.height - timed.height:,} model records without a time left out of the windows"
            )
        pairs = window_pairs(timed)
        drift_by = "window"
        extra_tables.append(
            Table(
                key="windows",
                title=f"Windows of {options.window.strip()}",
                columns=_columns("window", "window start", ColumnKind.TIME),
                rows=group_stats(timed, "window"),
            )
        )
    else:
        pairs = version_pairs(frame, options.compare)
        drift_by = "model_version"
    entries, drift_warnings = drift_entries(pairs, features)
    tables.append(
        Table(
            key="drift",
            title="Drift (PSI)",
            columns=_drift_columns(drift_by),
            rows=entries,
            empty_note="no drift to show: it takes prediction, confidence or feature values on "
            "both sides of a comparison",
        )
    )
    tables.extend(extra_tables)
    if features:
        tables.append(
            Table(
                key="features",
                title="Features",
                columns=FEATURE_COLUMNS,
                rows=feature_rows(frame, features),
            )
        )
    warnings = [*context["warnings"], *records.warnings, *drift_warnings]
    return Report(
        name="models",
        title="Model behaviour by model version",
        headline=_headline(records, rows, entries, drift_by, derived=current.derived_spans > 0),
        tables=tables,
        payload=ModelsPayload(
            fields=records.found,
            stages=records.stages,
            low_confidence=options.low_confidence,
            drift_by=drift_by,
            window=options.window.strip() if options.window else None,
        ),
        inputs=context["inputs"],
        warnings=warnings,
    )


def _drift_columns(drift_by: str) -> tuple[Column, ...]:
    """Window start times are shown whole, as times; versions are names."""
    if drift_by != "window":
        return DRIFT_COLUMNS
    sides = ("from", "to")
    return tuple(replace(c, kind=ColumnKind.TIME) if c.key in sides else c for c in DRIFT_COLUMNS)


def _columns(key: str, header: str, kind: ColumnKind = ColumnKind.TEXT) -> tuple[Column, ...]:
    return (Column(key, header, kind), *STAT_COLUMNS)


def _headline(
    records: ModelRecords,
    rows: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    drift_by: str,
    *,
    derived: bool,
) -> list[str]:
    spans, logs = records.count("span"), records.count("log")
    # Log lines with a stage and a duration became spans (log_spans.py); say so, or a log-only
    # dump reads as if it held no log records.
    span_words = "spans (some built from log lines)" if derived else "spans"
    found = ", ".join(
        f"{name} from {'/'.join(keys)}" for name, keys in records.found.items() if keys
    )
    where = f"stage {', '.join(records.stages)}" if records.stages else "log lines"
    lines = [
        f"{spans + logs:,} model records ({spans:,} from {span_words}, {logs:,} from log lines) at "
        f"{where}; {found}"
    ]
    versions = [r["model_version"] for r in rows if r["model_version"] is not None]
    if drift_by == "model_version" and len(versions) < 2:
        lines.append(
            f"{len(versions)} model version{'s' if len(versions) != 1 else ''}: no version drift "
            "to compute (try --baseline PATH or --window 10m)"
        )
    by_pair: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        by_pair.setdefault((entry["from"], entry["to"]), []).append(
            f"{entry['field']} {entry['psi']:.3f} {entry['reading']}"
        )
    for (a, b), parts in list(by_pair.items())[:5]:
        lines.append(f"Drift {a} -> {b}: " + ", ".join(parts))
    if len(by_pair) > 5:
        lines.append(f"... and {len(by_pair) - 5} more comparisons (see the drift table)")
    return lines


def budget_values(
    *,
    analysed: pl.DataFrame | None,
    logs: pl.DataFrame,
    wanted: Iterable[tuple[str | None, str]],
    low_confidence: float = 0.5,
) -> dict[tuple[str | None, str], tuple[float | None, str | None]]:
    """Values of model budgets for `tracelens check`: (version or None, metric) -> (value, note).

    ``low_confidence_rate`` is over the version's records (all records without a version);
    ``psi.FIELD`` is the largest PSI of FIELD between consecutive model versions (only the
    comparisons into the version, when one is named). A missing value comes with a note.
    """
    wanted = list(dict.fromkeys(wanted))
    features = sorted(
        {m[4:] for _, m in wanted if m.startswith("psi.")} - {"prediction", "confidence"}
    )
    try:
        records = extract(analysed=analysed, logs=logs, keys=FieldKeys.choose(features=features))
    except InputError as exc:
        return {item: (None, str(exc)) for item in wanted}
    frame = records.frame
    versions = [v for v in versions_in(frame) if v is not None]
    entries, _ = drift_entries(version_pairs(frame, None), features)
    out: dict[tuple[str | None, str], tuple[float | None, str | None]] = {}
    for version, metric in wanted:
        if version is not None and version not in versions:
            out[(version, metric)] = (
                None,
                f"model version {quoted(version)} is not in the data (versions: {', '.join(versions)})",
            )
        elif metric == "low_confidence_rate":
            scoped = frame if version is None else frame.filter(pl.col("model_version") == version)
            confidence = scoped.get_column("confidence").drop_nulls()
            out[(version, metric)] = (
                (int((confidence < low_confidence).sum()) / confidence.len(), None)
                if confidence.len()
                else (None, "no confidence values")
            )
        else:
            name = metric[4:]
            psis = [
                psi
                for e in entries
                if e["field"] == name
                and (version is None or e["to"] == version)
                and isinstance(psi := e["psi"], int | float)
            ]
            out[(version, metric)] = (
                (max(psis), None)
                if psis
                else (None, f"no {name} drift: needs {name} values in two model versions")
            )
    return out
