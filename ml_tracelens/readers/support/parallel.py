"""Read one large line-based file on several cores.

The file is cut into byte ranges at line boundaries; each range is read by a separate process
(the main process reads the first), and the canonical frames come back through pickling (Arrow
IPC under the hood). Line numbers inside a range are local; the main process shifts them by the
lines of the ranges before, so every ``file:line`` is exact.

Workers start from a forkserver that has imported the readers once: no fork of a process whose
polars thread pool is running, and no per-worker import cost beyond the first.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import multiprocessing
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

import polars as pl

from ml_tracelens import limits
from ml_tracelens.readers.base import MAX_PROBLEMS_KEPT, ReadResult, ReadStats

RangeReader = Callable[[Iterable[tuple[int, bytes]], str], ReadResult]
#: Below this size one process is faster than starting others.
DEFAULT_MIN_MB = 48
#: What the main process reads while a worker starts (~0.4 s at ~40 MB/s of OTLP per core, a
#: core shared with the starting worker): without it the worker finishes last. On a 1M-span
#: dump: 4.6-4.8 s with equal ranges, 4.3-4.4 s with 16 MiB more for the main process.
HEAD_START_BYTES = 16 * 1024 * 1024
BOM = b"\xef\xbb\xbf"


def worker_count(size: int) -> int:
    """How many processes to read a file of ``size`` bytes with ($TRACELENS_WORKERS caps it)."""
    try:
        configured = int(os.environ.get("TRACELENS_WORKERS", "0"))
        minimum = float(os.environ.get("TRACELENS_PARALLEL_MIN_MB", DEFAULT_MIN_MB))
    except ValueError:
        configured, minimum = 0, DEFAULT_MIN_MB
    if size < minimum * 1024 * 1024:
        return 1
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = configured or available or 1
    # At least 16 MB a process, or the configured minimum when lower (tests read small files
    # in parallel that way).
    share = min(16 * 1024 * 1024, int(minimum * 1024 * 1024))
    return max(1, min(cores, 8, (size // share if share > 0 else cores) or 1))


def line_ranges(path: Path, parts: int, *, head_start: float = 0.0) -> list[tuple[int, int]]:
    """Byte ranges covering the file, each ending just after a newline (or at the end).

    ``head_start``: the share of the file the first range gets on top of its equal part (the
    main process reads it while the workers are still starting).
    """
    size = path.stat().st_size
    limit = limits.current().max_document_bytes
    first = min(1.0, 1 / parts + head_start)
    cuts = [first + (1 - first) * i / (parts - 1) for i in range(parts - 1)] if parts > 1 else []
    bounds = [0]
    with path.open("rb") as stream:
        for cut in cuts:
            stream.seek(max(bounds[-1], int(size * cut)))
            # Skip to the next newline in bounded reads: a hostile line may be gigabytes long.
            # Past the line limit, stop cutting: the range holding it refuses that line.
            skipped = 0
            while (chunk := stream.readline(1024 * 1024)) and not chunk.endswith(b"\n"):
                skipped += len(chunk)
                if skipped > limit:
                    break
            if skipped > limit:
                break
            position = stream.tell()
            if position >= size:
                break
            if position > bounds[-1]:
                bounds.append(position)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _lines(path: Path, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    limit = limits.current().max_document_bytes
    with path.open("rb") as stream:
        stream.seek(start)
        position = start
        number = 0
        while position < end:
            line = stream.readline(limit + 1)
            if not line:
                break
            if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
                # Line numbers are local to the range here; the byte offset is exact.
                raise limits.LimitExceeded(
                    f"{path}: the line at byte {position:,} is longer than "
                    f"{limits.format_size(limit)} (TRACELENS_MAX_DOCUMENT_BYTES); raise the limit "
                    "to read it"
                )
            position += len(line)
            number += 1
            if number == 1 and start == 0:
                line = line.removeprefix(BOM)
            yield number, line.rstrip(b"\r\n")


def _read_range(reader: RangeReader, path: Path, start: int, end: int, name: str) -> ReadResult:
    return reader(_lines(path, start, end), name)


def _read_range_to_files(
    reader: RangeReader, path: Path, start: int, end: int, name: str, scratch: str
) -> tuple[ReadStats, str, str]:
    # Frames travel as Arrow IPC files in shared memory: pickling a million spans costs
    # seconds, writing and reading the same bytes as IPC a fraction of that. lz4: half a 1M-span
    # dump reads back in 0.15 s into 255 MB, against 0.22 s and 415 MB uncompressed (mapped
    # file pages and the decoded copy both resident).
    result = _read_range(reader, path, start, end, name)
    spans_path = os.path.join(scratch, f"{start}.spans.arrow")
    logs_path = os.path.join(scratch, f"{start}.logs.arrow")
    result.spans.write_ipc(spans_path, compression="lz4")
    result.logs.write_ipc(logs_path, compression="lz4")
    return result.stats, spans_path, logs_path


def _collect(stats: ReadStats, spans_path: str, logs_path: str) -> ReadResult:
    try:
        return ReadResult(stats=stats, spans=pl.read_ipc(spans_path), logs=pl.read_ipc(logs_path))
    finally:
        for leftover in (spans_path, logs_path):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


#: File descriptors a pool of workers takes (pipes, the forkserver's sockets, semaphores, the
#: scratch files) beyond those of a read in one process: below this many free, one process.
FDS_FOR_WORKERS = 32
#: What a worker failing raises in this process: BrokenProcessPool when one was killed (the
#: OOM killer, SIGKILL), OSError when it could not write its frames (/dev/shm full) or the pool
#: could not start (no pipes or processes left).
WORKER_FAILURES = (BrokenProcessPool, OSError, RuntimeError)


def read_in_parallel(path: Path, name: str, workers: int, reader: RangeReader) -> ReadResult:
    """Read ``path`` with up to ``workers`` processes; when the workers cannot be used (too few
    file descriptors, /dev/shm full, a worker killed), their ranges are read in this process
    instead, and the result says so once in its warnings."""
    size = path.stat().st_size
    ranges = line_ranges(path, workers, head_start=min(0.5, HEAD_START_BYTES / max(size, 1)))
    if len(ranges) == 1:
        return _read_range(reader, path, *ranges[0], name)
    free = _free_file_descriptors()
    if free is not None and free < FDS_FOR_WORKERS:
        limit = limits.open_files_limit()
        results = [_read_range(reader, path, start, end, name) for start, end in ranges]
        merged = _merge(results, name)
        merged.stats.warn(
            f"read in one process: ulimit -n is {limit:,}, too few open files for reading "
            "workers (raise it to read on several cores)"
        )
        return merged
    failures: list[str] = []
    results = _read_with_workers(path, name, ranges, reader, failures)
    merged = _merge(results, name)
    if failures:
        merged.stats.warn(f"read in one process: the reading workers failed ({failures[0]})")
    return merged


def _read_with_workers(
    path: Path,
    name: str,
    ranges: list[tuple[int, int]],
    reader: RangeReader,
    failures: list[str],
) -> list[ReadResult]:
    """The results of ``ranges`` in order: the first read here, the others by workers, each
    range whose worker failed read here again (the reason appended to ``failures``)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([reader.__module__])
    scratch = _scratch_directory()
    try:
        directory = tempfile.TemporaryDirectory(dir=scratch, prefix="tracelens-")
        pool = ProcessPoolExecutor(
            max_workers=len(ranges) - 1, mp_context=context, initializer=end_quietly_on_ctrl_c
        )
    except OSError as exc:
        failures.append(_describe_failure(exc))
        return [_read_range(reader, path, start, end, name) for start, end in ranges]
    with directory, pool:
        # Submitting starts the forkserver (a fresh interpreter importing the readers: ~0.4 s)
        # and waits for it; a thread does that while this process reads the first range.
        futures: list[Future[tuple[ReadStats, str, str]]] = []
        starter = ThreadPoolExecutor(max_workers=1)
        submitted = starter.submit(
            lambda: _without_ctrl_c(
                lambda: futures.extend(
                    pool.submit(
                        _read_range_to_files, reader, path, start, end, name, directory.name
                    )
                    for start, end in ranges[1:]
                )
            )
        )
        starter.shutdown(wait=False)
        try:
            results = [_read_range(reader, path, *ranges[0], name)]
            try:
                submitted.result()
            except WORKER_FAILURES as exc:
                failures.append(_describe_failure(exc))
            for index, (start, end) in enumerate(ranges[1:]):
                try:
                    results.append(_collect(*futures[index].result()))
                except (*WORKER_FAILURES, IndexError) as exc:
                    # IndexError: the range was never submitted (the pool failed to start).
                    if not isinstance(exc, IndexError):
                        failures.append(_describe_failure(exc))
                    # Read here; an input that is itself unreadable fails here, by its name.
                    results.append(_read_range(reader, path, start, end, name))
        except BaseException:
            # A worker started after a Ctrl-C never saw it: once all are started, end them
            # rather than wait for their ranges (SIGTERM's default action, silent).
            with contextlib.suppress(BaseException):
                submitted.result()
            for child in multiprocessing.active_children():
                child.terminate()
            raise
    return results


