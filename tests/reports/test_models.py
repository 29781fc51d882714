"""`tracelens models`, the PSI of reports/drift.py, and the model budgets of `tracelens check`.

Expected numbers come from hand computation (PSI vectors), from numpy over the Python lists a
seeded generator wrote into the dumps (per-version statistics, PSI by an independent numpy
implementation of the definition), or from sample_data/truth.json (the generator's ground truth).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens import ingest
from ml_tracelens.cli import app
from ml_tracelens.core.psi import (
    EPSILON,
    noise_limit,
    numeric_edges,
    psi_categorical,
    psi_numeric,
    reading,
)
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.gates.budgets import MetricKind, parse_budget
from ml_tracelens.ingest import Telemetry
from ml_tracelens.ingest.log_spans import spans_from_logs
from ml_tracelens.readers import json_logs
from ml_tracelens.readers.base import ReadOptions
from ml_tracelens.reports import check as check_report
from ml_tracelens.reports.model_records import FieldKeys, natural_key
from ml_tracelens.reports.models import ModelOptions, build
from ml_tracelens.schema import empty_logs, empty_spans, logs_from_columns
from tests.conftest import SAMPLE_DATA
from tests.factories import MS, T0, make_spans, otlp_document, otlp_span

runner = CliRunner()
assert T0 % (10 * 10**9) == 0  # the workloads below start on a multiple of 10 s
CONTRACT_ROW_KEYS = {
    "model_version",
    "requests",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "prediction_mix",
    "confidence_p10",
    "confidence_p50",
    "confidence_p90",
    "low_confidence_rate",
}
CONTRACT_DRIFT_KEYS = {"field", "from", "to", "psi", "reading"}


def run(*args: str):
    return runner.invoke(app, list(args))


# ---------------------------------------------------------------- PSI, by hand


def test_psi_numeric_matches_a_hand_computed_example() -> None:
    reference = pl.Series([float(v) for v in range(1, 11)])
    # Deciles of 1..10 by linear interpolation: rank (10 - 1) * k / 10 -> 1.9, 2.8, ..., 9.1, so
    # every reference value sits alone in one of 10 bins: e = 0.1 everywhere.
    assert numeric_edges(reference) == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    current = pl.Series([1.0, 1, 1, 1, 1, 2, 3, 4, 5, 10])
    # a = 0.5, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0.1: bin 0 gives 0.4 ln 5, the four empty bins
    # (share EPSILON) give (1e-4 - 0.1) ln(1e-4 / 0.1) each, the others 0.
    expected = 0.4 * math.log(5) + 4 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert expected == pytest.approx(3.4041, abs=1e-4)
    assert psi_numeric(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_numeric_bins_are_closed_on_the_right() -> None:
    reference = pl.Series([float(v) for v in range(1, 11)])
    # 1.9 is the first edge: it belongs to bin 0 (-inf, 1.9], with the reference's 1.
    current = pl.Series([1.9] * 4)
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (EPSILON - 0.1) * math.log(EPSILON / 0.1)
    assert psi_numeric(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_numeric_merges_repeated_edges() -> None:
    # A reference of one value has one distinct edge: two bins, (-inf, 5] and (5, inf).
    reference = pl.Series([5.0] * 8)
    current = pl.Series([5.0, 5.0, 6.0, 7.0])
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi_numeric(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_categorical_matches_hand_computed_examples() -> None:
    reference = pl.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    current = pl.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 20)
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert expected == pytest.approx(0.0510826, abs=1e-7)
    assert psi_categorical(reference, current) == pytest.approx(expected, rel=1e-12)
    # A class the reference never predicted is a bin of its own with e = EPSILON.
    new_class = psi_categorical(pl.Series(["a", "a", "b", "b"]), pl.Series(["a", "b", "b", "c"]))
    assert new_class == pytest.approx(
        (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.25 - EPSILON) * math.log(0.25 / EPSILON)
    )


def test_psi_of_identical_samples_is_zero_and_nulls_are_left_out() -> None:
    values = pl.Series([0.2, 0.5, None, 0.9, 0.9])
    assert psi_numeric(values, values) == 0.0
    assert psi_categorical(pl.Series(["x", None, "y"]), pl.Series(["y", "x"])) == 0.0
    with pytest.raises(ValueError, match="both sides"):
        psi_numeric(pl.Series([None], dtype=pl.Float64), values)


@pytest.mark.parametrize(
    ("psi", "expected"),
    [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"), (0.25, "moderate"), (0.2501, "major")],
)
def test_psi_reads_stable_below_0_1_moderate_to_0_25_and_major_above(
    psi: float, expected: str
) -> None:
    assert reading(psi) == expected


def test_noise_limit_bounds_psi_of_unchanged_data_about_99_times_in_100() -> None:
    rng = np.random.default_rng(11)
    below = [
        psi_numeric(pl.Series(rng.beta(8, 2, 150)), pl.Series(rng.beta(8, 2, 90)))
        < noise_limit(10, 150, 90)
        for _ in range(400)
    ]
    assert 0.96 <= sum(below) / len(below) <= 1.0


# ---------------------------------------------------------------- a seeded workload


@dataclass
class Inference:
    trace: str
    version: str
    start_ns: int
    duration_ns: int
    error: bool
    prediction: str | None
    confidence: float | None
    length: int


def workload(seed: int = 5, count: int = 90) -> list[Inference]:
    rng = random.Random(seed)
    out = []
    for index in range(count):
        version = "v2" if index % 3 == 0 else "v1"
        error = rng.random() < 0.08
        alpha, beta = (8, 2) if version == "v1" else (4, 3)
        out.append(
            Inference(
                trace=f"{(0xA5 << 120) | (index + 1):032x}",  # normalized form
                version=version,
                start_ns=T0 + index * 400 * MS,
                duration_ns=rng.randint(5_000, 90_000) * 1_000,
                error=error,
                prediction=None if error else rng.choice(["cat", "dog", "cat", "bird"]),
                confidence=None if error else round(rng.betavariate(alpha, beta), 4),
                length=rng.randint(10, 400),
            )
        )
    return out


def _attrs(item: Inference) -> dict[str, Any]:
    attrs: dict[str, Any] = {"model.version": item.version, "input.length": item.length}
    if item.prediction is not None:
        attrs["prediction"] = item.prediction
        attrs["confidence"] = item.confidence
    return attrs


def write_otlp(path: Path, items: list[Inference]) -> Path:
    """One OTLP/JSON document: a root and a model.inference child per inference."""
    spans = []
    for item in items:
        root_id, child_id = item.trace[-16:], f"{int(item.trace, 16) + 2**40:016x}"
        spans.append(
            otlp_span(
                item.trace,
                root_id,
                None,
                "POST /predict",
                item.start_ns - MS,
                item.start_ns + item.duration_ns + MS,
                status="ok",
            )
        )
        spans.append(
            otlp_span(
                item.trace,
                child_id,
                root_id,
                "model.inference",
                item.start_ns,
                item.start_ns + item.duration_ns,
                kind=1,
                attributes=_attrs(item),
                status="error" if item.error else "ok",
                message="boom" if item.error else None,
            )
        )
    document = otlp_document(spans, service="m", scope={"name": "t"})
    path.write_text(json.dumps(document) + "\n")  # spaced as a test below edits it
    return path


def flat_spans(items: list[Inference]) -> pl.DataFrame:
    """The same workload as a canonical frame with flat-object attributes."""
    frames = []
    for item in items:
        frames.append(
            make_spans(
                [
                    ("root", None, item.start_ns - MS, item.start_ns + item.duration_ns + MS),
                    {
                        "id": "inf",
                        "parent": "root",
                        "name": "model.inference",
                        "start": item.start_ns,
                        "end": item.start_ns + item.duration_ns,
                        "status": "error" if item.error else "ok",
                        "attributes": _attrs(item),
                    },
                ],
                trace_id=item.trace,
            )
        )
    return pl.concat(frames)


def np_expected(items: list[Inference], threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    out = {}
    for version in sorted({i.version for i in items}):
        mine = [i for i in items if i.version == version]
        latency = np.array([i.duration_ns / MS for i in mine])
        confidence = np.array([i.confidence for i in mine if i.confidence is not None])
        predictions = Counter(i.prediction for i in mine if i.prediction is not None)
        total = sum(predictions.values())
        out[version] = {
            "model_version": version,
            "requests": len(mine),
            "errors": sum(i.error for i in mine),
            "error_rate": sum(i.error for i in mine) / len(mine),
            "p50_ms": np.percentile(latency, 50),
            "p95_ms": np.percentile(latency, 95),
            "prediction_mix": {k: v / total for k, v in predictions.items()},
            "confidence_p10": np.percentile(confidence, 10),
            "confidence_p50": np.percentile(confidence, 50),
            "confidence_p90": np.percentile(confidence, 90),
            "low_confidence_rate": float(np.mean(confidence < threshold)),
        }
    return out


def np_psi_numeric(reference: list[float], current: list[float]) -> float:
    """The PSI definition of drift.py, written again with numpy."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    edges = np.unique(np.percentile(ref, np.arange(10, 100, 10)))
    bins = len(edges) + 1
    e = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=bins) / len(ref)
    a = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=bins) / len(cur)
    e, a = np.where(e == 0, EPSILON, e), np.where(a == 0, EPSILON, a)
    return float(np.sum((a - e) * np.log(a / e)))


