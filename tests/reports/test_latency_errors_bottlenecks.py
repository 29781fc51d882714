"""Report builders on a hand-computed workload (values derived by hand in the comments)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core import analyze
from ml_tracelens.core.query import SpanFilter, matching
from ml_tracelens.exceptions import NotFound, UsageError
from ml_tracelens.reports import bottlenecks, errors, latency
from ml_tracelens.reports.context import iso_time, iso_time_expr
from ml_tracelens.schema import empty_logs
from tests.factories import make_spans

MS = 1_000_000


def _trace(
    trace_id: str, *, root_end: int, a: tuple, b: tuple, c: tuple, d: tuple, **extra
) -> pl.DataFrame:
    root_status = extra.pop("root_status", "unset")
    d_status = extra.pop("d_status", "unset")
    return make_spans(
        [
            (
                "R",
                None,
                0,
                root_end,
                {
                    "name": "POST /predict",
                    "status": root_status,
                    "service": "gateway",
                    "status_message": extra.get("root_message"),
                },
            ),
            ("A", "R", *a, {"name": "validate"}),
            ("B", "R", *b, {"name": "fetch_features", "service": "feature-store"}),
            ("C", "R", *c, {"name": "profile_lookup"}),
            (
                "D",
                "R",
                *d,
                {
                    "name": "model.inference",
                    "status": d_status,
                    "status_message": extra.get("d_message"),
                    "attributes": '{{"model.version": "{}"}}'.format(extra.get("version", "v1")),
                },
            ),
        ],
        trace_id=trace_id,
        scale=MS,
    )


@pytest.fixture
def workload() -> pl.DataFrame:
    # T1: critical path D[60,100] 40, B[10,60] 50, A[0,10] 10; D fails (request in error via D).
    t1 = _trace(
        "t1",
        root_end=100,
        a=(0, 10),
        b=(10, 60),
        c=(10, 40),
        d=(60, 100),
        d_status="error",
        d_message="CUDA out of memory: tried to allocate 1.5 GiB",
    )
    # T2: D[150,200] 50, B[20,150] 130, A[0,20] 20; C off the path.
    t2 = _trace("t2", root_end=200, a=(0, 20), b=(20, 150), c=(20, 50), d=(150, 200), version="v2")
    # T3: D[45,50] 5, C[5,45] 40 (profile slower than fetch), A[0,5] 5; the root itself fails.
    t3 = _trace(
        "t3",
        root_end=50,
        a=(0, 5),
        b=(5, 25),
        c=(5, 45),
        d=(45, 50),
        root_status="error",
        root_message="upstream failed after 3 tries",
    )
    return analyze(pl.concat([t1, t2, t3])).spans


def _rows(report, key: str = "stage") -> dict:
    return {row[key]: row for row in report.tables[0].rows}


def test_latency_per_stage_gives_percentiles_errors_and_critical_path_shares(
    workload: pl.DataFrame,
) -> None:
    report = latency.build(analysed=workload)
    rows = _rows(report)
    validate = rows["validate"]
    assert validate["count"] == 3
    assert validate["mean_ms"] == pytest.approx(35 / 3)
    assert validate["p50_ms"] == pytest.approx(10)
    assert validate["p95_ms"] == pytest.approx(19)  # [5, 10, 20]: rank 1.9 -> 10 + 0.9 * 10
    assert validate["max_ms"] == pytest.approx(20)
    # Critical-path shares over the summed request durations (350 ms).
    assert rows["validate"]["cp_share"] == pytest.approx(35 / 350)
    assert rows["fetch_features"]["cp_share"] == pytest.approx(180 / 350)
    assert rows["profile_lookup"]["cp_share"] == pytest.approx(40 / 350)
    assert rows["model.inference"]["cp_share"] == pytest.approx(95 / 350)
    assert rows["POST /predict"]["cp_share"] == pytest.approx(0)
    assert sum(r["cp_share"] for r in rows.values()) == pytest.approx(1)
    assert rows["POST /predict"]["self_mean_ms"] == pytest.approx(0)  # children cover the roots
    assert rows["model.inference"]["errors"] == 1
    assert rows["model.inference"]["error_rate"] == pytest.approx(1 / 3)
    # Default order: critical-path share, largest first.
    assert next(r["stage"] for r in report.tables[0].rows) == "fetch_features"
    requests = report.payload.requests
    assert requests.count == 3
    assert requests.errors == 2  # t1 via its failed child (root unset), t3 via its root
    assert requests.p50_ms == pytest.approx(100)
    assert requests.p95_ms == pytest.approx(190)


def test_latency_groups_by_service_or_attribute_and_spans_without_it_group_together(
    workload: pl.DataFrame,
) -> None:
    by_service = _rows(latency.build(analysed=workload, by=["service"]), "service")
    assert by_service["feature-store"]["count"] == 3
    assert by_service["svc"]["count"] == 9
    by_version = latency.build(analysed=workload, by=["attr.model.version"])
    rows = {r["model.version"]: r for r in by_version.tables[0].rows}
    assert rows["v1"]["count"] == 2
    assert rows["v2"]["count"] == 1
    assert rows[None]["count"] == 12  # spans without the attribute form their own group
    assert by_version.payload.group_by == ["model.version"]


def test_latency_sorts_and_keeps_the_top_rows_and_refuses_unknown_columns(
    workload: pl.DataFrame,
) -> None:
    report = latency.build(analysed=workload, sort="max_ms", top=2)
    assert [r["stage"] for r in report.tables[0].rows] == ["POST /predict", "fetch_features"]
    with pytest.raises(UsageError, match=r"^sort "):
        latency.build(analysed=workload, sort="nope")
    with pytest.raises(UsageError, match=r"^by "):
        latency.build(analysed=workload, by=["color"])


def test_filters_select_spans_but_keep_whole_trace_analysis(workload: pl.DataFrame) -> None:
    mask = matching(workload, SpanFilter(where="stage = 'fetch_features' AND duration_ms > 30"))
    report = latency.build(analysed=workload, mask=mask)
    (row,) = report.tables[0].rows
    assert row["count"] == 2  # 50 ms and 130 ms
    # cp_share is still relative to the requests these spans belong to: (50 + 130) / (100 + 200)
    assert row["cp_share"] == pytest.approx(180 / 300)
    with pytest.raises(NotFound):
        matching(workload, SpanFilter(services=("nope",)))
    with pytest.raises(UsageError):
        matching(workload, SpanFilter(where="duration_ms >"))


def test_errors_per_stage_count_seen_and_originated_errors_and_group_messages(
    workload: pl.DataFrame,
) -> None:
    report = errors.build(analysed=workload, logs=empty_logs())
    rows = _rows(report)
    assert rows["model.inference"]["errors"] == 1
    assert rows["model.inference"]["originated"] == 1
    assert rows["POST /predict"]["errors"] == 1
    assert rows["POST /predict"]["originated"] == 1
    # Requests of 100, 200 and 50 ms; percentiles interpolate linearly (algorithms.md).
    assert msgspec.to_builtins(report.payload.requests) == {
        "count": 3,
        "mean_ms": pytest.approx(350 / 3),
        "p50_ms": pytest.approx(100),
        "p90_ms": pytest.approx(100 + 0.8 * 100),
        "p95_ms": pytest.approx(100 + 0.9 * 100),
        "p99_ms": pytest.approx(100 + 0.98 * 100),
        "max_ms": pytest.approx(200),
        "errors": 2,
        "error_rate": pytest.approx(2 / 3),
    }
    messages = {m["message"]: m for m in report.tables[1].rows}
    assert set(messages) == {
        "CUDA out of memory: tried to allocate <n> GiB",
        "upstream failed after <n> tries",
    }
    assert messages["upstream failed after <n> tries"]["example_trace_id"] == "t3"
    assert messages["upstream failed after <n> tries"]["stages"] == ["POST /predict"]


def test_bottlenecks_attribute_the_tail_to_the_stages_that_grow_in_it(
    workload: pl.DataFrame,
) -> None:
    report = bottlenecks.build(analysed=workload)
    rows = _rows(report)
    assert report.tables[0].rows[0]["stage"] == "fetch_features"
    assert rows["fetch_features"]["cp_mean_ms"] == pytest.approx(60)
    # p95 of [50, 100, 200] is 190: the tail is t2; typical (p25..p75 = 75..150) is t1.
    assert report.payload.tail.requests == 1
    assert report.payload.typical.requests == 1
    assert rows["fetch_features"]["tail_delta_ms"] == pytest.approx(80)
    assert rows["model.inference"]["tail_delta_ms"] == pytest.approx(10)
    assert rows["profile_lookup"]["tail_delta_ms"] == pytest.approx(0)
    assert report.payload.verdict == (
        "fetch_features holds 51% of the critical path; in the slowest 5% of requests "
        "fetch_features adds +80.0ms."
    )
    with pytest.raises(UsageError):
        bottlenecks.build(analysed=workload, tail=1.5)


def test_percentiles_agree_with_numpy() -> None:
    rng = np.random.default_rng(7)
    durations = (rng.lognormal(3, 1, size=501) * MS).astype(np.int64)
    rows = [(f"s{i}", None, 0, int(d), {"trace_id": f"t{i}"}) for i, d in enumerate(durations)]
    analysed = analyze(make_spans(rows, name="stage")).spans
    (row,) = latency.build(analysed=analysed).tables[0].rows
    for p in (50, 90, 95, 99):
        assert row[f"p{p}_ms"] == pytest.approx(np.percentile(durations / MS, p), rel=1e-12)
    assert row["mean_ms"] == pytest.approx(np.mean(durations / MS), rel=1e-12)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), st.integers(0, 2**63 - 1)), max_size=50))
def test_iso_time_expr_spells_times_as_iso_time(values: list[int | None]) -> None:
    frame = pl.DataFrame({"t": values}, schema={"t": pl.Int64})
    spelled = frame.select(iso_time_expr("t")).to_series().to_list()
    assert spelled == [iso_time(v) for v in values]


@pytest.mark.parametrize(
    ("message", "grouped"),
    [
        ("HTTP 500", "HTTP 500"),
        ("status code 503", "status code 503"),
        ("500 Internal Server Error", "500 Internal Server Error"),
        ("HTTP/1.1 502 Bad Gateway", "HTTP/<n> 502 Bad Gateway"),
        ("exit code 137", "exit code 137"),
        ("errno 2: No such file", "errno 2: No such file"),
        ("grpc: code=14 unavailable", "grpc: code=14 unavailable"),
        ("upstream failed after 3 tries", "upstream failed after <n> tries"),
        ("user 3829 not found", "user <n> not found"),
        ("tried to allocate 1.5 GiB", "tried to allocate <n> GiB"),
        ("took 1234ms", "took <n>ms"),
        ("field 'age' is -5", "field 'age' is <n>"),
        ("offset=-12 out of range", "offset=<n> out of range"),
        ("worker-3 died", "worker-<n> died"),
        ("shard-12 unavailable (retry +2)", "shard-<n> unavailable (retry <n>)"),
        ("user42 locked", "user<n> locked"),
        ("request 8f3a2c9d1e failed", "request <hex> failed"),
        ("id 123e4567-e89b-12d3-a456-426614174000 gone", "id <uuid> gone"),
        ("at 2026-03-02T09:00:14.842975Z from 10.0.0.12:8080", "at <time> from <ip>"),
    ],
)
def test_error_messages_keep_the_codes_that_name_the_failure(message: str, grouped: str) -> None:
    from ml_tracelens.reports.errors import normalize_message

    frame = pl.DataFrame({"m": [message]})
    assert frame.select(normalize_message(pl.col("m"))).item() == grouped


@pytest.mark.parametrize(
    ("where", "says"),
    [
        (
            "stage = model.inference",
            ["put text values in single quotes: 'model.inference'", "columns: trace_id"],
        ),
        ("stagee = 'x'", ['unable to find column "stagee"', "any attribute as attr.KEY"]),
        ("attr.model.version = v2", ["put text values in single quotes: 'v2'"]),
        ("duration_ms >", ["sql parser error"]),
    ],
)
def test_a_bad_where_says_what_to_try(workload: pl.DataFrame, where: str, says: list[str]) -> None:
    with pytest.raises(UsageError) as raised:
        matching(workload, SpanFilter(where=where))
    message = str(raised.value)
    assert message.startswith(f"where {where!r}: ")
    for part in says:
        assert part in message
    if "=" not in where:
        assert "single quotes" not in message


def test_errors_says_how_many_messages_the_top_leaves_out(tmp_path: Path) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    lines = [
        {
            "timestamp": f"2026-03-02T09:00:{index:02d}Z",
            "request_id": f"r{index}",
            "stage": "infer",
            "duration_ms": 1,
            "error": f"{word} failed",
        }
        for index, word in enumerate(words * 2)  # each message twice
    ]
    path = tmp_path / "app.log.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["errors", str(path), "--top", "3", "--no-cache", "-q"]
    document = json.loads(CliRunner().invoke(app, [*args, "-f", "json"]).stdout)
    assert document["distinct_messages"] == len(words)
    assert [m["message"] for m in document["messages"]] == [f"{w} failed" for w in words[:3]]
    assert "Top error messages (3 of 8; --top N shows more)" in CliRunner().invoke(app, args).stdout
    everything = CliRunner().invoke(app, [*args[:2], "--no-cache", "-q"]).stdout
    assert "Top error messages" in everything
    assert "Top error messages (" not in everything  # the default ten show all eight
