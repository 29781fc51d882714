"""`tracelens check` end to end: dumps written as OTLP/JSON from a seeded generator whose ground
truth (durations, errors) gives the expected numbers through numpy, independently of tracelens."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests.factories import Child, Request, write_requests

runner = CliRunner()
US = 1_000  # ns


def generate(seed: int, count: int) -> list[Request]:
    """fetch_features then model.inference, back to back inside the request; some failures.

    Times are whole microseconds, so every value is exact in ns, µs and ms.
    """
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        fetch = round(rng.lognormvariate(2.5, 0.4) * 1000) * US
        infer = round(rng.lognormvariate(3.5, 0.3) * 1000) * US
        failed = rng.random() < 0.05
        children = [
            Child("fetch_features", 1000 * US, fetch, error=failed and rng.random() < 0.5),
            Child("model.inference", 1000 * US + fetch, infer, error=failed),
        ]
        total = 1000 * US + fetch + infer + 500 * US
        requests.append(Request(total, error=failed, children=children))
    return requests


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Request]]:
    requests = generate(seed=11, count=400)
    return write_requests(tmp_path_factory.mktemp("check") / "run.otlp.jsonl", requests), requests


def run(*args: str):
    return runner.invoke(app, list(args))


def check_json(path: Path, *budgets: str):
    args = ["check", str(path), "--format", "json", "--quiet"]
    for budget in budgets:
        args += ["--budget", budget]
    result = run(*args)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def truth(requests: list[Request], stage: str | None) -> dict[str, np.ndarray]:
    if stage is None:
        durations = [r.duration_ns for r in requests]
        errors = [r.error for r in requests]
    else:
        spans = [c for r in requests for c in r.children if c.name == stage]
        durations = [c.duration_ns for c in spans]
        errors = [c.error for c in spans]
    return {"ms": np.array(durations, dtype=np.int64) / 1e6, "errors": np.array(errors)}


METRIC_FUNCS = {
    "mean": lambda ms: float(np.mean(ms)),
    "p50": lambda ms: float(np.percentile(ms, 50)),
    "p90": lambda ms: float(np.percentile(ms, 90)),
    "p95": lambda ms: float(np.percentile(ms, 95)),
    "p99": lambda ms: float(np.percentile(ms, 99)),
    "max": lambda ms: float(np.max(ms)),
}


@pytest.mark.parametrize("stage", [None, "model.inference", "fetch_features"])
@pytest.mark.parametrize("metric", sorted(METRIC_FUNCS))
def test_duration_metrics_match_numpy(
    dump: tuple[Path, list[Request]], stage: str | None, metric: str
) -> None:
    path, requests = dump
    expected = METRIC_FUNCS[metric](truth(requests, stage)["ms"])
    prefix = f"{stage}:" if stage else ""
    # Just above passes, just below fails: the gate agrees with numpy to 1 µs.
    above = f"{prefix}{metric}<={expected + 0.001:.3f}ms"
    below = f"{prefix}{metric}<={expected - 0.001:.3f}ms"
    result, document = check_json(path, above, below)
    assert result.exit_code == 1, result.stderr
    first, second = document["rows"]
    assert first["actual"] == pytest.approx(expected, rel=1e-12)
    assert (first["passed"], second["passed"]) == (True, False)
    assert first["stage"] == stage
    assert first["metric"] == metric
    assert first["op"] == "<="


def test_count_errors_and_error_rate_budgets_hold_to_the_generated_truth(
    dump: tuple[Path, list[Request]],
) -> None:
    path, requests = dump
    request_errors = sum(r.error for r in requests)
    infer_errors = sum(c.error for r in requests for c in r.children if c.name == "model.inference")
    fetch_errors = sum(c.error for r in requests for c in r.children if c.name == "fetch_features")
    assert 0 < fetch_errors < infer_errors == request_errors  # the generator's design
    rate = request_errors / len(requests)
    result, document = check_json(
        path,
        f"count=={len(requests)}",
        f"count>{len(requests)}",
        f"model.inference:count>={len(requests)}",
        f"errors=={request_errors}",
        f"fetch_features:errors=={fetch_errors}",
        f"error_rate<={Decimal(request_errors * 100) / len(requests)}%",
        f"error_rate<{Decimal(request_errors) / len(requests)}",
        f"fetch_features:error_rate<={fetch_errors / len(requests) + 1e-9:.9f}",
    )
    assert result.exit_code == 1
    rows = document["rows"]
    assert [row["passed"] for row in rows] == [True, False, True, True, True, True, False, True]
    assert rows[0]["actual"] == len(requests)
    assert isinstance(rows[0]["actual"], int)
    assert rows[3]["actual"] == request_errors
    assert rows[5]["actual"] == pytest.approx(rate)
    assert rows[5]["limit"] == pytest.approx(rate)


def test_self_mean_and_cp_share_budgets_hold_to_the_generated_truth(
    dump: tuple[Path, list[Request]],
) -> None:
    path, requests = dump
    # Children run back to back inside the root: the root's self time is what they leave over,
    # and each child is wholly on the critical path.
    root_self = np.mean([r.duration_ns - sum(c.duration_ns for c in r.children) for r in requests])
    infer = sum(c.duration_ns for r in requests for c in r.children if c.name == "model.inference")
    share = infer / sum(r.duration_ns for r in requests)
    result, document = check_json(
        path,
        f"POST /predict:self_mean<={root_self / 1e6 + 0.001:.3f}ms",
        f"POST /predict:self_mean<={root_self / 1e6 - 0.001:.3f}ms",
        f"model.inference:cp_share<={share + 0.0001:.4f}",
        f"model.inference:cp_share>={share * 100 + 0.01:.2f}%",
        "model.inference:self_mean>=0.1ms",
    )
    rows = document["rows"]
    assert [row["passed"] for row in rows] == [True, False, True, False, True]
    assert rows[0]["actual"] == pytest.approx(root_self / 1e6)
    assert rows[2]["actual"] == pytest.approx(share)
    assert result.exit_code == 1


def test_boundaries_are_exact_in_every_unit(tmp_path: Path) -> None:
    # Four spans of 1, 2, 3 and 4 ms: p50 = 2.5 ms, p95 = 3 + 0.85 = 3.85 ms exactly (numpy:
    # rank (n-1)*0.95 = 2.85), max = 4 ms. 3.85 has no exact float; the gate is still exact.
    children = [Child("step", 0, ms * 1_000_000) for ms in (1, 2, 3, 4)]
    path = write_requests(tmp_path / "tiny.json", [Request(10_000_000, children=children)])
    assert float(np.percentile([1, 2, 3, 4], 95)) == pytest.approx(3.85)
    equal = [
        "step:p50==2.5ms",
        "step:p95==3.85ms",
        "step:p95==3850us",
        "step:p95==3850µs",
        "step:p95==3850000ns",
        "step:p95==0.00385s",
        "step:max==4ms",
        "step:max<=4ms",
        "step:max>=4ms",
        "step:mean==2.5ms",
    ]
    result, document = check_json(path, *equal)
    assert result.exit_code == 0, document
    assert all(row["passed"] for row in document["rows"])
    strict = ["step:max<4ms", "step:max>4ms", "step:max!=4ms", "step:p95<3.85ms"]
    result, document = check_json(path, *strict)
    assert result.exit_code == 1
    assert not any(row["passed"] for row in document["rows"])


def test_a_stage_name_may_hold_colons_and_spaces(tmp_path: Path) -> None:
    children = [Child("grpc:Predict v2", 0, 5_000_000)]
    path = write_requests(tmp_path / "colon.json", [Request(9_000_000, children=children)])
    result, document = check_json(path, "grpc:Predict v2:max<=5ms", "POST /predict:max<=9ms")
    assert result.exit_code == 0
    assert [row["stage"] for row in document["rows"]] == ["grpc:Predict v2", "POST /predict"]


def test_a_stage_missing_from_the_data_fails_with_a_clear_note(
    dump: tuple[Path, list[Request]],
) -> None:
    path, _ = dump
    result, document = check_json(path, "model.inferance:p95<=1s", "p95<=1s")
    assert result.exit_code == 1
    missing, present = document["rows"]
    assert missing["passed"] is False
    assert missing["actual"] is None
    assert (
        "'model.inferance' is not in the data; did you mean 'model.inference'?" in missing["note"]
    )
    assert present["passed"] is True
    assert document["passed"] is False
    assert document["failed"] == 1
    assert document["budgets"] == 2


def test_a_far_off_stage_name_lists_the_stages(dump: tuple[Path, list[Request]]) -> None:
    path, _ = dump
    _, document = check_json(path, "zzz:p95<=1s")
    assert "'zzz' is not in the data (stages: " in document["rows"][0]["note"]
    assert "model.inference" in document["rows"][0]["note"]


def test_a_failure_shows_the_actual_value_apart_from_the_limit(tmp_path: Path) -> None:
    # step lasts 4 ms and 1 ns: "<= 4ms" fails by a nanosecond, and the note must say so
    # with digits that differ from the limit's.
    path = write_requests(
        tmp_path / "ns.json", [Request(9_000_000, children=[Child("step", 0, 4_000_001)])]
    )
    result, document = check_json(path, "step:max<=4ms", "step:max<=3.5ms", "error_rate>0%")
    assert result.exit_code == 1
    notes = [row["note"] for row in document["rows"]]
    assert notes == [
        "4.000001 ms is not <= 4 ms",
        "4 ms is not <= 3.5 ms",
        "0% is not > 0%",
    ]


def test_check_exits_0_when_budgets_pass_1_when_one_fails_and_2_on_bad_budgets(
    dump: tuple[Path, list[Request]],
) -> None:
    path, _ = dump
    ok = run("check", str(path), "--budget", "p50<10s", "--quiet")
    assert ok.exit_code == 0
    assert "PASSED" in ok.stdout
    failed = run("check", str(path), "--budget", "p50<1ms", "--format", "markdown")
    assert failed.exit_code == 1
    assert failed.stdout.startswith("### tracelens check")
    assert "| p50\\<1ms |" in failed.stdout  # markdown-escaped budget in its own cell
    csv = run("check", str(path), "--budget", "p50<1ms", "--format", "csv")
    assert csv.exit_code == 1
    assert csv.stdout.splitlines()[0].startswith("budget,actual,limit,passed")
    bad = run("check", str(path), "--budget", "p95<=120")
    assert bad.exit_code == 2
    assert "'p95<=120'" in bad.stderr
    assert "unit" in bad.stderr
    assert bad.stdout == ""
    unknown = run("check", str(path), "--budget", "p42<1s")
    assert unknown.exit_code == 2
    assert "unknown metric 'p42'" in unknown.stderr
    missing = run("check", str(path.parent / "nope.json"), "--budget", "p50<1s")
    assert missing.exit_code == 2


def test_the_json_has_the_envelope_and_one_row_per_budget_in_milliseconds(
    dump: tuple[Path, list[Request]],
) -> None:
    path, _ = dump
    result, document = check_json(path, "p50<10s")
    assert result.exit_code == 0
    assert document["report"] == "check"
    assert {"tracelens", "inputs", "warnings", "rows", "passed", "budgets", "failed"} <= set(
        document
    )
    (row,) = document["rows"]
    assert set(row) == {"budget", "stage", "metric", "op", "actual", "limit", "passed", "note"}
    assert row["limit"] == 10_000.0  # milliseconds


class TestConfig:
    def test_budgets_come_from_tracelens_toml_in_the_current_directory(
        self, dump: tuple[Path, list[Request]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path, _ = dump
        (tmp_path / "tracelens.toml").write_text(
            'budgets = ["p50<10s", "model.inference:p95<=1ms"]\n'
        )
        monkeypatch.chdir(tmp_path)
        result, document = check_json(path)
        assert result.exit_code == 1
        assert [row["budget"] for row in document["rows"]] == [
            "p50<10s",
            "model.inference:p95<=1ms",
        ]
        # --budget options add to the file's budgets.
        result, document = check_json(path, "count>=1")
        assert len(document["rows"]) == 3

    def test_budgets_come_from_the_tool_table_of_pyproject_toml(
        self, dump: tuple[Path, list[Request]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path, _ = dump
        (tmp_path / "pyproject.toml").write_text(
            '[project]\nname = "x"\n\n[tool.tracelens]\nbudgets = ["error_rate<50%"]\n'
        )
        monkeypatch.chdir(tmp_path)
        result, document = check_json(path)
        assert result.exit_code == 0
        assert [row["budget"] for row in document["rows"]] == ["error_rate<50%"]

    def test_tracelens_toml_wins_over_pyproject(
        self, dump: tuple[Path, list[Request]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path, _ = dump
        (tmp_path / "pyproject.toml").write_text('[tool.tracelens]\nbudgets = ["p50<1ns"]\n')
        (tmp_path / "tracelens.toml").write_text('budgets = ["p50<10s"]\n')
        monkeypatch.chdir(tmp_path)
        _result, document = check_json(path)
        assert [row["budget"] for row in document["rows"]] == ["p50<10s"]

    def test_no_config_and_no_budget_is_a_usage_error(
        self, dump: tuple[Path, list[Request]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path, _ = dump
        # A pyproject.toml without [tool.tracelens] is not ours.
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
        monkeypatch.chdir(tmp_path)
        result = run("check", str(path))
        assert result.exit_code == 2
        assert "no budgets" in result.stderr

    def test_a_config_named_by_the_flag_is_read_and_its_errors_exit_2(
        self, dump: tuple[Path, list[Request]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path, _ = dump
        monkeypatch.chdir(tmp_path)
        ci = tmp_path / "ci.toml"
        ci.write_text('budgets = ["p50<10s"]\nbudget = ["typo"]\n')
        result = run("check", str(path), "--config", str(ci))
        assert result.exit_code == 2
        assert "unknown key 'budget'; did you mean 'budgets'?" in result.stderr
        ci.write_text('budgets = ["p50<10"]\n')
        result = run("check", str(path), "--config", str(ci))
        assert result.exit_code == 2
        assert "ci.toml: budget 'p50<10'" in result.stderr
        ci.write_text("budgets = [\n")
        result = run("check", str(path), "--config", str(ci))
        assert result.exit_code == 2
        assert "not valid TOML" in result.stderr
        ci.write_text('budgets = "p50<10s"\n')
        result = run("check", str(path), "--config", str(ci))
        assert result.exit_code == 2
        assert "list of strings" in result.stderr
        result = run("check", str(path), "--config", str(tmp_path / "absent.toml"))
        assert result.exit_code == 2
        assert "no such file" in result.stderr
