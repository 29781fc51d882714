"""`why` on seeded workloads whose causes are planted (or absent): the planted value must come
first with a tiny q and the right stage, noise must give (almost) no findings, and the counts
of every row must be the ones the workload's own records give."""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest
from scipy import stats
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core import analyze
from ml_tracelens.core.significance import fisher_exact
from ml_tracelens.exceptions import InputError, UsageError
from ml_tracelens.reports import why, why_units
from ml_tracelens.reports.documents import WhyDocument, WhyPayload, WhyRow, decode
from ml_tracelens.reports.result import Report
from ml_tracelens.schema import spans_from_columns
from tests._hostile import PAYLOADS, UNSAFE
from tests.conftest import SAMPLE_DATA
from tests.factories import T0, otlp_span, write_otlp_lines

MS = 1_000_000
NODES = tuple(f"gpu-{i}" for i in range(1, 9))
CLIENTS = ("1.0.0", "1.1.0", "2.0.0", "3.1.0")
REGIONS = ("eu", "us", "ap")


@dataclass
class Workload:
    """Requests ``POST /predict`` > validate, model.inference, postprocess, with the truth of
    each request kept beside the spans."""

    spans: pl.DataFrame
    requests: list[dict[str, object]] = field(default_factory=list)


def workload(
    seed: int,
    count: int = 2000,
    *,
    slow_node: bool = False,
    failing_client: bool = False,
    otlp_attributes: bool = False,
) -> Workload:
    """``slow_node``: 5% of requests run their inference on gpu-7, 3x slower (else gpu-7 is
    as common and as fast as any node). ``failing_client``: client 3.1.0 fails 30% of its
    requests, the others 1%. ``otlp_attributes``: the root's attributes as an OTLP KeyValue
    list (the OTLP reader's form) instead of an object."""
    rng = random.Random(seed)
    columns: dict[str, list[object]] = {
        k: []
        for k in (
            "trace_id",
            "span_id",
            "parent_id",
            "service",
            "name",
            "kind",
            "start_ns",
            "end_ns",
            "status",
            "attributes",
        )
    }
    truth: list[dict[str, object]] = []

    def span(trace: str, sid: str, parent: str | None, name: str, start: int, end: int,
             attrs: dict[str, object], *, error: bool = False, service: str = "api") -> None:  # fmt: skip
        columns["trace_id"].append(trace)
        columns["span_id"].append(sid)
        columns["parent_id"].append(parent)
        columns["service"].append(service)
        columns["name"].append(name)
        columns["kind"].append("server" if parent is None else "internal")
        columns["start_ns"].append(start)
        columns["end_ns"].append(end)
        columns["status"].append("error" if error else "unset")
        columns["attributes"].append(json.dumps(attrs))

    for index in range(count):
        trace = f"{index:032x}"
        if slow_node:
            node = "gpu-7" if rng.random() < 0.05 else rng.choice(NODES[:6] + NODES[7:])
        else:
            node = rng.choice(NODES)
        client = rng.choice(CLIENTS)
        region = rng.choice(REGIONS)
        fails = rng.random() < (0.30 if failing_client and client == "3.1.0" else 0.01)
        start = index * 1_000 * MS
        validate = round(rng.lognormvariate(math.log(2), 0.3) * MS)
        inference = round(rng.lognormvariate(math.log(50), 0.3) * MS)
        if slow_node and node == "gpu-7":
            inference *= 3
        post = round(rng.lognormvariate(math.log(3), 0.3) * MS)
        tokens = rng.randint(10, 500)
        t1 = start + MS
        t2 = t1 + validate + MS
        t3 = t2 + inference + MS
        end = t3 + post + MS
        root_attrs: dict[str, object] = {"client.version": client, "region": region}
        if otlp_attributes:
            listed = [{"key": k, "value": {"stringValue": v}} for k, v in root_attrs.items()]
            columns_attrs: object = listed
        else:
            columns_attrs = root_attrs
        span(trace, f"r{index}", None, "POST /predict", start, end, {}, error=fails)
        columns["attributes"][-1] = json.dumps(columns_attrs)
        span(trace, f"v{index}", f"r{index}", "validate", t1, t1 + validate, {})
        span(
            trace,
            f"m{index}",
            f"r{index}",
            "model.inference",
            t2,
            t2 + inference,
            {"node": node, "input.tokens": tokens},
            error=fails,
            service="model-server",
        )
        span(trace, f"p{index}", f"r{index}", "postprocess", t3, t3 + post, {})
        truth.append(
            {
                "node": node,
                "client": client,
                "region": region,
                "failed": fails,
                "duration_ns": end - start,
                "tokens": tokens,
                # Sequential stages: each is on the critical path for its whole duration, the
                # root for the four 1 ms gaps.
                "cp_ns": {
                    "POST /predict": 4 * MS,
                    "validate": validate,
                    "model.inference": inference,
                    "postprocess": post,
                },
            }
        )
    spans = spans_from_columns(columns)
    return Workload(spans=analyze(spans).spans, requests=truth)


