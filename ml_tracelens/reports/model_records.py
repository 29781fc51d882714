"""Model records: what `tracelens models` counts, one row per (request, model version).

Field discovery. Each field is looked up under its aliases, in this order (the first present on a
record wins), on span attributes and on the fields of log lines (loguru's bound fields under
``record.extra.`` too):

    model_version  model.version, model_version, model
    prediction     prediction, label, class, predicted_class
    confidence     confidence, score, probability
    features       the keys named with --feature (numeric)

``--model-field``, ``--prediction-field`` and ``--confidence-field`` replace a field's aliases
with one key. (Not ``--field``: that option already maps log-reader fields for every command.)

Records. A span carrying a model version, prediction or confidence is a model span; its stage is
the inference stage. Spans of one trace and one version make one record (a version set as a
resource attribute sits on every span of the model server): fields come from the spans carrying a
prediction or confidence first, then the shallowest, then the earliest, and that span gives the
latency. A span without a version inherits its trace's version when the trace has exactly one.
Log lines carrying the fields are records of their request (trace id, else correlation id), one
per (request, version) in the same way, unless that request already has a record from spans:
structured log lines with a stage and a duration also become spans (log_spans.py), and a trace
dump and its application log describe the same inferences.

Per record: ``latency_ns`` is the inference stage's duration (a log line's duration), else the
duration of the request it belongs to; ``error`` is true when the inference itself failed (error
status on a record's spans; error level on a record's log lines). The request's own outcome is not
used: a trace whose root has no status counts as failed when any span failed (algorithms.md), so a
handled failure elsewhere (a profile lookup with a fallback) would be charged to the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from ml_tracelens.core.stats import requests
from ml_tracelens.exceptions import InputError, UsageError, quoted
from ml_tracelens.schema import ERROR_LEVELS, with_attribute_columns

ALIASES: dict[str, tuple[str, ...]] = {
    "model_version": ("model.version", "model_version", "model"),
    "prediction": ("prediction", "label", "class", "predicted_class"),
    "confidence": ("confidence", "score", "probability"),
}
OVERRIDE_OPTIONS = {
    "model_version": "--model-field",
    "prediction": "--prediction-field",
    "confidence": "--confidence-field",
}
MODEL_FIELDS = tuple(ALIASES)
#: loguru (serialize=True) nests bound fields here; the log reader flattens them to dotted keys.
LOGURU_EXTRA = "record.extra."
#: Columns of a records frame, which a feature (named by its key) must not shadow.
RESERVED = frozenset(
    {
        *MODEL_FIELDS,
        "request",
        "latency_ns",
        "time_ns",
        "duration_ns",
        "depth",
        "error",
        "own_error",
        "stage",
        "source",
        "origin",
        "request_ns",
    }
)
#: Level words that mark a failed log line (the canonical ones plus Python's CRITICAL).
_ERROR_LEVELS = (*ERROR_LEVELS, "critical")


@dataclass(frozen=True)
class FieldKeys:
    """The attribute keys tried per field, in order, and the numeric features to read."""

    model_version: tuple[str, ...] = ALIASES["model_version"]
    prediction: tuple[str, ...] = ALIASES["prediction"]
    confidence: tuple[str, ...] = ALIASES["confidence"]
    features: tuple[str, ...] = ()

    @classmethod
    def choose(
        cls,
        *,
        model_field: str | None = None,
        prediction_field: str | None = None,
        confidence_field: str | None = None,
        features: Iterable[str] = (),
    ) -> FieldKeys:
        """The aliases, each replaced by the user's key where one is given."""
        return cls(
            model_version=(model_field,) if model_field else ALIASES["model_version"],
            prediction=(prediction_field,) if prediction_field else ALIASES["prediction"],
            confidence=(confidence_field,) if confidence_field else ALIASES["confidence"],
            features=_features(features),
        )

    def lookups(self) -> dict[str, tuple[str, ...]]:
        """Output column -> keys to try. Feature columns are named by their key."""
        out = {
            "model_version": self.model_version,
            "prediction": self.prediction,
            "confidence": self.confidence,
        }
        out.update({feature: (feature,) for feature in self.features})
        return out

    def describe(self) -> str:
        """The keys tried, for the no-model-fields message."""
        parts = [f"{name} ({', '.join(getattr(self, name))})" for name in MODEL_FIELDS]
        return "; ".join(parts)


