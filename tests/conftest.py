from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
SAMPLE_DATA = REPO / "sample_data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"

# Deterministic output whatever the machine: UTC, a fixed width, no colour.
os.environ["TZ"] = "UTC"
os.environ["COLUMNS"] = "200"
os.environ["NO_COLOR"] = "1"
# Never touch the user's cache; tests that exercise it point it at their own directory.
# CI runs are reproducible: hypothesis explores the same examples on every run there
# (locally it keeps searching new ones).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
os.environ["TRACELENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="tracelens-test-cache-")


@pytest.fixture
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return SHARED_FIXTURES


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of the test's own that caches inputs of any size."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(directory))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    return directory


@pytest.fixture
def otel_demo_dump(shared_fixtures: Path, tmp_path: Path) -> Path:
    """A copy of the OpenTelemetry demo capture (spans and log records) the test may change."""
    path = tmp_path / "dump.jsonl"
    path.write_bytes((shared_fixtures / "otlp" / "otel-demo-capture.otlp.jsonl").read_bytes())
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the test item (``rep_call``...), for fixtures that act on a
    failure after it (the browser tests keep their screenshots then)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
