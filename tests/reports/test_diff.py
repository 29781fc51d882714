"""`tracelens diff`: per-stage changes, bootstrap intervals and the --fail-on gate, on pairs of
OTLP/JSON dumps from a seeded generator whose true shifts are known."""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.core.bootstrap import splitmix64_expr
from ml_tracelens.reports.changes import min_samples
from tests.factories import Child, Request, write_requests

runner = CliRunner()
MS = 1_000_000


def workload(
    seed: int, count: int, *, infer_scale: float = 1.0, rerank_scale: float = 1.0, error=0.0
) -> list[Request]:
    """model.inference on every request (tight lognormal around 40 ms); rerank on about 12% of
    them (wide lognormal around 10 ms). Whole microseconds."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        infer = round(rng.lognormvariate(math.log(40), 0.25) * infer_scale * 1000) * 1000
        children = [Child("model.inference", MS, infer)]
        if rng.random() < 0.12:
            rerank = round(rng.lognormvariate(math.log(10), 0.9) * rerank_scale * 1000) * 1000
            children.append(Child("rerank", MS + infer, rerank))
        failed = rng.random() < error
        total = MS + sum(c.duration_ns for c in children) + MS // 2
        requests.append(Request(total, error=failed, children=children))
    return requests


def durations_ms(requests: list[Request], stage: str) -> np.ndarray:
    return np.array([c.duration_ns for r in requests for c in r.children if c.name == stage]) / MS


def run(*args: str):
    return runner.invoke(app, list(args))


def rows_by(document: dict) -> dict[tuple[str | None, str], dict]:
    return {(row["stage"], row["metric"]): row for row in document["rows"]}


@pytest.fixture(scope="module")
def regression_pair(tmp_path_factory: pytest.TempPathFactory):
    """A true +20% on model.inference (2,000 spans a side) and a true +12% on rerank hidden by
    its noise (about 250 spans a side, sigma 0.9)."""
    folder = tmp_path_factory.mktemp("diff")
    baseline = workload(119, 2000)
    current = workload(219, 2000, infer_scale=1.2, rerank_scale=1.12)
    return (
        write_requests(folder / "baseline.otlp.jsonl", baseline),
        write_requests(folder / "current.otlp.jsonl", current),
        baseline,
        current,
    )


def test_noise_is_not_flagged_but_a_real_p95_regression_is(regression_pair) -> None:
    base_path, cur_path, baseline, current = regression_pair
    junit = base_path.parent / "diff.xml"
    result = run(
        "diff",
        str(base_path),
        str(cur_path),
        "--fail-on",
        "p95>+10%",
        "--format",
        "json",
        "--junit",
        str(junit),
    )
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    rows = rows_by(document)

    # Ground truth for the rows, from the generated durations with numpy.
    for stage in ("model.inference", "rerank"):
        before = np.percentile(durations_ms(baseline, stage), 95)
        after = np.percentile(durations_ms(current, stage), 95)
        row = rows[(stage, "p95")]
        assert row["baseline"] == pytest.approx(before)
        assert row["current"] == pytest.approx(after)
        assert row["change"] == pytest.approx(after - before)
        assert row["change_pct"] == pytest.approx(100 * (after - before) / before)

    real = rows[("model.inference", "p95")]
    assert real["change_pct"] > 10
    assert 0 < real["ci_low"] < real["change"] < real["ci_high"]
    assert real["regression"] is True

    hidden = rows[("rerank", "p95")]
    # The point estimate passes the threshold: a naive gate would fail the build on noise.
    assert hidden["change_pct"] > 10
    assert min(len(durations_ms(baseline, "rerank")), len(durations_ms(current, "rerank"))) >= (
        min_samples("p95")
    )
    assert hidden["ci_low"] < 0 < hidden["ci_high"]
    assert hidden["regression"] is False
    assert "within noise" in hidden["note"]

    # The p50 moved by 20% as well but no rule names it.
    assert rows[("model.inference", "p50")]["regression"] is False
    assert document["passed"] is False
    assert document["regressions"] >= 1
    assert set(document["rows"][0]) == {
        "stage",
        "metric",
        "baseline",
        "current",
        "change",
        "change_pct",
        "ci_low",
        "ci_high",
        "q_value",
        "significant",
        "direction",
        "regression",
        "note",
    }
    assert document["bootstrap"] == {
        "replicates": 1000,
        "seed": 1,
        "confidence": 0.95,
        "unit": "request",
    }
    sides = [item["side"] for item in document["inputs"]]
    assert sides == ["baseline", "current"]

    # JUnit: one testcase per value a rule covers (p95 of the requests and of each stage).
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    names = {case.get("name"): case.find("failure") for case in suite.findall("testcase")}
    assert set(names) == {
        "requests p95",
        "POST /predict p95",
        "model.inference p95",
        "rerank p95",
    }
    assert names["model.inference p95"] is not None
    assert names["rerank p95"] is None


def test_without_rules_diff_reports_and_passes(regression_pair) -> None:
    base_path, cur_path, baseline, current = regression_pair
    result = run("diff", str(base_path), str(cur_path), "--format", "json", "--bootstrap", "200")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    rows = rows_by(document)
    requests = rows[(None, "count")]
    assert (requests["baseline"], requests["current"]) == (len(baseline), len(current))
    assert requests["ci_low"] is None  # a count is not an estimate
    rerank = rows[("rerank", "count")]
    assert rerank["baseline"] == len(durations_ms(baseline, "rerank"))
    assert rerank["change"] == len(durations_ms(current, "rerank")) - rerank["baseline"]
    assert not any(row["regression"] for row in document["rows"])
    assert document["bootstrap"]["replicates"] == 200


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others(regression_pair) -> None:
    base_path, cur_path, _, _ = regression_pair
    args = ["diff", str(base_path), str(cur_path), "--format", "json", "--bootstrap", "200"]

    def intervals(*extra: str) -> list[tuple[float, float]]:
        document = json.loads(run(*args, *extra).stdout)
        return [(r["ci_low"], r["ci_high"]) for r in document["rows"] if r["metric"] == "p95"]

    assert intervals("--seed", "7") == intervals("--seed", "7")
    assert intervals("--seed", "7") != intervals("--seed", "8")


def test_small_samples_say_so_instead_of_flagging(tmp_path: Path) -> None:
    # 300 requests: enough for p95 (200) but not for p99 (1,000); inference doubles.
    base = write_requests(tmp_path / "b.json", workload(1, 300))
    cur = write_requests(tmp_path / "c.json", workload(2, 300, infer_scale=2.0))
    result = run(
        "diff", str(base), str(cur), "--fail-on", "model.inference:p99>+10%", "--format", "json"
    )
    assert result.exit_code == 0, result.stdout
    row = rows_by(json.loads(result.stdout))[("model.inference", "p99")]
    assert row["change_pct"] > 50
    assert row["regression"] is False
    assert "too few samples for a verdict (300 < 1,000)" in row["note"]
    # p95 has enough samples and regresses for real.
    result = run("diff", str(base), str(cur), "--fail-on", "model.inference:p95>+10%")
    assert result.exit_code == 1


def test_an_error_rate_rule_in_percentage_points_fires_only_past_its_change(tmp_path: Path) -> None:
    baseline = workload(3, 2000, error=0.01)
    current = workload(4, 2000, error=0.05)
    base = write_requests(tmp_path / "b.json", baseline)
    cur = write_requests(tmp_path / "c.json", current)
    result = run(
        "diff",
        str(base),
        str(cur),
        "--fail-on",
        "error_rate>+0.5pp",
        "--format",
        "json",
        "--bootstrap",
        "400",
    )
    assert result.exit_code == 1
    row = rows_by(json.loads(result.stdout))[(None, "error_rate")]
    expected = sum(r.error for r in current) / 2000 - sum(r.error for r in baseline) / 2000
    assert row["change"] == pytest.approx(expected)
    assert row["ci_low"] > 0
    assert row["regression"] is True
    # A threshold above the change does not fire, whatever the interval.
    result = run("diff", str(base), str(cur), "--fail-on", "error_rate>+10pp", "--bootstrap", "100")
    assert result.exit_code == 0


def test_stages_that_appear_or_disappear_are_named_and_cannot_pass_a_rule(tmp_path: Path) -> None:
    old = [Request(5 * MS, children=[Child("legacy", 0, MS)]) for _ in range(30)]
    new = [Request(5 * MS, children=[Child("shiny", 0, MS)]) for _ in range(15)]
    base = write_requests(tmp_path / "b.json", old)
    cur = write_requests(tmp_path / "c.json", new)
    result = run("diff", str(base), str(cur), "--format", "json", "--fail-on", "count<-20%")
    document = json.loads(result.stdout)
    assert document["appeared"] == ["shiny"]
    assert document["disappeared"] == ["legacy"]
    rows = rows_by(document)
    assert rows[("legacy", "p50")]["current"] is None
    assert "disappeared" in rows[("legacy", "p50")]["note"]
    assert rows[("shiny", "count")]["baseline"] is None
    # The requests halved: count has no interval, so the threshold alone decides.
    assert rows[(None, "count")]["change_pct"] == -50.0
    assert rows[(None, "count")]["regression"] is True
    assert result.exit_code == 1
    # A rule naming a stage that is gone cannot pass.
    result = run("diff", str(base), str(cur), "--format", "json", "--fail-on", "legacy:p95>+10%")
    assert result.exit_code == 1
    row = rows_by(json.loads(result.stdout))[("legacy", "p95")]
    assert row["regression"] is True
    assert "cannot be evaluated" in row["note"]
    result = run("diff", str(base), str(cur), "--format", "json", "--fail-on", "ghost:p95>+10%")
    assert result.exit_code == 1
    assert "neither" in rows_by(json.loads(result.stdout))[("ghost", "p95")]["note"]


def test_repeated_baseline_options_add_up_and_bad_options_exit_2(tmp_path: Path) -> None:
    first = write_requests(tmp_path / "b1.json", workload(5, 50))
    second = write_requests(tmp_path / "b2.json", workload(6, 50))
    cur = write_requests(tmp_path / "c.json", workload(7, 100))
    result = run(
        "diff",
        "--baseline",
        str(first),
        "--baseline",
        str(second),
        "--current",
        str(cur),
        "--format",
        "json",
        "--bootstrap",
        "100",
    )
    assert result.exit_code == 0, result.stderr
    assert rows_by(json.loads(result.stdout))[(None, "count")]["baseline"] == 100
    assert run("diff", str(first)).exit_code == 2
    assert run("diff", str(first), str(cur), "--current", str(cur)).exit_code == 2
    bad = run("diff", str(first), str(cur), "--fail-on", "p95>+10")
    assert bad.exit_code == 2
    assert "'p95>+10'" in bad.stderr
    assert run("diff", str(first), str(cur), "--bootstrap", "5").exit_code == 2


def test_fail_on_rules_come_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_requests(tmp_path / "b.json", workload(1, 300))
    write_requests(tmp_path / "c.json", workload(2, 300, infer_scale=2.0))
    (tmp_path / "tracelens.toml").write_text('fail_on = ["model.inference:p95>+10%"]\n')
    monkeypatch.chdir(tmp_path)
    result = run("diff", "b.json", "c.json", "--format", "json", "--bootstrap", "200")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rules"] == ["model.inference:p95>+10%"]


def test_markdown_shows_a_verdict_per_stage_and_long_a_row_per_metric(regression_pair) -> None:
    base_path, cur_path, _, _ = regression_pair
    result = run(
        "diff", str(base_path), str(cur_path), "--format", "markdown", "--bootstrap", "100"
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("### tracelens diff")
    assert "| stage | count | p50 | p95 | p99 | error rate | verdict |" in result.stdout
    verdict = next(x for x in result.stdout.splitlines() if x.startswith("| model.inference"))
    assert verdict.endswith("| slower |")
    long = run(
        "diff", str(base_path), str(cur_path), "-f", "markdown", "--bootstrap", "100", "--long"
    )
    assert "| stage | metric | baseline | current |" in long.stdout


def test_splitmix64_in_polars_matches_the_published_vectors() -> None:
    # Reference outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
    expected = [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    got = pl.select(splitmix64_expr(pl.int_range(0, 5), 1234567)).to_series().to_list()
    assert got == expected


def test_each_metric_needs_its_own_minimum_of_samples() -> None:
    assert [min_samples(m) for m in ("p50", "p95", "p99", "error_rate", "count")] == [
        20,
        200,
        1000,
        20,
        0,
    ]


# --- verdicts without rules ----------------------------------------------------------------------


def test_a_planted_slowdown_is_called_slower_without_rules(tmp_path: Path) -> None:
    # The same requests, model.inference 20% slower: every percentile of it and of the requests
    # moves by about 20% (the requests by less: they include fixed gaps).
    baseline = workload(5, 2000)
    current = workload(5, 2000, infer_scale=1.2)
    base = write_requests(tmp_path / "base.otlp.jsonl", baseline)
    cur = write_requests(tmp_path / "cur.otlp.jsonl", current)
    result = run("diff", str(base), str(cur), "--format", "json", "--bootstrap", "300")
    assert result.exit_code == 0, result.stderr  # no rules: no gate
    rows = rows_by(json.loads(result.stdout))
    for metric in ("p50", "p95", "p99"):  # 2,000 spans a side: enough even for p99
        row = rows[("model.inference", metric)]
        assert row["change_pct"] == pytest.approx(20, abs=0.5)
        assert row["significant"] is True
        assert row["direction"] == "slower"
        assert row["q_value"] < 0.05
        assert row["regression"] is False  # that is for --fail-on rules
    assert rows[("rerank", "p50")]["significant"] is False  # untouched
    assert rows[("model.inference", "error_rate")]["direction"] is None
    text = run("diff", str(base), str(cur), "--bootstrap", "300").stdout
    line = next(x for x in text.splitlines() if x.startswith("model.inference"))
    assert line.rstrip().endswith("slower")
    assert "-> " in line
    assert "(+20%)" in line


def test_the_same_workload_under_other_seeds_gets_no_verdicts(tmp_path: Path) -> None:
    # Ten pairs of runs of one workload: any verdict is a false discovery. The rate is
    # controlled at 5% per run, so at most one in all ten is allowed.
    verdicts = []
    for seed in range(10):
        base = write_requests(tmp_path / f"b{seed}.jsonl", workload(1000 + seed, 1500, error=0.02))
        cur = write_requests(tmp_path / f"c{seed}.jsonl", workload(2000 + seed, 1500, error=0.02))
        document = json.loads(
            run("diff", str(base), str(cur), "--format", "json", "--bootstrap", "200").stdout
        )
        verdicts += [(seed, r["stage"], r["metric"]) for r in document["rows"] if r["significant"]]
    assert len(verdicts) <= 1, verdicts


def test_long_is_the_metric_table_and_json_is_the_same_either_way(regression_pair) -> None:
    base_path, cur_path, _, _ = regression_pair
    args = ["diff", str(base_path), str(cur_path), "--bootstrap", "100"]
    short, long = run(*args).stdout, run(*args, "--long").stdout
    assert "verdict" in short.splitlines()[6] or any("verdict" in x for x in short.splitlines())
    assert any(x.startswith("stage") and "metric" in x for x in long.splitlines())
    documents = [
        json.loads(run(*args, *extra, "--format", "json").stdout) for extra in ((), ("--long",))
    ]
    assert documents[0] == documents[1]
    # CSV, like JSON, holds the metric rows and their numbers whichever view is chosen.
    for extra in ((), ("--long",)):
        csv = run(*args, *extra, "--format", "csv").stdout.splitlines()
        assert csv[0].startswith("stage,metric,baseline,current,change,change_pct,")
        assert len(csv) == len(documents[0]["rows"]) + 1


def test_min_change_raises_the_bar(regression_pair) -> None:
    base_path, cur_path, _, _ = regression_pair
    args = ["diff", str(base_path), str(cur_path), "--bootstrap", "100", "--format", "json"]
    default = rows_by(json.loads(run(*args).stdout))
    strict = rows_by(json.loads(run(*args, "--min-change", "50").stdout))
    assert default[("model.inference", "p50")]["significant"] is True
    assert strict[("model.inference", "p50")]["significant"] is False
    assert (
        strict[("model.inference", "p50")]["q_value"]
        == default[("model.inference", "p50")]["q_value"]
    )


def test_benjamini_hochberg_against_a_hand_computed_vector() -> None:
    from ml_tracelens.core.significance import benjamini_hochberg

    # m = 5; sorted p 0.01, 0.02, 0.03, 0.04, 0.5 -> m p / rank = 0.05, 0.05, 0.05, 0.05, 0.5;
    # the running minimum from the top keeps them; order as given.
    assert benjamini_hochberg([0.03, 0.5, 0.01, 0.04, 0.02]) == pytest.approx(
        [0.05, 0.5, 0.05, 0.05, 0.05]
    )
    # A large p early in rank order is pulled down by a later smaller ratio: p 0.02, 0.021 (m=2)
    # -> 0.04, 0.021 -> q = 0.021, 0.021.
    assert benjamini_hochberg([0.02, 0.021]) == pytest.approx([0.021, 0.021])
    assert benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([]) == []


def test_bootstrap_p_value_counts_the_far_side() -> None:
    from ml_tracelens.core.significance import bootstrap_p_value

    def p(deltas: list[float]) -> float:
        return pl.DataFrame({"d": deltas}).select(bootstrap_p_value(pl.col("d"))).item()

    assert p([1.0] * 999) == pytest.approx(2 * 1 / 1000)  # all above 0: (0 + 1) / (B + 1), twice
    assert p([-1.0] * 9 + [1.0]) == pytest.approx(2 * 2 / 11)
    assert p([0.0] * 10) == 1.0
