"""The cache under other commands and signals: a concurrent prune, Ctrl-C and SIGTERM during a
write, and the temporary files a killed write leaves (issue 14, items 8 and 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.ingest import cache, pipeline
from tests.ingest.conftest import entry_key


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def _entry_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def _prune_everything(directory: Path) -> None:
    cache.prune(directory, max_bytes=0)
    assert not _entry_files(directory)


# --- readers survive a concurrent prune (item 8) ----------------------------------------------


def _pruned_after(
    function: Callable[..., Any], directory: Path, prunes: list[Path] | None = None
) -> Callable[..., Any]:
    """``function``, followed by another command's prune of the whole cache (each prune is
    listed in ``prunes``)."""

    def then_pruned(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        _prune_everything(directory)
        if prunes is not None:
            prunes.append(directory)
        return result

    return then_pruned


@pytest.mark.parametrize(
    ("module", "step"),
    [
        # The cache's last step once an entry's record is read and checked, before its data
        # files are read: it marks the entry as used.
        (os, "utime"),
        (pipeline, "load_cached_or_raw"),  # the scans are set up, the report queries them next
    ],
)
def test_show_survives_a_prune_of_the_entry_it_reads(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch, module: Any, step: str
) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["traces", str(dump), "-f", "json", "-q", "--no-cache"])
    trace_id = json.loads(listing.stdout)["rows"][0]["trace_id"]
    args = ["show", trace_id, str(dump), "-f", "json"]
    fresh = runner.invoke(app, [*args, "--no-cache"])
    pipeline.load_analysed([str(dump)])

    prunes: list[Path] = []
    monkeypatch.setattr(module, step, _pruned_after(getattr(module, step), cache_dir, prunes))
    warm = runner.invoke(app, args)
    assert prunes, f"{step} was not called: the prune did not happen"
    assert warm.exit_code == 0, warm.stderr
    assert warm.stdout == fresh.stdout


def test_a_scan_outlives_a_prune_of_its_entry(cache_dir: Path, dump: Path) -> None:
    telemetry, analysis = pipeline.load_analysed([str(dump)])
    hit = cache.scan(entry_key(dump))
    assert hit is not None
    _, spans, logs = hit
    _prune_everything(cache_dir)  # while the report is still querying the scans
    trace_id = analysis.spans["trace_id"][0]
    one_trace = spans.filter(pl.col("trace_id") == trace_id).collect()
    assert one_trace.equals(analysis.spans.filter(pl.col("trace_id") == trace_id))
    assert logs.collect().equals(telemetry.logs)


def test_load_survives_a_prune_between_the_record_and_the_data(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, expected = pipeline.load_analysed([str(dump)], use_cache=False)
    pipeline.load_analysed([str(dump)])
    # os.utime marks an entry as used once its record is read, before its data files are read.
    monkeypatch.setattr(os, "utime", _pruned_after(os.utime, cache_dir))
    assert cache.load(entry_key(dump)) is None
    _, analysis = pipeline.load_analysed([str(dump)])
    assert analysis.spans.equals(expected.spans)


# --- Ctrl-C and SIGTERM during a write (item 9) -----------------------------------------------


def _run_in_a_fresh_process(
    script: str, dump: Path, cache_dir: Path
) -> subprocess.CompletedProcess[str]:
    """``python -c SCRIPT DUMP`` with the test's cache, which caches inputs of any size."""
    env = {**os.environ, "TRACELENS_CACHE_DIR": str(cache_dir), "TRACELENS_CACHE_MIN_MB": "0"}
    return subprocess.run(
        [sys.executable, "-c", script, str(dump)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _signal_after(method: Callable[..., Any], signum: signal.Signals) -> Callable[..., Any]:
    def write_then_signalled(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        signal.raise_signal(signum)
        return result

    return write_then_signalled


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raising KeyboardInterrupt, as in a terminal. A test run started in the background
    by a non-interactive shell inherits SIGINT ignored, and an ignored SIGINT stays ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_after_each_parquet_write(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(
        pl.DataFrame,
        "write_parquet",
        _signal_after(pl.DataFrame.write_parquet, signal.SIGINT),
    )


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_twice_during_a_write_leaves_no_temporary_file(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler_before = signal.getsignal(signal.SIGINT)
    real_unlink = os.unlink

    def unlink_interrupted(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name.startswith(".tmp-"):
            signal.raise_signal(signal.SIGINT)
        real_unlink(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        # The first Ctrl-C arrives while the spans are written, the second during the cleanup.
        _ctrl_c_after_each_parquet_write(patched)
        patched.setattr(os, "unlink", unlink_interrupted)
        with pytest.raises(KeyboardInterrupt):
            pipeline.load_analysed([str(dump)])
    assert _temporaries(cache_dir) == []
    assert _entry_files(cache_dir) == []  # the write stopped with its first file
    assert signal.getsignal(signal.SIGINT) is handler_before


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_through_the_cli_exits_130_and_leaves_no_temporary_file(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ctrl_c_after_each_parquet_write(monkeypatch)
    result = CliRunner().invoke(app, ["latency", str(dump), "-q"])
    assert result.exit_code == 130
    assert _temporaries(cache_dir) == []


def test_sigterm_during_a_write_ends_the_process_and_leaves_no_temporary_file(
    cache_dir: Path, dump: Path
) -> None:
    # In a process of its own: SIGTERM ends it, as it would have without the cache.
    script = textwrap.dedent(
        """
        import os, signal, sys
        import polars as pl
        from ml_tracelens.ingest import pipeline

        write = pl.DataFrame.write_parquet

        def write_then_terminated(self, *args, **kwargs):
            write(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)

        pl.DataFrame.write_parquet = write_then_terminated
        pipeline.load_analysed([sys.argv[1]])
        print("still running after SIGTERM")
        """
    )
    result = _run_in_a_fresh_process(script, dump, cache_dir)
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "still running" not in result.stdout
    assert _temporaries(cache_dir) == []


@pytest.mark.skipif(os.name != "posix", reason="sigaction is POSIX")
def test_a_write_puts_back_the_sigint_handler_polars_installed(cache_dir: Path, dump: Path) -> None:
    # In a fresh process: polars' handler (Ctrl-C cancels a running query) sits beneath Python's
    # from the import on, and another test may already have replaced it in this one.
    script = textwrap.dedent(
        """
        import ctypes, signal, sys
        import polars
        from ml_tracelens.ingest import cache, pipeline

        libc = ctypes.CDLL(None)

        def native_sigint_handler() -> bytes:
            # struct sigaction starts with the handler's address (Linux and macOS alike).
            action = ctypes.create_string_buffer(512)
            assert libc.sigaction(signal.SIGINT, None, action) == 0
            return action.raw[: ctypes.sizeof(ctypes.c_void_p)]

        before = native_sigint_handler()
        pipeline.load_analysed([sys.argv[1]])
        key = cache.cache_key([sys.argv[1]], input_format=None, options=pipeline.ReadOptions())
        print("stored" if cache.load(key) is not None else "not stored")
        print("same handler" if native_sigint_handler() == before else "handler replaced")
        """
    )
    result = _run_in_a_fresh_process(script, dump, cache_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["stored", "same handler"]


def test_an_ignored_signal_stays_ignored_during_a_write(
    cache_dir: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A background job of a shell without job control starts with SIGINT ignored.
    _ctrl_c_after_each_parquet_write(monkeypatch)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pipeline.load_analysed([str(dump)])
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cache.load(entry_key(dump)) is not None


def test_a_completed_write_restores_the_signal_handlers(cache_dir: Path, dump: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    pipeline.load_analysed([str(dump)])
    assert cache.load(entry_key(dump)) is not None
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- prune removes what a killed write left (item 9) ------------------------------------------


def test_prune_removes_stale_temporaries_but_not_a_live_writers(
    cache_dir: Path, dump: Path
) -> None:
    pipeline.load_analysed([str(dump)])
    entry = _entry_files(cache_dir)
    stale = cache_dir / ".tmp-killed.spans.parquet"
    stale.write_bytes(b"x" * 4096)
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    live = cache_dir / ".tmp-writing.spans.parquet"
    live.write_bytes(b"x" * 4096)

    cache.prune(cache_dir, max_bytes=1 << 40)
    assert _temporaries(cache_dir) == [live.name]
    assert _entry_files(cache_dir) == entry