def expected_shift(having: list[dict[str, Any]], others: list[dict[str, Any]]) -> tuple[str, float]:
    """The stage whose mean critical-path time grows most from ``others`` to ``having``, and
    the growth in ms (the alphabetically first stage of equal growth)."""
    stages = sorted(having[0]["cp_ns"])
    growth = {
        stage: (
            statistics.fmean(r["cp_ns"][stage] for r in having)
            - statistics.fmean(r["cp_ns"][stage] for r in others)
        )
        / MS
        for stage in stages
    }
    top = max(growth.values())
    return next(stage for stage in stages if growth[stage] == top), top


def rows_of(report: Report) -> list[WhyRow]:
    """The JSON rows of a report, typed."""
    table = next(t for t in report.tables if t.key == "rows")
    return msgspec.convert(table.rows, list[WhyRow])


def build(w: Workload, **options: Any) -> Report:
    keys = ("slow", "failed", "where", "baseline_where")
    selection = why_units.Selection(**{k: options.pop(k) for k in keys if k in options})
    return why.build(analysed=w.spans, selection=selection, **options)


def payload(report: Report) -> WhyPayload:
    assert isinstance(report.payload, WhyPayload)
    return report.payload


def test_a_planted_slow_node_is_found_first_with_its_stage() -> None:
    w = workload(1, slow_node=True)
    report = build(w, slow="p95")
    rows = rows_of(report)
    top = rows[0]
    assert (top.attribute, top.value) == ("node", "gpu-7")
    assert top.q_value < 0.001
    assert top.stage_shift is not None
    # Requests on gpu-7 spend about 2 x 50 ms more in inference (3x slower): the mean shift is
    # near 100 ms (lognormal mean 50 e^(0.045) = 52.3 ms; twice that is 104.6 ms) ...
    assert 80 < top.stage_shift.delta_ms < 130
    # ... exactly the workload's own, over every request (all are timed, so all are tested).
    on_node = [r for r in w.requests if r["node"] == "gpu-7"]
    elsewhere = [r for r in w.requests if r["node"] != "gpu-7"]
    stage, delta = expected_shift(on_node, elsewhere)
    assert stage == "model.inference"
    assert (top.stage_shift.stage, top.stage_shift.delta_ms) == (stage, pytest.approx(delta))
    # The counts are the workload's own: requests above the p95 with node gpu-7.
    durations = sorted(r["duration_ns"] for r in w.requests)
    rank = (len(durations) - 1) * 0.95
    low = math.floor(rank)
    cut = durations[low] + (durations[low + 1] - durations[low]) * (rank - low)
    slow = [r for r in w.requests if r["duration_ns"] > cut]
    others = [r for r in w.requests if r["duration_ns"] <= cut]
    a = sum(r["node"] == "gpu-7" for r in slow)
    c = sum(r["node"] == "gpu-7" for r in others)
    assert (top.selection_count, top.baseline_count) == (a, c)
    assert top.selection_share == a / len(slow)
    assert top.p_value == pytest.approx(fisher_exact(a, len(slow) - a, c, len(others) - c))
    assert payload(report).selection.count == len(slow)
    assert payload(report).baseline.count == len(others)