def _features(features: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip() for f in features if f.strip()))
    for feature in chosen:
        if feature in RESERVED:
            raise UsageError(
                f"{quoted(feature)}: the name of a column tracelens computes; "
                f"features cannot be named {', '.join(sorted(RESERVED))}",
                option="features",
            )
    return chosen


@dataclass(frozen=True)
class ModelRecords:
    """One row per (request, model version): request, model_version, prediction, confidence,
    one Float64 column per feature, latency_ns, time_ns, error, stage, source, origin."""

    frame: pl.DataFrame
    #: field -> the keys that actually held values, in alias order
    found: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def stages(self) -> list[str]:
        """The inference stages: names of the spans (or log stages) the records came from."""
        return sorted(self.frame.get_column("stage").drop_nulls().unique().to_list())

    def count(self, origin: str) -> int:
        return self.frame.filter(pl.col("origin") == origin).height


def extract(
    *, analysed: pl.DataFrame | None, logs: pl.DataFrame, keys: FieldKeys, what: str = "the inputs"
) -> ModelRecords:
    """Model records of a dump; InputError naming the aliases when no record carries a field."""
    found: dict[str, list[str]] = {name: [] for name in keys.lookups()}
    warnings: list[str] = []
    frames = []
    request_info = _request_info(analysed)
    if analysed is not None and analysed.height:
        spans = analysed.select(
            request=pl.col("trace_id"),
            stage=pl.col("name"),
            attributes=pl.col("attributes"),
            resource=pl.col("resource"),
            duration_ns=pl.col("duration_ns"),
            time_ns=pl.col("start_ns"),
            depth=pl.col("depth"),
            own_error=pl.col("status") == "error",
            source=pl.col("source").cast(pl.String),  # as the log lines' (not Categorical)
        )
        frames.append(_collapse(_with_fields(spans, keys, found, warnings), keys, "span"))
    covered = frames[0].get_column("request") if frames else pl.Series([], dtype=pl.String)
    if logs.height:
        lines = logs.select(
            request=pl.coalesce(pl.col("trace_id"), pl.col("correlation_id")),
            stage=pl.col("stage"),
            attributes=pl.col("attributes"),
            duration_ns=pl.col("duration_ns"),
            time_ns=pl.col("time_ns"),
            depth=pl.lit(0, dtype=pl.Int64),
            own_error=pl.col("level").is_in(_ERROR_LEVELS).fill_null(False),
            source=pl.col("source"),
        )
        with_fields = _with_fields(lines, keys, found, warnings, prefix=LOGURU_EXTRA)
        fresh = with_fields.filter(
            pl.col("request").is_null() | ~pl.col("request").is_in(covered.implode())
        )
        if fresh.height:
            log_records = _collapse(fresh, keys, "log")
            if frames:
                unmatched = log_records.filter(
                    ~pl.col("request").is_in(request_info.get_column("request").implode())
                    | pl.col("request").is_null()
                ).height
                if unmatched:
                    warnings.append(
                        f"{unmatched:,} log records with model fields match no trace of the "
                        "spans that also carry them; counted as requests of their own (if they "
                        "repeat the traced inferences, analyse the traces or the logs alone)"
                    )
            frames.append(log_records)
    frame = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
    if frame.is_empty():
        raise InputError(
            f"no model fields in {what}: looked for {keys.describe()} on span attributes and "
            "log fields; name yours with --model-field, --prediction-field or --confidence-field"
        )
    frame = (
        frame.join(request_info, on="request", how="left")
        .with_columns(
            latency_ns=pl.coalesce(pl.col("duration_ns"), pl.col("request_ns")),
            error=pl.col("own_error"),
        )
        .select(
            "request",
            *keys.lookups(),
            "latency_ns",
            "time_ns",
            "error",
            "stage",
            "source",
            "origin",
        )
    )
    found = {
        name: sorted(set(keys_), key=keys.lookups()[name].index) for name, keys_ in found.items()
    }
    return ModelRecords(frame=frame, found=found, warnings=warnings)


def _request_info(analysed: pl.DataFrame | None) -> pl.DataFrame:
    """Per trace: the duration of its request (several roots: the longest)."""
    schema = {"request": pl.String, "request_ns": pl.Int64}
    if analysed is None or analysed.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        requests(analysed)
        .group_by("trace_id")
        .agg(request_ns=pl.col("duration_ns").max())
        .rename({"trace_id": "request"})
        .cast(schema)  # type: ignore[arg-type]
    )