#: What a worker does with a range's frames when the caller does not take them back: called as
#: ``sink(result, index)`` in the worker (``index`` numbers the range in the file), it writes them
#: where they belong and returns a small picklable receipt. It must be picklable itself.
RangeSink = Callable[[ReadResult, int], object]


def each_range(
    path: Path, name: str, reader: RangeReader, range_bytes: int, sink: RangeSink | None = None
) -> Iterator[ReadResult]:
    """Read ``path`` about ``range_bytes`` at a time: each range's result in file order, its
    locations those of the whole file, no more than a few ranges in memory at once. Worker
    processes read ahead while the caller uses a result; a range whose worker failed is read
    here again (its result then says so once in its warnings).

    With ``sink``, each range's frames go to the sink where they were read, and the results
    hold no rows: their ``receipt`` is the sink's, and ``line_offset`` the lines before the
    range (its frames' own locations count from the range's first line)."""
    size = path.stat().st_size
    ranges = line_ranges(path, max(1, -(-size // max(range_bytes, 1))))
    workers = min(worker_count(size), len(ranges))
    offset = 0
    for result in _ranges_read(path, name, reader, ranges, workers, sink):
        lines = result.stats.lines
        result.line_offset = offset
        yield _shifted(result, name, offset)
        offset += lines


def _ranges_read(
    path: Path,
    name: str,
    reader: RangeReader,
    ranges: list[tuple[int, int]],
    workers: int,
    sink: RangeSink | None,
) -> Iterator[ReadResult]:
    with tempfile.TemporaryDirectory(dir=_scratch_directory(), prefix="tracelens-") as scratch:
        # A worker's frames come back as files, unless a sink took them where they were read.
        calls: list[Callable[[], ReadResult | tuple[ReadStats, str, str]]] = [
            functools.partial(_read_range_for, reader, path, start, end, name, sink, index)
            if sink is not None or workers <= 1
            else functools.partial(_read_range_to_files, reader, path, start, end, name, scratch)
            for index, (start, end) in enumerate(ranges)
        ]
        preload = [reader.__module__] + ([sink.__module__] if sink is not None else [])
        for done, failure in in_order_on_workers(calls, workers, preload):
            result = done if isinstance(done, ReadResult) else _collect(*done)
            if failure is not None:
                result.stats.warn(
                    f"part read in one process: the reading workers failed ({failure})"
                )
            yield result


T = TypeVar("T")


def in_order_on_workers(
    calls: Sequence[Callable[[], T]], workers: int, preload: Sequence[str]
) -> Iterator[tuple[T, str | None]]:
    """Each call's result in order, run on up to ``workers`` processes (a forkserver that has
    imported ``preload``), with one call more under way than there are workers, so the next
    runs while a result is used. A call whose worker failed, or that could not be started, runs
    here instead and comes with the reason; with one worker, or too few open files for a pool,
    every call runs here. The calls must pickle (``functools.partial`` of module functions)."""
    free = _free_file_descriptors()
    if workers <= 1 or (free is not None and free < FDS_FOR_WORKERS):
        for call in calls:
            yield call(), None
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=end_quietly_on_ctrl_c
    ) as pool:
        futures: dict[int, Future[T]] = {}
        failures: list[str] = []

        def submit(index: int) -> None:
            if index >= len(calls) or failures:
                return
            try:
                futures[index] = pool.submit(calls[index])
            except WORKER_FAILURES as exc:
                failures.append(_describe_failure(exc))

        for index in range(workers + 1):
            submit(index)
        for index, call in enumerate(calls):
            future = futures.pop(index, None)
            submit(index + workers + 1)
            try:
                if future is None:  # never submitted, the pool having failed
                    raise IndexError(index)
                yield future.result(), None
            except (*WORKER_FAILURES, IndexError) as exc:
                if not isinstance(exc, IndexError):
                    failures.append(_describe_failure(exc))
                yield call(), failures[0]


def _read_range_for(
    reader: RangeReader,
    path: Path,
    start: int,
    end: int,
    name: str,
    sink: RangeSink | None,
    index: int,
) -> ReadResult:
    """A range read, its frames handed to ``sink`` when there is one (then only the accounting
    and the receipt are returned)."""
    result = _read_range(reader, path, start, end, name)
    if sink is None:
        return result
    receipt = sink(result, index)
    return ReadResult(stats=result.stats, receipt=receipt)


def _shifted(result: ReadResult, name: str, offset: int) -> ReadResult:
    """A range's result with its line numbers counted from the start of the file."""
    prefix = f"{name}:"
    result.stats.problems = [
        (_shift(location, prefix, offset), reason) for location, reason in result.stats.problems
    ]
    result.spans = shift_sources(result.spans, prefix, offset)
    result.logs = shift_sources(result.logs, prefix, offset)
    return result


def _scratch_directory() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _free_file_descriptors() -> int | None:
    """How many more files this process may open, None when unlimited or unknown."""
    limit = limits.open_files_limit()
    if limit is None:
        return None
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
    return limit - in_use


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, BrokenProcessPool):
        return "a worker process ended abruptly, killed or out of memory"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and ("No space left" in text or exc.errno == errno.ENOSPC):
        return f"no space left in {_scratch_directory()} for their results"
    return text


def _without_ctrl_c(start: Callable[[], None]) -> None:
    """Run ``start`` (which starts the processes) with SIGINT blocked in this thread.

    Ctrl-C goes to every process of the terminal's group. A process inherits the signal mask of
    the thread that starts it, through exec: blocked, SIGINT cannot interrupt the forkserver
    while it imports the readers (a traceback on stderr); each worker unblocks it in
    ``end_quietly_on_ctrl_c``. Only the main process reports the interrupt, in one line.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    start()


def end_quietly_on_ctrl_c() -> None:
    """In a worker: Ctrl-C ends it at once and silently (the default action, not a
    KeyboardInterrupt traceback); a SIGINT tracelens was started ignoring stays ignored."""
    if hasattr(signal, "pthread_sigmask"):
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _merge(results: list[ReadResult], name: str) -> ReadResult:
    stats = ReadStats(format=results[0].stats.format)
    spans, logs = [], []
    offset = 0
    prefix = f"{name}:"
    for result in results:
        part = result.stats
        stats.lines += part.lines
        stats.records += part.records
        for what, count in part.ignored.items():
            stats.ignore(what, count)
        room = MAX_PROBLEMS_KEPT - len(stats.problems)
        stats.problems.extend(
            (_shift(location, prefix, offset), reason) for location, reason in part.problems[:room]
        )
        stats.skipped += part.skipped
        stats.skipped_items += part.skipped_items
        spans.append(shift_sources(result.spans, prefix, offset))
        logs.append(shift_sources(result.logs, prefix, offset))
        offset += part.lines
    return ReadResult(
        stats=stats, spans=pl.concat(spans, how="vertical"), logs=pl.concat(logs, how="vertical")
    )


def _shift(location: str, prefix: str, offset: int) -> str:
    """``file:N`` or ``file:N#span K`` of a worker's range -> the same place in the file."""
    if not offset or not location.startswith(prefix):
        return location
    number, hash_mark, rest = location[len(prefix) :].partition("#")
    if not number.isdigit():
        return location
    return f"{prefix}{int(number) + offset}{hash_mark}{rest}"


def shift_sources(frame: pl.DataFrame, prefix: str, offset: int) -> pl.DataFrame:
    """``frame`` with the ``file:N`` (or ``file:N#span K``) of its ``source`` column moved
    ``offset`` lines on, as ``_shift`` does one location.

    Spans of one line share its text: when the values repeat, only the distinct ones are moved
    and joined back, so the spans keep sharing them (a join gathers views of one buffer).
    """
    if not offset or frame.is_empty():
        return frame
    parts = pl.col("source").str.extract_groups(f"^{re.escape(prefix)}([0-9]+)(#.*)?$")
    number = parts.struct.field("1").cast(pl.Int64, strict=False)
    shifted = (
        pl.when(number.is_not_null())
        .then(
            pl.lit(prefix)
            + (number + offset).cast(pl.String)
            + parts.struct.field("2").fill_null("")
        )
        .otherwise(pl.col("source"))
    )
    distinct = frame.select(pl.col("source").unique())
    if 2 * distinct.height > frame.height:
        return frame.with_columns(source=shifted)
    moved = distinct.with_columns(_shifted=shifted)
    return (
        frame.join(moved, on="source", how="left", maintain_order="left", nulls_equal=True)
        .with_columns(source=pl.col("_shifted"))
        .drop("_shifted")
    )