def test_a_planted_failing_client_is_found_first_under_failed() -> None:
    w = workload(2, failing_client=True)
    rows = rows_of(build(w, failed=True))
    assert (rows[0].attribute, rows[0].value) == ("client.version", "3.1.0")
    assert rows[0].q_value < 0.001
    failed = [r for r in w.requests if r["failed"]]
    assert rows[0].selection_count == sum(r["client"] == "3.1.0" for r in failed)


def test_attributes_in_the_otlp_list_form_are_read_the_same() -> None:
    plain = rows_of(build(workload(2, failing_client=True), failed=True, show_all=True))
    listed = rows_of(
        build(workload(2, failing_client=True, otlp_attributes=True), failed=True, show_all=True)
    )
    assert plain == listed


def test_no_false_findings_on_noise_across_20_seeds() -> None:
    findings = 0
    tests = 0
    for seed in range(20):
        report = build(workload(100 + seed, count=1000), slow="p95")
        findings += len(rows_of(report))
        tests += payload(report).tests
    assert tests > 20 * 10  # every seed tested the node, client, region values and the tokens
    assert findings <= 1


def test_the_stage_unit_and_the_root_scope() -> None:
    w = workload(3, slow_node=True)
    # The spans of model.inference are the units: the slow ones are gpu-7's.
    by_stage = rows_of(build(w, slow="p95", stage="model.inference"))
    assert (by_stage[0].attribute, by_stage[0].value) == ("node", "gpu-7")
    # Its stage shift is over the requests the spans belong to (one span each here).
    on_node = [r for r in w.requests if r["node"] == "gpu-7"]
    elsewhere = [r for r in w.requests if r["node"] != "gpu-7"]
    shift = by_stage[0].stage_shift
    assert shift is not None
    assert (shift.stage, shift.delta_ms) == pytest.approx(expected_shift(on_node, elsewhere))
    # Only the root's attributes: the node (on the inference span) is no candidate.
    root_only = rows_of(build(w, slow="p95", scope="root", show_all=True))
    assert {r.attribute for r in root_only} >= {"client.version", "region"}
    assert "node" not in {r.attribute for r in root_only}


def test_a_numeric_attribute_is_compared_as_a_distribution() -> None:
    w = workload(4)
    report = build(w, slow="p95", show_all=True)
    tokens = next(r for r in rows_of(report) if r.attribute == "input.tokens")
    assert tokens.test == "mann-whitney"
    assert tokens.value is None
    # The reference: scipy on the tokens of the requests above the threshold and the rest.
    cut = payload(report).selection.threshold_ms
    values = w.spans.filter(pl.col("name") == "model.inference").select(
        slow=pl.col("trace_id").is_in(
            w.spans.filter(pl.col("is_root") & (pl.col("duration_ns") > cut * MS))
            .get_column("trace_id")
            .implode()
        ),
        tokens=pl.col("attributes").str.json_path_match("$['input.tokens']").cast(pl.Int64),
    )
    inside = values.filter("slow").get_column("tokens").to_list()
    outside = values.filter(~pl.col("slow")).get_column("tokens").to_list()
    reference = stats.mannwhitneyu(inside, outside, method="asymptotic")
    assert tokens.p_value == pytest.approx(reference.pvalue, abs=1e-12)
    assert (tokens.selection_count, tokens.baseline_count) == (len(inside), len(outside))
    assert tokens.selection_median == statistics.median(inside)
    assert tokens.baseline_median == statistics.median(outside)
    # Its stage shift: the requests on the selection's side of the midpoint of the medians.
    midpoint = (statistics.median(inside) + statistics.median(outside)) / 2
    above = statistics.median(inside) > statistics.median(outside)
    sided = [r for r in w.requests if (r["tokens"] > midpoint if above else r["tokens"] < midpoint)]
    rest = [r for r in w.requests if r not in sided]
    assert tokens.stage_shift is not None
    assert (tokens.stage_shift.stage, tokens.stage_shift.delta_ms) == pytest.approx(
        expected_shift(sided, rest)
    )