def _with_fields(
    frame: pl.DataFrame,
    keys: FieldKeys,
    found: dict[str, list[str]],
    warnings: list[str],
    *,
    prefix: str | None = None,
) -> pl.DataFrame:
    """Add one column per field (first alias present wins) and keep rows with a model field."""
    lookups = keys.lookups()
    columns: dict[str, str] = {}
    candidates: dict[str, list[tuple[str, str]]] = {}
    for name, tried in lookups.items():
        spelled = [*tried, *(prefix + k for k in tried)] if prefix else list(tried)
        for index, key in enumerate(spelled):
            column = f"_{name}_{index}"
            columns[column] = key
            candidates.setdefault(name, []).append((column, tried[index % len(tried)]))
    frame = with_attribute_columns(frame, columns)
    texts = {name: pl.coalesce([pl.col(c) for c, _ in pairs]) for name, pairs in candidates.items()}
    frame = frame.with_columns(
        model_version=texts["model_version"],
        prediction=texts["prediction"],
        **{
            name: texts[name].cast(pl.Float64, strict=False)
            for name in lookups
            if name not in ("model_version", "prediction")
        },
        **{
            f"_text_{name}": texts[name]
            for name in lookups
            if name not in ("model_version", "prediction")
        },
    ).drop("attributes", "resource", strict=False)
    frame = frame.filter(
        pl.any_horizontal(pl.col(f).is_not_null() for f in ("model_version", "prediction"))
        | pl.col("_text_confidence").is_not_null()
    )
    # Which keys held values, on the model records only (a feature key on other spans is unused).
    present = frame.select(pl.col(c).is_not_null().any() for c in columns).row(0, named=True)
    for name, pairs in candidates.items():
        for column, key in pairs:
            if present[column] and key not in found[name]:
                found[name].append(key)
    frame = frame.drop(*columns)
    for name in lookups:
        if name in ("model_version", "prediction"):
            continue
        bad = frame.filter(pl.col(f"_text_{name}").is_not_null() & pl.col(name).is_null())
        if bad.height:
            first = bad.row(0, named=True)
            warnings.append(
                f"{bad.height:,} {name} values are not numbers and were ignored "
                f"(first: {first[f'_text_{name}']!r} at {first['source']})"
            )
    return frame.drop(
        f"_text_{name}" for name in lookups if name not in ("model_version", "prediction")
    )


def _collapse(frame: pl.DataFrame, keys: FieldKeys, origin: str) -> pl.DataFrame:
    """One record per (request, version); rows without a request stay records of their own."""
    values = [n for n in keys.lookups() if n != "model_version"]
    request = pl.col("request")
    frame = (
        frame.with_row_index("_row")
        .with_columns(
            _key=pl.coalesce(request, pl.lit("\x00row:") + pl.col("_row").cast(pl.String))
        )
        .with_columns(
            # A version-less model span takes its trace's version when that is unambiguous.
            model_version=pl.coalesce(
                pl.col("model_version"),
                pl.when(pl.col("model_version").drop_nulls().n_unique().over("_key") == 1).then(
                    pl.col("model_version").drop_nulls().first().over("_key")
                ),
            ),
            _carries=pl.col("prediction").is_not_null() | pl.col("confidence").is_not_null(),
        )
        .sort(["_carries", "depth", "time_ns", "_row"], descending=[True, False, False, False])
    )
    return (
        frame.group_by("_key", "model_version", maintain_order=True)
        .agg(
            request=request.first(),
            **{name: pl.col(name).drop_nulls().first() for name in values},
            duration_ns=pl.col("duration_ns").first(),
            time_ns=pl.col("time_ns").first(),
            own_error=pl.col("own_error").any(),
            stage=pl.col("stage").first(),
            source=pl.col("source").first(),
            origin=pl.lit(origin),
        )
        .drop("_key")
    )


def natural_key(value: str | None) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting v2 before v10 and 1.9 before 1.10; None last."""
    if value is None:
        return ((2, ""),)
    parts: list[tuple[int, int | str]] = []
    digits = ""
    text = ""
    for char in value:
        if char.isdigit():
            if text:
                parts.append((1, text))
                text = ""
            digits += char
        else:
            if digits:
                parts.append((0, int(digits)))
                digits = ""
            text += char
    if digits:
        parts.append((0, int(digits)))
    if text:
        parts.append((1, text))
    return tuple(parts)


def versions_in(frame: pl.DataFrame) -> list[str | None]:
    """The model versions of a records frame in natural order (no version last)."""
    return sorted(frame.get_column("model_version").unique().to_list(), key=natural_key)