def assert_rows_match(rows: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert [r["model_version"] for r in rows] == list(expected)
    for row in rows:
        want = expected[row["model_version"]]
        assert set(row) >= CONTRACT_ROW_KEYS
        for key in CONTRACT_ROW_KEYS - {"prediction_mix", "model_version"}:
            assert row[key] == pytest.approx(want[key], rel=1e-9), key
        assert dict(row["prediction_mix"]) == pytest.approx(want["prediction_mix"])


def test_each_version_gets_its_statistics_and_drift_from_otlp_attributes(tmp_path: Path) -> None:
    items = workload()
    path = write_otlp(tmp_path / "w.otlp.json", items)
    result = run("models", str(path), "--feature", "input.length", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["report"] == "models"
    assert_rows_match(document["rows"], np_expected(items))
    assert document["fields"]["model_version"] == ["model.version"]
    assert document["stages"] == ["model.inference"]
    # Default drift: the two versions, older first.
    drift = {d["field"]: d for d in document["drift"]}
    assert set(drift) == {"prediction", "confidence", "input.length"}
    for entry in drift.values():
        assert set(entry) >= CONTRACT_DRIFT_KEYS
        assert (entry["from"], entry["to"]) == ("v1", "v2")
        assert entry["reading"] == reading(entry["psi"])
    v1 = [i for i in items if i.version == "v1"]
    v2 = [i for i in items if i.version == "v2"]
    conf = [[i.confidence for i in side if i.confidence is not None] for side in (v1, v2)]
    assert drift["confidence"]["psi"] == pytest.approx(np_psi_numeric(*conf), rel=1e-9)
    lengths = [[float(i.length) for i in side] for side in (v1, v2)]
    assert drift["input.length"]["psi"] == pytest.approx(np_psi_numeric(*lengths), rel=1e-9)
    features = {r["model_version"]: r for r in document["features"]}
    assert features["v2"]["mean"] == pytest.approx(np.mean(lengths[1]))
    assert features["v1"]["p90"] == pytest.approx(np.percentile(lengths[0], 90))
    assert features["v1"]["count"] == len(v1)


def test_flat_attributes_give_the_same_rows_and_the_threshold_is_an_option() -> None:
    items = workload(seed=9)
    telemetry = Telemetry(spans=flat_spans(items), logs=empty_logs())
    report = build(current=telemetry, options=ModelOptions(low_confidence=0.7))
    assert_rows_match(report.primary.rows, np_expected(items, threshold=0.7))


def test_top_classes_sums_the_rest_under_others() -> None:
    items = workload(seed=2)
    report = build(
        current=Telemetry(spans=flat_spans(items), logs=empty_logs()),
        options=ModelOptions(top_classes=1),
    )
    for row in report.primary.rows:
        mix = row["prediction_mix"]
        assert list(mix) == ["cat", "(others)"]  # cat is drawn twice as often
        assert sum(mix.values()) == pytest.approx(1.0)
        assert str(mix).startswith("cat ")


def test_sample_otlp_matches_the_generator_truth() -> None:
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["model_versions"]
    result = run("models", str(SAMPLE_DATA / "traces.otlp.jsonl"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {r["model_version"]: r for r in document["rows"]}
    assert set(rows) == set(truth)
    for version, want in truth.items():
        row = rows[version]
        assert row["requests"] == want["count"]
        assert row["errors"] == want["errors"]
        total = sum(want["predictions"].values())
        assert row["prediction_mix"] == pytest.approx(
            {k: v / total for k, v in want["predictions"].items()}
        )
        assert row["confidence_p50"] == pytest.approx(np.percentile(want["confidences"], 50))
        assert row["low_confidence_rate"] == pytest.approx(
            np.mean(np.array(want["confidences"]) < 0.5)
        )
    (confidence,) = [d for d in document["drift"] if d["field"] == "confidence"]
    assert confidence["psi"] == pytest.approx(
        np_psi_numeric(truth["v1"]["confidences"], truth["v2"]["confidences"])
    )
    assert confidence["reading"] == "major"  # v2: Beta(5,3) against v1's Beta(8,2)


# ---------------------------------------------------------------- logs


LOG_ONLY = [
    {"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": "predicted",
     "request_id": "r1", "model": "m-a", "label": "cat", "score": 0.9},
    {"timestamp": "2026-01-01T00:00:01Z", "level": "info", "event": "predicted",
     "request_id": "r2", "model": "m-a", "label": "dog", "score": 0.4},
    {"timestamp": "2026-01-01T00:00:02Z", "level": "info", "event": "predicted",
     "request_id": "r3", "model": "m-a", "label": "cat", "score": 0.7},
    {"timestamp": "2026-01-01T00:00:03Z", "level": "info", "event": "predicted",
     "request_id": "r4", "model": "m-b", "label": "dog", "score": 0.3},
    {"timestamp": "2026-01-01T00:00:04Z", "level": "error", "event": "inference failed",
     "request_id": "r5", "model": "m-b", "error": "CUDA out of memory"},
    # loguru serialize=True keeps bound fields under record.extra
    {"text": "predicted", "record": {"time": {"timestamp": 1767225605.0},
     "level": {"name": "INFO"}, "message": "predicted",
     "extra": {"request_id": "r6", "model": "m-b", "label": "cat", "score": 0.8}}},
]  # fmt: skip


def log_telemetry(lines: list[dict[str, Any]]) -> Telemetry:
    """Telemetry of a JSON-lines log as ingest builds it (log reader, then spans from logs)."""
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    logs = json_logs.parse_logs(data, "app.jsonl", ReadOptions()).logs
    spans = spans_from_logs(logs, known_trace_ids=pl.Series([], dtype=pl.String)).spans
    return Telemetry(spans=spans, logs=logs)


def test_a_dump_of_log_lines_without_stages_gives_each_model_its_statistics() -> None:
    report = build(current=log_telemetry(LOG_ONLY))
    rows = {r["model_version"]: r for r in report.primary.rows}
    assert rows["m-a"]["requests"] == 3
    assert rows["m-a"]["errors"] == 0
    assert rows["m-a"]["prediction_mix"] == pytest.approx({"cat": 2 / 3, "dog": 1 / 3})
    assert rows["m-a"]["confidence_p50"] == pytest.approx(0.7)
    assert rows["m-a"]["confidence_p10"] == pytest.approx(0.4 + 0.2 * 0.3)  # rank 0.2 of 3
    assert rows["m-a"]["low_confidence_rate"] == pytest.approx(1 / 3)
    assert rows["m-b"]["requests"] == 3  # r4, r5 (failed, no label), r6 (loguru)
    assert rows["m-b"]["errors"] == 1
    assert rows["m-b"]["error_rate"] == pytest.approx(1 / 3)
    assert rows["m-b"]["prediction_mix"] == pytest.approx({"dog": 0.5, "cat": 0.5})
    assert rows["m-b"]["low_confidence_rate"] == pytest.approx(0.5)
    assert rows["m-b"]["p50_ms"] is None  # no durations and no spans to take one from
    assert report.payload.fields == {
        "model_version": ["model"],
        "prediction": ["label"],
        "confidence": ["score"],
    }
    # m-a -> m-b prediction drift: cat 2/3 -> 1/2, dog 1/3 -> 1/2.
    (prediction,) = [d for d in report.tables[1].rows if d["field"] == "prediction"]
    assert prediction["psi"] == pytest.approx(
        (0.5 - 2 / 3) * math.log(0.5 / (2 / 3)) + (0.5 - 1 / 3) * math.log(0.5 / (1 / 3))
    )


def test_sample_app_log_matches_the_generator_truth() -> None:
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["model_versions"]
    lines = [json.loads(x) for x in (SAMPLE_DATA / "app.log.jsonl").read_text().splitlines()]
    report = build(current=log_telemetry(lines))
    rows = {r["model_version"]: r for r in report.primary.rows}
    for version, want in truth.items():
        assert rows[version]["requests"] == want["count"]
        assert rows[version]["errors"] == want["errors"]
        assert rows[version]["confidence_p90"] == pytest.approx(
            np.percentile(want["confidences"], 90)
        )
    assert report.payload.stages == ["model.inference"]


def test_models_counts_the_sample_app_log_requests_of_each_version_as_generated() -> None:
    result = run("models", str(SAMPLE_DATA / "app.log.jsonl"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["model_versions"]
    rows = {r["model_version"]: r for r in json.loads(result.stdout)["rows"]}
    assert {v: r["requests"] for v, r in rows.items()} == {v: t["count"] for v, t in truth.items()}


def test_traces_and_their_application_log_are_not_counted_twice() -> None:
    items = workload(seed=4, count=30)
    logs = logs_from_columns(
        {
            "time_ns": [i.start_ns + i.duration_ns for i in items],
            "level": ["error" if i.error else "info" for i in items],
            "message": ["inference"] * len(items),
            "trace_id": [i.trace for i in items],
            "correlation_id": [f"req-{n}" for n in range(len(items))],
            "attributes": [json.dumps({"model_version": i.version}) for i in items],
        }
    )
    stray = logs_from_columns(
        {
            "time_ns": [T0],
            "level": ["info"],
            "message": ["predicted"],
            "correlation_id": ["elsewhere"],
            "attributes": ['{"model_version": "v1", "prediction": "cat"}'],
        }
    )
    telemetry = Telemetry(spans=flat_spans(items), logs=pl.concat([logs, stray]))
    report = build(current=telemetry)
    counts = {r["model_version"]: r["requests"] for r in report.primary.rows}
    v1 = sum(i.version == "v1" for i in items)
    assert counts == {"v1": v1 + 1, "v2": len(items) - v1}
    assert any("match no trace" in w for w in report.warnings)


def test_one_record_per_request_and_version_and_inherited_versions() -> None:
    # A version set as a resource attribute sits on every span of the model server; the
    # prediction is on a child; another trace has the version on the parent only.
    spans = pl.concat(
        [
            make_spans(
                [
                    ("root", None, 0, 100),
                    ("serve", "root", 10, 90, {"attributes": {"model.version": "v3"}}),
                    ("head", "serve", 20, 50, {"attributes": {"model.version": "v3",
                                                               "prediction": "cat",
                                                               "confidence": 0.6}}),
                    ("tok", "serve", 12, 18, {"attributes": {"model.version": "v3"}}),
                ],
                trace_id="a1",
            ),
            make_spans(
                [
                    ("root", None, 0, 100),
                    ("predict", "root", 10, 90, {"attributes": {"model_version": "v3"}}),
                    ("post", "predict", 60, 80, {"attributes": {"label": "dog"}}),
                ],
                trace_id="a2",
            ),
        ]
    )  # fmt: skip
    report = build(current=Telemetry(spans=spans, logs=empty_logs()))
    (row,) = report.primary.rows
    assert row["model_version"] == "v3"
    assert row["requests"] == 2
    assert row["prediction_mix"] == {"cat": 0.5, "dog": 0.5}
    # Latency of the span carrying the prediction: head (30 ns) and post (20 ns).
    assert row["p50_ms"] == pytest.approx(25 / MS)


def test_overrides_replace_the_aliases() -> None:
    spans = make_spans(
        [("a", None, 0, 10, {"attributes": {"model.version": "v1", "clf.out": "x", "p": 0.2}})]
    )
    telemetry = Telemetry(spans=spans, logs=empty_logs())
    keys = FieldKeys.choose(model_field="nope", prediction_field="clf.out", confidence_field="p")
    report = build(current=telemetry, options=ModelOptions(keys=keys))
    (row,) = report.primary.rows
    assert row["model_version"] is None  # model.version is not tried once --model-field is given
    assert row["prediction_mix"] == {"x": 1.0}
    assert row["confidence_p50"] == pytest.approx(0.2)


def test_no_model_fields_is_a_clear_usage_error(tmp_path: Path) -> None:
    path = write_otlp(tmp_path / "plain.json", workload(count=3))
    text = path.read_text()
    for key in ("model.version", "prediction", "confidence"):
        text = text.replace(f'"key": "{key}"', f'"key": "x.{key}"')
    path.write_text(text)
    result = run("models", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr
    assert "no model fields in" in message
    for alias in ("model.version, model_version, model", "label", "predicted_class", "probability"):
        assert alias in message
    assert "--model-field" in message
    assert "--confidence-field" in message
    with pytest.raises(InputError, match="no model fields"):
        build(current=Telemetry(spans=empty_spans(), logs=empty_logs()))


# ---------------------------------------------------------------- drift modes


def _records(predictions: list[str], confidences: list[float], start_ns: int, trace: str):
    return [
        make_spans(
            [("m", None, start_ns + n * MS, start_ns + n * MS + 5 * MS,
              {"attributes": {"model.version": "v1", "prediction": p, "confidence": c}})],
            trace_id=f"{trace}{n}",
        )
        for n, (p, c) in enumerate(zip(predictions, confidences, strict=True))
    ]  # fmt: skip


def test_with_a_window_drift_compares_consecutive_windows() -> None:
    first = (["a", "a", "b", "b"], [0.9, 0.8, 0.7, 0.6])
    second = (["a", "b", "b", "b"], [0.5, 0.45, 0.4, 0.3])
    spans = pl.concat(_records(*first, T0, "w0-") + _records(*second, T0 + 10 * 10**9 + MS, "w1-"))
    report = build(
        current=Telemetry(spans=spans, logs=empty_logs()), options=ModelOptions(window="10s")
    )
    assert report.payload.drift_by == "window"
    labels = [
        datetime.fromtimestamp(s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        for s in (T0 // 10**9, T0 // 10**9 + 10)
    ]
    windows = {t.key: t for t in report.tables}["windows"].rows
    assert [(w["window"], w["requests"]) for w in windows] == [(labels[0], 4), (labels[1], 4)]
    drift = {d["field"]: d for d in report.tables[1].rows}
    assert (drift["prediction"]["from"], drift["prediction"]["to"]) == tuple(labels)
    assert drift["prediction"]["psi"] == pytest.approx(
        (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    )
    assert drift["confidence"]["psi"] == pytest.approx(np_psi_numeric(first[1], second[1]))
    assert drift["confidence"]["reading"] == "major"


def test_with_a_baseline_drift_compares_the_baseline_with_the_current_dump(tmp_path: Path) -> None:
    baseline = pl.concat(_records(["a", "a", "a", "b"], [0.9, 0.9, 0.8, 0.7], T0, "b"))
    current = pl.concat(_records(["a", "b", "b", "b"], [0.9, 0.9, 0.8, 0.7], T0, "c"))
    report = build(
        current=Telemetry(spans=current, logs=empty_logs()),
        baseline=Telemetry(spans=baseline, logs=empty_logs()),
    )
    drift = {d["field"]: d for d in report.tables[1].rows}
    assert (drift["prediction"]["from"], drift["prediction"]["to"]) == ("baseline", "current")
    # (0.25 - 0.75) ln(0.25 / 0.75) + (0.75 - 0.25) ln(0.75 / 0.25) = ln 3
    assert drift["prediction"]["psi"] == pytest.approx(math.log(3))
    assert drift["prediction"]["reading"] == "major"
    assert drift["confidence"]["psi"] == 0.0
    assert {t.key for t in report.tables} >= {"rows", "drift", "baseline_rows"}


def test_a_dump_against_itself_as_baseline_drifts_nowhere(tmp_path: Path) -> None:
    items = workload(seed=8)
    base = write_otlp(tmp_path / "base.json", items)
    result = run("models", str(base), "--baseline", str(base), "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert {d["psi"] for d in document["drift"]} == {0.0}
    assert [i["side"] for i in document["inputs"]] == ["baseline", "current"]


def test_versions_compare_in_natural_order_and_compare_picks_a_pair() -> None:
    spans = pl.concat(
        [
            make_spans(
                [("m", None, 0, 10, {"attributes": {"model.version": v, "prediction": p}})],
                trace_id=f"t{n}",
            )
            for n, (v, p) in enumerate(
                [("v10", "a"), ("v2", "b"), ("v1", "a"), ("v2", "a"), ("v10", "b"), ("v1", "a")]
            )
        ]
    )
    telemetry = Telemetry(spans=spans, logs=empty_logs())
    report = build(current=telemetry)
    assert [r["model_version"] for r in report.primary.rows] == ["v1", "v2", "v10"]
    assert [(d["from"], d["to"]) for d in report.tables[1].rows] == [("v1", "v2"), ("v2", "v10")]
    report = build(current=telemetry, options=ModelOptions(compare=("v10", "v1")))
    assert [(d["from"], d["to"]) for d in report.tables[1].rows] == [("v10", "v1")]
    with pytest.raises(UsageError, match="'v3' is not in the data"):
        build(current=telemetry, options=ModelOptions(compare=("v3", "v1")))
    with pytest.raises(UsageError, match="choose one drift comparison"):
        build(current=telemetry, options=ModelOptions(compare=("v2", "v1"), window="1m"))
    assert sorted(["1.10", "1.9", "1.9a", None], key=natural_key) == ["1.9", "1.9a", "1.10", None]


def test_bad_options_exit_2(tmp_path: Path) -> None:
    path = write_otlp(tmp_path / "w.json", workload(count=6))
    for args in (["--window", "soon"], ["--compare", "v1"], ["--compare", "v1,v1"]):
        result = run("models", str(path), *args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error:") or "error" in result.stderr


def test_csv_holds_a_row_per_version_and_markdown_a_table(tmp_path: Path) -> None:
    items = workload(count=12)
    path = write_otlp(tmp_path / "w.json", items)
    result = run("models", str(path), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split(",")[:2] == ["model_version", "requests"]
    assert len(lines) == 2
    assert '""cat""' in result.stdout  # the mix is a JSON object in one quoted cell
    result = run("models", str(path), "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "| v1 |" in result.stdout


# ---------------------------------------------------------------- check budgets


def test_model_budgets_read_psi_of_a_field_and_low_confidence_rates() -> None:
    budget = parse_budget("psi.confidence<0.2")
    assert (budget.stage, budget.metric, budget.kind) == (None, "psi.confidence", MetricKind.INDEX)
    assert str(budget.limit) == "0.2"
    assert parse_budget("PSI.Input.Length<=0.3").metric == "psi.Input.Length"
    budget = parse_budget("v2:low_confidence_rate<5%")
    assert (budget.stage, budget.metric, budget.kind) == ("v2", "low_confidence_rate", "rate")
    assert str(budget.limit) == "0.05"
    for text, problem in (("psi.confidence<0.2ms", "drop the unit"), ("psi.<1", "name the field")):
        with pytest.raises(UsageError, match=problem):
            parse_budget(text)


def test_check_holds_model_budgets_to_the_numbers_numpy_gives(tmp_path: Path) -> None:
    items = workload(seed=5)
    path = write_otlp(tmp_path / "w.json", items)
    confidences = {
        v: [i.confidence for i in items if i.version == v and i.confidence is not None]
        for v in ("v1", "v2")
    }
    low_all = float(np.mean(np.array(confidences["v1"] + confidences["v2"]) < 0.5))
    low_v2 = float(np.mean(np.array(confidences["v2"]) < 0.5))
    psi = np_psi_numeric(confidences["v1"], confidences["v2"])
    result = run(
        "check", str(path), "--format", "json",
        "--budget", f"low_confidence_rate<{low_all + 1e-6:.6f}",
        "--budget", f"v2:low_confidence_rate<{low_v2 - 1e-6:.6f}",
        "--budget", "psi.confidence<0.2",
        "--budget", "v9:low_confidence_rate<5%",
    )  # fmt: skip
    assert psi > 0.2
    assert result.exit_code == 1, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [r["passed"] for r in rows] == [True, False, False, False]
    assert rows[0]["actual"] == pytest.approx(low_all)
    assert rows[1]["actual"] == pytest.approx(low_v2)
    assert rows[2]["actual"] == pytest.approx(psi)
    assert rows[3]["actual"] is None
    assert "'v9' is not in the data" in rows[3]["note"]
    passing = run("check", str(path), "--budget", f"psi.confidence<{psi + 0.001:.6f}")
    assert passing.exit_code == 0, passing.stdout


def test_check_model_budget_without_model_fields_fails_with_a_note() -> None:
    analysed = __import__("ml_tracelens.core", fromlist=["analyze"]).analyze(
        make_spans([("a", None, 0, 10)])
    )
    report = check_report.build(
        analysed=analysed.spans, budgets=[parse_budget("psi.confidence<0.2")], logs=empty_logs()
    )
    (row,) = report.tables[0].rows
    assert row["passed"] is False
    assert "no model fields" in row["note"]
    assert report.passed is False


def test_ingest_of_sample_traces_and_models_agree_across_formats() -> None:
    results = []
    for name in ("traces.otlp.jsonl", "traces.jaeger.json", "traces.zipkin.json"):
        telemetry = ingest.load([str(SAMPLE_DATA / name)])
        rows = build(current=telemetry).primary.rows
        results.append([(r["model_version"], r["requests"], r["errors"]) for r in rows])
    assert results[0] == results[1] == results[2]


def test_non_numeric_confidences_are_warned_about_and_features_cannot_shadow_columns() -> None:
    spans = make_spans(
        [
            ("a", None, 0, 10, {"attributes": {"model.version": "v1", "confidence": "high"}}),
            ("b", None, 0, 10, {"attributes": {"model.version": "v1", "confidence": 0.25}}),
            ("c", None, 0, 10, {"attributes": {"input.length": 7}}),  # not a model span
        ],
        source="x.json:4",
    )
    spans = spans.with_columns(trace_id=pl.Series(["t1", "t2", "t3"]))
    report = build(
        current=Telemetry(spans=spans, logs=empty_logs()),
        options=ModelOptions(keys=FieldKeys.choose(features=["input.length"])),
    )
    (row,) = report.primary.rows
    assert row["requests"] == 2
    assert row["confidence_p50"] == pytest.approx(0.25)
    assert any(
        "1 confidence values are not numbers" in w and "'high'" in w for w in report.warnings
    )
    assert report.payload.fields["input.length"] == []  # only seen on a span without model fields
    with pytest.raises(UsageError, match=r"^features 'stage'"):
        FieldKeys.choose(features=["stage"])


@pytest.mark.parametrize("columns", [60, 80])
def test_window_starts_are_shown_whole_on_a_narrow_terminal(columns: int) -> None:
    from tests.conftest import SAMPLE_DATA
    from tests.render._terminal import CONTROL_SEQUENCE, run_on_terminal

    args = ["models", str(SAMPLE_DATA / "traces.otlp.jsonl"), "--window", "20s", "--no-cache"]
    document = json.loads(CliRunner().invoke(app, [*args, "-q", "-f", "json"]).stdout)
    starts = [window["window"] for window in document["windows"]]
    assert starts
    _, screen, _ = run_on_terminal([*args, "-q"], columns=columns)
    text = CONTROL_SEQUENCE.sub("", screen.decode())
    drift = text.split("Drift (PSI)", 1)[1].split("Windows of", 1)[0]
    windows = text.split("Windows of", 1)[1]
    time = r"\d{4}-\d\d-\d\dT[\d:.]+Z"
    assert re.findall(rf"^ ({time}) ", windows, flags=re.M) == starts
    # The drift rows name window starts, whole (a narrow terminal hides columns, never cuts).
    shown = re.findall(time, drift)
    assert shown
    assert set(shown) <= set(starts)
    assert "…" not in drift