def test_where_selects_and_baseline_where_restricts() -> None:
    w = workload(5, slow_node=True)
    report = build(
        w,
        where="attr.region = 'eu'",
        baseline_where="attr.region = 'us'",
        show_all=True,
    )
    eu = sum(r["region"] == "eu" for r in w.requests)
    us = sum(r["region"] == "us" for r in w.requests)
    assert payload(report).selection.count == eu
    assert payload(report).baseline.count == us
    region = [r for r in rows_of(report) if r.attribute == "region"]
    assert {(r.value, r.selection_count, r.baseline_count) for r in region} == {("eu", eu, 0)}


def test_slow_by_duration_and_min_count() -> None:
    w = workload(6, slow_node=True)
    report = build(w, slow=">120ms", min_count=10_000)
    assert payload(report).tests == 0
    over = sum(r["duration_ns"] > 120 * MS for r in w.requests)
    assert payload(report).selection.count == over
    assert payload(report).selection.threshold_ms == 120


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one selection"),
        ({"slow": "p95", "failed": True}, "exactly one selection"),
        ({"slow": "fast"}, "expected a percentile"),
        ({"slow": "p100"}, "between p0 and p100"),
        ({"slow": "p95", "min_count": 0}, "at least 1"),
        ({"where": "attr.region = "}, "region"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build(workload(7, count=50), **options)


def test_nothing_to_compare_is_an_input_error() -> None:
    with pytest.raises(InputError, match="selects none"):
        build(workload(8, count=50), slow=">1h")
    with pytest.raises(InputError, match="every request is selected"):
        build(workload(8, count=50), slow=">0ms")
    with pytest.raises(InputError, match="no ghost spans"):
        build(workload(8, count=50), slow="p95", stage="ghost")


def test_the_samples_planted_shard_is_found() -> None:
    import ml_tracelens as tl

    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["planted"]
    t = tl.load([str(SAMPLE_DATA / "traces.otlp.jsonl")], cache=False)
    shard = (truth["attribute"], truth["value"])
    by_stage = rows_of(tl.why(t, slow="p95", stage=truth["stage"]).report)
    assert (by_stage[0].attribute, by_stage[0].value) == shard
    assert by_stage[0].q_value < 0.001
    requests = rows_of(tl.why(t, slow="p95").report)
    found = next(r for r in requests if (r.attribute, r.value) == shard)
    assert found.q_value < 0.001
    assert found.difference > 0.3
    assert found.selection_count + found.baseline_count == truth["requests_with_value"]
    assert found.stage_shift is not None
    assert found.stage_shift.stage == truth["stage"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slow", "fast"], "error: --slow 'fast': expected a percentile"),
        (["--slow", "p95", "--scope", "trace"], "error: --scope 'trace': choose request or root"),
        (["--slow", "p95", "--min-count", "0"], "error: --min-count must be at least 1"),
        (["--failed", "--baseline-where", "nonsense ="], "error: --baseline-where"),
        (["--slow", ">1h"], "error: nothing to compare: --slow >1h selects none of the requests"),
    ],
)
def test_the_command_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["why", str(SAMPLE_DATA / "traces.otlp.jsonl"), *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_command_prints_its_document() -> None:
    result = CliRunner().invoke(
        app, ["why", str(SAMPLE_DATA / "traces.otlp.jsonl"), "--failed", "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    document = decode(result.stdout)
    assert isinstance(document, WhyDocument)
    # The samples' roots have no status of their own unless the request failed outright, so a
    # request with any failed span is a failed request (algorithms.md, "Error origin").
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())
    assert document.selection.count == truth["requests_with_error_spans"]


def test_where_looks_at_every_span_even_with_the_root_scope() -> None:
    w = workload(9, slow_node=True)
    report = build(w, where="attr.node = 'gpu-7'", scope="root", show_all=True)
    assert payload(report).selection.count == sum(r["node"] == "gpu-7" for r in w.requests)
    assert "node" not in {r.attribute for r in rows_of(report)}


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_hostile_attribute_values_are_shown_escaped(case: str, tmp_path: Path) -> None:
    raw, shown = PAYLOADS[case]
    # 20 slow requests carry the hostile value, 80 fast ones a plain one.
    spans = [
        otlp_span(
            f"{i:032x}",
            f"{i + 1:016x}",
            None,
            "POST /predict",
            T0,
            T0 + (500 if i < 20 else 10) * MS,
            attributes={"node": raw if i < 20 else "gpu-1"},
        )
        for i in range(100)
    ]
    dump = write_otlp_lines(tmp_path / "hostile.jsonl", [spans])
    for fmt in ("table", "markdown"):
        result = CliRunner().invoke(app, ["why", str(dump), "--slow", "p50", "--format", fmt])
        assert result.exit_code == 0, result.stderr
        assert not UNSAFE.search(result.stdout), (fmt, UNSAFE.search(result.stdout))
        assert "node" in result.stdout
    table = CliRunner().invoke(app, ["why", str(dump), "--slow", "p50"], terminal_width=300)
    assert shown in table.stdout
    document = json.loads(
        CliRunner().invoke(app, ["why", str(dump), "--slow", "p50", "--format", "json"]).stdout
    )
    assert document["rows"][0]["value"] == raw  # JSON keeps the value exactly


def test_token_counts_are_also_tested_in_bands() -> None:
    w = workload(4)
    report = build(w, slow="p95", show_all=True)
    cut = payload(report).selection.threshold_ms
    # Request i is trace i: its root span is r{i}.
    slow_roots = [f"r{i}" for i, r in enumerate(w.requests) if r["duration_ns"] > cut * MS]
    slow_traces = set(w.spans.filter(pl.col("span_id").is_in(slow_roots)).get_column("trace_id"))
    tokens = w.spans.filter(pl.col("name") == "model.inference").select(
        "trace_id", n=pl.col("attributes").str.json_path_match("$['input.tokens']").cast(pl.Int64)
    )
    expected = {}
    for trace, n in tokens.iter_rows():
        band = "<64" if n < 64 else "64-255" if n < 256 else "256-1023"
        counts = expected.setdefault(band, [0, 0])
        counts[0 if trace in slow_traces else 1] += 1
    found = {
        r.value: [r.selection_count, r.baseline_count]
        for r in rows_of(report)
        if r.attribute == "input.tokens band"
    }
    # Bands with fewer than min_count slow requests are not tested.
    assert found == {band: c for band, c in expected.items() if c[0] >= 5}
    assert all(r.test == "fisher" for r in rows_of(report) if r.attribute == "input.tokens band")


def test_without_attribute_columns_only_the_built_in_candidates_are_tested() -> None:
    import ml_tracelens as tl

    t = tl.load([str(SAMPLE_DATA / "traces.otlp.jsonl")], cache=False, attributes=False)
    rows = rows_of(tl.why(t, slow="p95", show_all=True).report)
    assert rows
    assert {r.attribute for r in rows} <= {"service", "stage", "status"}


def test_untimed_requests_are_in_neither_group_under_slow() -> None:
    w = workload(10, count=200)
    untimed = w.spans.with_columns(
        duration_ns=pl.when(pl.col("span_id") == "r0").then(None).otherwise("duration_ns")
    )
    report = build(Workload(spans=untimed, requests=w.requests), slow="p90")
    p = payload(report)
    assert p.selection.count + p.baseline.count == 199
