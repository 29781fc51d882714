"""JSON-lines log reader: aliases, values, accounting, both parse paths, real library output.

Expected values are written by hand from the fixture lines (times through ``datetime``), from
the sample generator's ground truth, or from the values passed to a real logging library.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ml_tracelens import ingest, limits
from ml_tracelens.exceptions import UsageError
from ml_tracelens.readers import detect, json_logs, registry
from ml_tracelens.readers.base import InputSource, ReadOptions
from ml_tracelens.readers.support import log_blocks, log_lines
from ml_tracelens.readers.support import log_values as lv
from ml_tracelens.readers.support.log_aliases import FIELD_NAMES
from ml_tracelens.readers.support.log_fast import FastPathUnavailable
from ml_tracelens.readers.support.log_flat import plain_float
from ml_tracelens.readers.support.log_problems import COLLISIONS
from ml_tracelens.schema import LOG_SCHEMA, normalize_id
from tests.conftest import FIXTURES, SAMPLE_DATA

LOGS = FIXTURES / "logs"
UNREADABLE_TIME = "unreadable time values (kept in attributes)"
UNREADABLE_DURATION = "unreadable duration values (kept in attributes)"
MS, S = 1_000_000, 1_000_000_000


def at(
    y: int,
    mo: int,
    d: int,
    h: int = 0,
    mi: int = 0,
    s: int = 0,
    *,
    ns: int = 0,
    offset_min: int = 0,
) -> int:
    """Epoch ns of a wall-clock time at a UTC offset, through datetime (independent of the reader)."""
    seconds = int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp())
    return seconds * S + ns - offset_min * 60 * S


BASE = at(2026, 11, 26, 8, 52, 16)


def parse(name: str, field_map: dict[str, str] | None = None, path: json_logs.ParsePath = "auto"):
    data = (LOGS / name).read_bytes()
    return json_logs.parse_logs(data, name, ReadOptions(field_map=field_map or {}), path=path)


def by_case(frame: pl.DataFrame, column: str) -> dict[str, Any]:
    cases = frame.get_column("attributes").map_elements(
        lambda a: orjson.loads(a)["case"], return_dtype=pl.String
    )
    return dict(zip(cases.to_list(), frame.get_column(column).to_list(), strict=True))


def attributes(frame: pl.DataFrame) -> list[dict[str, str]]:
    return [orjson.loads(a) for a in frame.get_column("attributes")]


# --- values --------------------------------------------------------------------------------


def test_times_read_in_every_iso_layout_and_epoch_unit() -> None:
    parsed = parse("times.jsonl")
    assert (
        at(2025, 11, 26, 8, 52, 16) == 1_764_147_136 * S
    )  # the epoch values below are this instant
    assert by_case(parsed.logs, "time_ns") == {
        "iso Z micro": BASE + 891_234_000,
        "iso Z": BASE,
        "offset +01:00": BASE + 891 * MS - 3600 * S,
        "offset -05:30": BASE + 891 * MS + 19_800 * S,
        "offset +0100": BASE + 891 * MS - 3600 * S,
        "offset +01": BASE - 3600 * S,
        "nanoseconds": BASE + 123_456_789,
        "comma decimal": BASE + 891 * MS,
        "asctime": BASE + 891 * MS,
        "lowercase t z": BASE,
        "no zone is UTC": BASE,
        "no seconds": BASE - 16 * S,
        "date only": at(2026, 11, 26),
        "ecs": BASE + 891 * MS,
        "epoch s": 1_764_147_136 * S,
        "epoch s float": 1_764_147_136_891_234_000,
        "epoch ms": 1_764_147_136_891_000_000,
        "epoch us": 1_764_147_136_891_234_000,
        "epoch ns": 1_764_147_136_891_234_567,
        "epoch text": 1_764_147_136_891_234_000,
        "1e11 is ms": 10**17,
        "1e14 is us": 10**17,
        "1e17 is ns": 10**17,
        "loguru": 1_764_147_136_891_234_000,
        "seconds past Int64 ns": None,
        "feb 30": None,
        "hour 25": None,
        "words": None,
        "negative": None,
    }
    assert parsed.stats.ignored[UNREADABLE_TIME] == 5
    unreadable = {"seconds past Int64 ns", "feb 30", "hour 25", "words", "negative"}
    assert by_case(parsed.logs, "unread_reason") == {
        case: "unreadable time" if case in unreadable else None
        for case in by_case(parsed.logs, "time_ns")
    }
    unread = {a["case"]: a for a in attributes(parsed.logs)}
    assert unread["words"]["timestamp"] == "yesterday"  # kept, not lost
    assert "timestamp" not in unread["iso Z"]  # consumed
    assert unread["loguru"] == {
        "case": "loguru",
        "record.time.repr": "2025-11-26 08:52:16.891234+00:00",
    }


def test_durations_read_in_every_spelling_and_unit() -> None:
    parsed = parse("durations.jsonl")
    assert by_case(parsed.logs, "duration_ns") == {
        "ms int": 12 * MS,
        "ms float": 357_800_000,
        "ms numeric text": 357_800_000,
        "unit overrides key": 357_800_000,
        "micro sign": 49_000,
        "greek mu": 49_000,
        "us": 49_000,
        "seconds text": 1_200_000_000,
        "ns text": 250,
        "minutes": 120 * S,
        "go compound": 90_500_000_000,
        "hours": 3600 * S,
        "space before unit": 357_800_000,
        "duration number is seconds": 1_500_000_000,
        "elapsed is seconds": 250_000_000,
        "dur is ms": 7 * MS,
        "duration_us": 49_000,
        "duration_ns": 250,
        "duration_s text": 1_000,
        "ecs event.duration": 12_500_000,
        "camel": 3 * MS,
        "below a nanosecond": 0,
        "not a number": None,
        "negative": None,
        "unknown unit": None,
        "boolean": None,
        "loguru elapsed is not a duration": None,
    }
    assert parsed.stats.ignored[UNREADABLE_DURATION] == 4
    reasons = {
        "not a number": "duration not a number",
        "negative": "negative duration",
        "unknown unit": "duration not a number",
        "boolean": "duration not a number",
    }
    assert by_case(parsed.logs, "unread_reason") == {
        case: reasons.get(case) for case in by_case(parsed.logs, "duration_ns")
    }
    kept = {a["case"]: a for a in attributes(parsed.logs)}
    assert kept["not a number"]["duration_ms"] == "abc"
    assert kept["negative"]["duration_ms"] == "-5"
    assert kept["loguru elapsed is not a duration"]["record.elapsed.seconds"] == "1"


def test_the_fields_of_common_loggers_are_read_by_their_aliases() -> None:
    logs = parse("plain.jsonl").logs
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    columns = [
        "time_ns",
        "level",
        "message",
        "trace_id",
        "span_id",
        "correlation_id",
        "service",
        "stage",
        "duration_ns",
        "error_message",
    ]
    want = [
        # pino: numeric level, epoch ms, req.id, responseTime (ms)
        (1_764_147_136_891 * MS, "info", "request completed", None, None, "7", None, None, 12 * MS, None),
        # Cloud Logging: severity, trace with its projects/ prefix, operation, numeric text
        (BASE + 891_234_567, "warn", "slow", trace, "00f067aa0ba902b7", trace, "ranker", "rerank", 41_500_000, None),
        # OpenTelemetry logging instrumentation outside a span writes "0" ids: no trace
        (1_764_147_136_500 * MS, "error", "no span", None, None, "req-9", "svc", "fetch", 250 * MS, "timeout after 250ms"),
        # zap-like: seconds float, x-request-id, span_name, unitless dur with units
        (1_764_147_136_891_234_000, "warn", "batch done", None, None, "c0ffee", None, "infer", 90_500_000_000, None),
        # traceback: its last line is the error; critical -> fatal; no zone = UTC
        (BASE, "fatal", "disk full", None, None, "corr-1", "writer", "save", 49_000, "OSError: [Errno 28] No space left on device"),
        # a non-hex value under a trace key correlates but is no trace id; "error": true is no
        # message, so the error line's own message is
        (BASE - 3600 * S, "error", "x", None, "abcdef0123456789", "req-abc", "svc2", None, 2 * S, "x"),
        # structlog: event is the message; a 16-hex trace id; a request id wins the correlation
        (BASE, "info", "stage finished", "4bf92f3577b34da6", None, "r-7", None, "embed", 300_000, None),
        (None, None, None, None, None, None, None, None, None, None),
    ]  # fmt: skip
    assert logs.select(columns).rows() == want
    # error lines: level error, critical, err (with "error": true)
    want_error = [False, False, True, False, True, True, False, False]
    assert logs.get_column("error").to_list() == want_error
    assert attributes(logs) == [
        {"hostname": "web-1", "pid": "4242", "req.method": "POST", "req.url": "/predict"},
        {},
        {"otelSpanID": "0", "otelTraceID": "0"},
        {"caller": "infer/run.go:42", "took": "357.8ms"},
        {},
        {"error": "true"},
        {},
        {},
    ]
    assert logs.get_column("source").to_list() == [f"plain.jsonl:{n}" for n in range(1, 9)]


def test_ecs_fields_are_read_and_the_rest_kept_as_attributes() -> None:
    logs = parse("ecs.jsonl").logs
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert logs.select("time_ns", "level", "message", "trace_id", "span_id", "correlation_id", "service", "duration_ns", "error_message").rows() == [
        (BASE + 891 * MS, "info", "request received", trace, "00f067aa0ba902b7", trace, "api", None, None),
        (BASE + 1250 * MS, "warn", "slow batch", trace, None, trace, "api", 358 * MS, None),
        (BASE + 1300 * MS - 3600 * S, "error", "inference failed", None, None, "tx-9", "api", None, "RuntimeError: CUDA out of memory"),
    ]  # fmt: skip
    assert attributes(logs) == [
        {
            "ecs.version": "1.6.0",
            "http.request.method": "POST",
            "transaction.id": "00f067aa0ba902b7",
        },
        {"event.action": "infer", "labels.batch": "8", "log.logger": "app.infer"},
        {"error.type": "RuntimeError"},
    ]


@pytest.mark.parametrize(
    ("level", "want"),
    [
        ("warning", "warn"), ("WARNING", "warn"), ("critical", "fatal"), ("err", "error"),
        ("INFO", "info"), (" Debug ", "debug"), ("notice", "info"), ("trace", "trace"),
        (30, "info"), (50, "error"), (60, "fatal"), (3, "error"), (7, "debug"), ("custom", "custom"),
    ],
)  # fmt: skip
def test_levels_are_normalized(level: object, want: str) -> None:
    data = orjson.dumps({"level": level, "msg": "x"}) + b"\n"
    assert json_logs.parse_logs(data, "f", ReadOptions()).logs.item(0, "level") == want


UTC_STAMPS = {
    "2026-11-26T08:52:16.891234Z": BASE + 891_234_000,
    "2026-11-26T08:52:16.1Z": BASE + 100 * MS,
    "2026-11-26T08:52:16.1234567891Z": BASE + 123_456_789,  # digits past the ns dropped
    "2026-11-26T08:52:60.5Z": BASE + 44 * S + 500 * MS,  # a leap second
    "2026-02-30T08:52:16.5Z": None,
    "2026-11-26T24:52:16.5Z": None,
}


@pytest.mark.parametrize("odd_one", [None, ("2026-11-26 08:52:16+01:00", BASE - 3600 * S)])
def test_utc_times_read_the_same_written_alike_or_not(odd_one: tuple[str, int] | None) -> None:
    # A column of one UTC layout is read by slices alone; one other spelling takes the whole
    # column through the general rules. Either way each row reads the same.
    stamps = dict(UTC_STAMPS)
    if odd_one is not None:
        stamps[odd_one[0]] = odd_one[1]
    data = b"".join(orjson.dumps({"msg": "m", "timestamp": t}) + b"\n" for t in stamps)
    parsed = json_logs.parse_logs(data, "f", ReadOptions())
    assert parsed.logs.get_column("time_ns").to_list() == list(stamps.values())
    assert parsed.stats.ignored[UNREADABLE_TIME] == 2


TRACE_32 = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_16 = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "odd_one", [None, ("0X4BF92F3577B34DA6A3CE929D0E0E4736", "0x00F067AA0BA902B7", "WARNING")]
)
def test_ids_and_levels_read_the_same_canonical_or_not(
    odd_one: tuple[str, str, str] | None,
) -> None:
    # Columns whose every value is canonical skip the per-row rules; one odd value takes them all
    # through the rules again. Either way each row reads the same.
    rows = [(TRACE_32, TRACE_16, "info"), (TRACE_16, "1", "error"), (None, None, "warn")]
    if odd_one is not None:
        rows.append(odd_one)
    data = b"".join(
        orjson.dumps(
            {"msg": "m", "level": level}
            | ({"trace_id": trace} if trace else {})
            | ({"span_id": span} if span else {})
        )
        + b"\n"
        for trace, span, level in rows
    )
    logs = json_logs.parse_logs(data, "f", ReadOptions()).logs
    want_traces = [TRACE_32, TRACE_16, None] + ([TRACE_32] if odd_one else [])
    assert logs.get_column("trace_id").to_list() == want_traces
    assert logs.get_column("correlation_id").to_list() == want_traces
    want_spans = [TRACE_16, "0000000000000001", None] + ([TRACE_16] if odd_one else [])
    assert logs.get_column("span_id").to_list() == want_spans
    want_levels = ["info", "error", "warn"] + (["warn"] if odd_one else [])
    assert logs.get_column("level").to_list() == want_levels
    assert attributes(logs) == [{}] * len(rows)


_HEX = st.text(alphabet="0123456789abcdefABCDEFxX ", min_size=0, max_size=34)
_CANONICAL_HEX = st.sampled_from([16, 32]).flatmap(
    lambda n: st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)
)
_LEVEL_WORDS = st.sampled_from(["info", "warn", "error", "debug", "INFO", " warn", "", "custom"])
_TIMES = st.builds(
    lambda day, second, digits, z: (
        f"2026-02-{day:02d}T{second // 60 % 60:02d}:{second % 60:02d}:{second % 61:02d}.{digits}{z}"
    ),
    st.integers(1, 31),
    st.integers(0, 5000),
    st.text(alphabet="0123456789", min_size=1, max_size=12),
    st.sampled_from(["Z", "Z", "+01:00", ""]),
)


def _column_agrees(
    values: list[str | None], check: Any, shortcut: pl.Expr, general: pl.Expr
) -> None:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    if frame.select(check(pl.col("v"))).item():
        got = frame.with_columns(shortcut.alias("out")).get_column("out")
        assert got.to_list() == frame.with_columns(general.alias("out")).get_column("out").to_list()


@settings(max_examples=200, deadline=None)
@given(st.lists(_CANONICAL_HEX | _HEX | st.none(), max_size=6))
@example(["0" * 16 + "4bf92f3577b34da6", "4bf92f3577b34da6"])
@example(["00f067aa0ba902b7", "abc", None])
def test_id_shortcuts_give_the_rules_values(values: list[str | None]) -> None:
    text = pl.col("v")
    _column_agrees(values, lv.canonical_trace_ids, text, lv.hex_trace_id(text))
    _column_agrees(
        values, lv.canonical_trace_ids, pl.lit(None, pl.String), lv.non_hex_trace_id(text)
    )
    _column_agrees(values, lv.canonical_span_ids, text, lv.span_id(text))
    # A checked column is one normalize_logs need not normalize again.
    _column_agrees(values, lv.canonical_trace_ids, text, normalize_id("v"))
    _column_agrees(values, lv.canonical_span_ids, text, normalize_id("v"))


@settings(max_examples=200, deadline=None)
@given(st.lists(_LEVEL_WORDS | st.none(), max_size=6), st.lists(_TIMES | st.none(), max_size=6))
def test_level_and_time_shortcuts_give_the_rules_values(
    levels: list[str | None], times: list[str | None]
) -> None:
    _column_agrees(levels, lv.canonical_levels, pl.col("v"), lv.normalize_level(pl.col("v")))
    frame = pl.DataFrame({"v": times}, schema={"v": pl.String})
    if frame.select(lv.utc_layout(pl.col("v"))).item():
        fast = lv.parse_utc_layout(frame.lazy(), "v", "t").collect().get_column("t")
        general = lv.parse_time(frame.lazy(), "v", "t").collect().get_column("t")
        assert fast.to_list() == general.to_list()


def test_attributes_are_text_sorted_and_nulls_omitted() -> None:
    parsed = parse("attributes.jsonl")
    first, second = parsed.logs.get_column("attributes").to_list()
    assert orjson.loads(first) == {
        "big": "12345678901234567890",
        "esc": 'quote" back\\ nl\n tab\t',
        "foo": "bar",
        "i": "-3",
        "n": "1.5",
        "nested.x.z": "0.0000001",
        "ok": "false",
        "tags": '["a",1,null]',
        "uni": "é中😀",
    }
    assert list(orjson.loads(first)) == sorted(orjson.loads(first))
    # {"log.level": ..., "log": {"level": ...}}: the shallower spelling wins, the other is counted
    assert parsed.logs.item(1, "level") == "info"
    assert orjson.loads(second) == {"log.origin": "x"}
    assert parsed.stats.ignored[COLLISIONS] == 1


def test_plain_float_spells_numbers_positionally() -> None:
    assert [plain_float(x) for x in (3.0, 1e-7, 1e16, -0.0, 357.8, 1764147136.891234, 1.5e300)] == [
        "3", "0.0000001", "10000000000000000", "-0", "357.8", "1764147136.891234", "15" + "0" * 299,
    ]  # fmt: skip


# --- field overrides -----------------------------------------------------------------------

OVERRIDES = {
    "time": "when",
    "level": "sev",
    "message": "text",
    "correlation_id": "record.extra.req",
    "trace_id": "tid",
    "span_id": "sid",
    "parent_span_id": "psid",
    "service": "svc",
    "stage": "phase",
    "duration": "took",
    "error": "boom",
}


def test_field_map_replaces_the_aliases() -> None:
    assert set(OVERRIDES) == set(FIELD_NAMES)
    logs = parse("overrides.jsonl", OVERRIDES).logs
    assert logs.drop("attributes", "source").row(0) == (
        BASE, "warn", "hello", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
        "00f067aa0ba902b6", "nested-req", "api", "infer", 12 * MS, "bad thing", True, None,
    )  # fmt: skip
    # The built-in aliases no longer apply, so their keys are plain attributes.
    assert attributes(logs) == [
        {
            "error": "not this one either",
            "message": "not this one",
            "parent_id": "00f067aa0ba902b5",
            "rid": "abc",
            "timestamp": "2000-01-01T00:00:00Z",
        }
    ]


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ("took", 12 * MS),
        ("took:s", 12 * S),
        ("took:us", 12_000),
        ("took:ns", 12),
        ("nope_ms", None),
    ],
)
def test_a_duration_field_named_by_the_user_takes_the_unit_after_its_colon(
    key: str, want: int | None
) -> None:
    assert parse("overrides.jsonl", {"duration": key}).logs.item(0, "duration_ns") == want


@pytest.mark.parametrize("field_map", [{"latency": "took_ms"}, {"time_ns": "ts"}, {"duration": ""}])
def test_bad_field_names_are_usage_errors(field_map: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=r"^fields "):
        parse("overrides.jsonl", field_map)
    source = InputSource("x", lambda: io.BytesIO(b'{"a":1}\n'))
    with pytest.raises(UsageError):
        json_logs.read(source, ReadOptions(field_map=field_map))


# --- bad lines and accounting --------------------------------------------------------------


def test_bad_lines_are_counted_with_their_location() -> None:
    parsed = parse("bad_lines.jsonl")
    stats = parsed.stats
    assert (stats.lines, stats.records, stats.skipped) == (14, 6, 8)
    assert stats.lines == stats.records + stats.skipped
    assert stats.ignored == {"blank lines": 2, UNREADABLE_DURATION: 1}
    assert [location for location, _ in stats.problems] == [
        f"bad_lines.jsonl:{n}" for n in (3, 4, 5, 6, 7)
    ]
    reasons = [reason for _, reason in stats.problems]
    assert reasons[0].startswith("truncated or invalid JSON")
    assert reasons[1:] == [
        "invalid UTF-8",
        "NUL byte in line",
        "not a JSON object (a number)",
        "not a JSON object (an array)",
    ]
    logs = parsed.logs
    assert logs.get_column("source").to_list() == [f"bad_lines.jsonl:{n}" for n in (1, 11, 12, 14)]
    # "duration_ms": "abc": the row stays, the duration is null, the text is kept
    assert logs.row(1, named=True) | {"time_ns": None} == logs.row(1, named=True)
    assert (logs.item(1, "stage"), logs.item(1, "duration_ns"), logs.item(1, "level")) == (
        "s",
        None,
        "warn",
    )
    assert orjson.loads(logs.item(1, "attributes")) == {"duration_ms": "abc"}
    with pytest.raises(FastPathUnavailable):
        parse("bad_lines.jsonl", path="fast")


def test_every_bad_line_is_counted_and_the_first_five_are_kept() -> None:
    data = b"".join(b"%d\n" % n for n in range(20)) + b'{"msg":"ok"}\n'
    stats = json_logs.parse_logs(data, "f", ReadOptions()).stats
    assert (stats.lines, stats.records, stats.skipped, len(stats.problems)) == (21, 1, 20, 5)


def test_a_dump_cut_short_keeps_the_fast_path() -> None:
    fast = parse("truncated_last.jsonl", path="fast")
    python = parse("truncated_last.jsonl", path="python")
    assert fast.stats == python.stats
    assert (fast.stats.lines, fast.stats.records, fast.stats.skipped) == (4, 3, 1)
    assert fast.stats.problems[0][0] == "truncated_last.jsonl:4"
    assert_frame_equal(fast.logs, python.logs)
    assert fast.logs.get_column("duration_ns").to_list() == [5 * MS, 7 * MS]


def test_blank_input_a_bom_and_crlf_read_alike_on_both_paths() -> None:
    for path in ("fast", "python"):
        empty = json_logs.parse_logs(b"", "f", ReadOptions(), path=path)
        assert (empty.stats.lines, empty.logs.height) == (0, 0)
        blank = json_logs.parse_logs(b"\n \n\t", "f", ReadOptions(), path="python")
        assert (blank.stats.lines, blank.stats.records, blank.stats.ignored) == (
            3,
            3,
            {"blank lines": 3},
        )
        data = b'\xef\xbb\xbf{"msg":"a"}\r\n{"msg":"b"}\r\n'
        parsed = json_logs.parse_logs(data, "f", ReadOptions(), path=path)
        assert parsed.logs.get_column("message").to_list() == ["a", "b"]
        assert (parsed.stats.lines, parsed.stats.skipped) == (2, 0)


def test_lines_nested_past_the_depth_limit_are_skipped() -> None:
    deep = b'{"a":' * 200 + b"1" + b"}" * 200
    data = b'{"msg":"ok"}\n' + deep + b"\n"
    parsed = json_logs.parse_logs(data, "f", ReadOptions())
    assert parsed.stats.skipped == 1
    assert parsed.stats.problems == [("f:2", limits.depth_reason(limits.current().max_json_depth))]
    assert parsed.logs.height == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet='[]{}"a\\', max_size=20), min_size=1, max_size=6), st.integers(1, 6)
)
def test_the_block_depth_bound_never_misses_a_deep_line(lines: list[str], depth: int) -> None:
    encoded = [line.encode() for line in lines]
    if any(limits.too_deep(line, depth) for line in encoded):
        assert log_lines.may_nest_deeper(b"\n".join(encoded), depth)


def test_a_line_longer_than_the_document_limit_is_refused() -> None:
    data = b'{"msg":"ok"}\n{"msg":"' + b"x" * 5000 + b'"}\n'
    limits.configure(max_document_bytes=1000)
    try:
        with pytest.raises(limits.LimitExceeded, match="f:2"):
            json_logs.read(InputSource("f", lambda: io.BytesIO(data)), ReadOptions())
    finally:
        limits.configure()


def _source(data: bytes, kind: str, tmp_path: Path) -> InputSource:
    """``data`` as a file on disk (blocks are cut by seeking) or as a stream (by reading on)."""
    if kind == "stream":
        return InputSource("f", lambda: io.BytesIO(data))
    path = tmp_path / "f"
    path.write_bytes(data)
    return InputSource("f", lambda: path.open("rb"), path=path)


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_a_long_line_across_a_block_boundary_is_refused(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b'{"msg":"ok"}\n' * 3 + b'{"msg":"' + b"x" * 5000 + b'"}\n{"msg":"ok"}\n'
    monkeypatch.setattr(log_blocks, "BLOCK_BYTES", 20)
    limits.configure(max_document_bytes=1000)
    try:
        with pytest.raises(limits.LimitExceeded, match="f:4"):
            json_logs.read(_source(data, kind, tmp_path), ReadOptions())
    finally:
        limits.configure()


@given(
    lines=st.lists(
        st.tuples(st.integers(0, 9), st.sampled_from([b"", b"", b"\r", b"\r\r"])), max_size=12
    ),
    newline_at_end=st.booleans(),
    limit=st.integers(0, 9),
)
def test_the_first_long_line_of_a_block_is_found_as_splitting_finds_it(
    lines: list[tuple[int, bytes]], newline_at_end: bool, limit: int
) -> None:
    block = b"\n".join(b"x" * length + returns for length, returns in lines)
    block += b"\n" if newline_at_end and block else b""
    by_splitting = next(
        (i for i, line in enumerate(block.split(b"\n")) if len(line.rstrip(b"\r")) > limit), None
    )
    assert log_blocks.first_long_line(block, limit) == by_splitting


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_a_line_of_exactly_the_limit_starting_a_block_is_read(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = b'{"msg":"ok"}\n'
    longest = b'{"msg":"' + b"x" * (1000 - 10) + b'"}'  # 1000 bytes, then its newline
    data = first + longest + b"\n" + first
    monkeypatch.setattr(log_blocks, "BLOCK_BYTES", len(first))  # the 2nd line starts a block
    limits.configure(max_document_bytes=1000)
    try:
        read = json_logs.read(_source(data, kind, tmp_path), ReadOptions())
    finally:
        limits.configure()
    assert read.logs.get_column("message").to_list() == ["ok", "x" * 990, "ok"]
    assert read.logs.get_column("source").to_list() == ["f:1", "f:2", "f:3"]


# --- both parse paths ------------------------------------------------------------------------

FAST_FIXTURES = [
    "ecs.jsonl", "plain.jsonl", "durations.jsonl", "times.jsonl", "overrides.jsonl", "stages.jsonl",
    "truncated_last.jsonl",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.jsonl")))
def test_fast_path_equals_line_by_line(name: str) -> None:
    field_map = OVERRIDES if name == "overrides.jsonl" else None
    python = parse(name, field_map, path="python")
    if name not in FAST_FIXTURES:
        with pytest.raises(FastPathUnavailable):
            parse(name, field_map, path="fast")
        return
    fast = parse(name, field_map, path="fast")
    assert (fast.path, python.path) == ("fast", "python")
    assert_frame_equal(fast.logs, python.logs)
    assert fast.stats == python.stats
    assert parse(name, field_map).path == "fast"  # "auto" takes it


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_block_reading_equals_one_parse(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"".join(
        (LOGS / n).read_bytes()
        for n in ("plain.jsonl", "bad_lines.jsonl", "times.jsonl", "durations.jsonl")
    )
    whole = json_logs.parse_logs(data, "f", ReadOptions(), path="python")
    monkeypatch.setattr(log_blocks, "BLOCK_BYTES", 300)
    read = json_logs.read(_source(data, kind, tmp_path), ReadOptions())
    assert_frame_equal(read.logs, whole.logs)
    assert (read.stats.lines, read.stats.records, read.stats.skipped) == (
        whole.stats.lines,
        whole.stats.records,
        whole.stats.skipped,
    )
    assert read.stats.ignored == whole.stats.ignored
    assert read.stats.problems == whole.stats.problems
    assert read.logs.schema == LOG_SCHEMA


_KEYS = st.sampled_from(
    ["a", "b.c", "level", "msg", "request_id", "trace_id", "duration_ms", "ts", "stage", "x y", "é"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.5, 1608882928643910.25, 1e-7, 1e16, 357.8, 1764147136.891234])
    | st.text(max_size=8)
    | st.sampled_from(
        ["12ms", "1m30s", "info", "WARNING", "4bf92f3577b34da6a3ce929d0e0e4736", ":x", "0"]
    )
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.dictionaries(_KEYS, inner, max_size=3) | st.lists(inner, max_size=2),
    max_leaves=6,
)
_LINES = st.lists(
    st.dictionaries(_KEYS, _VALUES, max_size=5) | st.sampled_from([b"", b"42", b'{"a":']),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LINES, st.booleans(), st.booleans())
def test_paths_agree_on_generated_lines(lines: list[Any], compact: bool, ascii_only: bool) -> None:
    separators = (",", ":") if compact else (", ", ": ")

    def encode(line: Any) -> bytes:
        if isinstance(line, bytes):
            return line
        return json.dumps(line, separators=separators, ensure_ascii=ascii_only).encode()

    data = b"\n".join(map(encode, lines)) + b"\n"
    python = json_logs.parse_logs(data, "g", ReadOptions(), path="python")
    stats = python.stats
    assert stats.lines == len(lines) == stats.records + stats.skipped
    assert python.logs.height == sum(isinstance(line, dict) for line in lines)
    try:
        fast = json_logs.parse_logs(data, "g", ReadOptions(), path="fast")
    except FastPathUnavailable:
        return
    assert_frame_equal(fast.logs, python.logs)
    assert fast.stats == python.stats


@pytest.mark.parametrize(
    "value", [b'"\\ud800"', b'"a\\udfff"', b'"\\u0000"', b'"\\\\ud800"', b'"\\n"']
)
def test_escapes_after_the_first_line_are_read_as_the_line_path_reads_them(value: bytes) -> None:
    data = b'{"msg":"z"}\n{"msg":"a","x":' + value + b'}\n{"msg":"b","x":"ok"}\n'
    python = json_logs.parse_logs(data, "g", ReadOptions(), path="python")
    auto = json_logs.parse_logs(data, "g", ReadOptions())
    assert_frame_equal(auto.logs, python.logs)
    assert auto.stats == python.stats


@pytest.mark.parametrize(
    "number",
    [b"1e22", b"1.5e-7", b"-2E5", b"1608882928643910.25", b"12345678901234567890123", b"-0.0",
     b"9007199254740993", b"0.1", b"1764147136.891234", b"-1234567890123456.5"],
)  # fmt: skip
def test_numbers_are_spelled_as_the_line_path_spells_them(number: bytes) -> None:
    data = b'{"msg":"z","n":1}\n{"msg":"a","n":' + number + b"}\n"
    python = json_logs.parse_logs(data, "g", ReadOptions(), path="python")
    auto = json_logs.parse_logs(data, "g", ReadOptions())
    assert_frame_equal(auto.logs, python.logs)


# Realistic dumps: one type per key, keys sometimes missing or null; the fast path should apply.
_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "ts": st.floats(1e9, 2e9) | st.none(),
        "level": st.sampled_from(["info", "warning", "ERROR", "debug"]),
        "event": st.text(max_size=12),
        "request_id": st.text(min_size=1, max_size=6),
        "stage": st.sampled_from(["embed", "infer", "post"]),
        "duration_ms": st.floats(0, 1e6) | st.integers(0, 10**6),
        "batch": st.integers(-(2**63), 2**63 - 1),
        "ok": st.booleans(),
        "ctx": st.fixed_dictionaries(
            {}, optional={"model": st.text(max_size=5), "score": st.floats(-1e3, 1e3)}
        ),
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RECORDS, min_size=1, max_size=30))
def test_paths_agree_on_realistic_dumps(records: list[dict[str, Any]]) -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    python = json_logs.parse_logs(data, "g", ReadOptions(), path="python")
    try:
        fast = json_logs.parse_logs(data, "g", ReadOptions(), path="fast")
    except FastPathUnavailable as exc:
        # Only the documented conservative cases may turn such a dump away (see log_fast).
        reason = str(exc)
        texts = [
            t
            for r in records
            for t in (*r.values(), *r.get("ctx", {}).values())
            if isinstance(t, str)
        ]
        assert (
            "tie" in reason
            or ("64 bits" in reason and any(abs(r.get("batch", 0)) >= 10**18 for r in records))
            or ("NUL" in reason and any("\x00" in t for t in texts))
            or ("keys in the bytes" in reason and any(t.startswith(":") for t in texts))
            # a string that looks like a JSON list is refused conservatively
            or ("list values" in reason and any("[" in t for t in texts))
        ), reason
        return
    assert_frame_equal(fast.logs, python.logs)
    assert fast.stats == python.stats


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "claimed"),
    [
        (b'{"msg":"x"}\n', True),
        (b'\n\n  {"msg":"x"}\n', True),
        (b'\xef\xbb\xbf{"msg":"x"}', True),
        (b'{"msg":"' + b"x" * 100, True),  # a first line longer than the sniffed head
        (b"[1, 2]\n", False),
        (b"{\n", False),  # pretty-printed documents belong to other readers
        (b"hello\n", False),
        (b"", False),
        # a start-up banner before the JSON lines
        (b"[INFO] Booting worker\n" * 15 + b'{"msg":"x"}\n' * 10, True),
        # lines holding NaN, as Python's json writes them
        (b'{"msg":"x","score":NaN}\n' * 15 + b'{"msg":"x"}\n' * 5, True),
        (b'{"msg":"x","score":-Infinity}\n', True),
        # a text log with one JSON line in it
        (b"plain text\n" * 30 + b'{"msg":"x"}\n' + b"plain text\n" * 30, False),
    ],
)
def test_sniff_claims_json_lines_and_leaves_other_documents(head: bytes, claimed: bool) -> None:
    assert json_logs.sniff(head) is claimed


@pytest.mark.parametrize("path", ["auto", "python"])
def test_a_line_with_nan_is_skipped_saying_so(path: json_logs.ParsePath) -> None:
    lines = [b'{"msg":"a","score":NaN}', b'{"msg":"b"}', b'{"msg":"c","score":Infinity}']
    data = b"\n".join(lines) + b"\n"
    parsed = json_logs.parse_logs(data, "app.log", ReadOptions(), path=path)
    assert parsed.logs.get_column("message").to_list() == ["b"]
    assert [where for where, _ in parsed.stats.problems] == ["app.log:1", "app.log:3"]
    assert all("NaN or Infinity" in reason for _, reason in parsed.stats.problems)


def test_other_formats_are_detected_first() -> None:
    assert registry()["json-logs"].priority == 90
    assert detect(b'{"resourceSpans":[]}\n').name == "otlp-json"
    assert detect((LOGS / "ecs.jsonl").read_bytes()).name == "json-logs"


# --- real library output ---------------------------------------------------------------------


def read_file(path: Path) -> pl.DataFrame:
    result = json_logs.read(
        InputSource(path.name, lambda: path.open("rb"), path=path), ReadOptions()
    )
    assert result.stats.skipped == 0
    assert json_logs.parse_logs(path.read_bytes(), path.name, ReadOptions()).path == "fast"
    return result.logs


def test_structlog_output_reads_as_it_was_logged(tmp_path: Path) -> None:
    structlog = pytest.importorskip("structlog")
    path = tmp_path / "structlog.jsonl"
    with path.open("w") as out:
        log = structlog.wrap_logger(
            structlog.WriteLogger(out),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        ).bind(request_id="req-42")
        log.info("stage finished", stage="embed", duration_ms=12.5)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("stage failed", stage="infer", duration_ms=357.8)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    logs = read_file(path)
    assert logs.select("level", "message", "correlation_id", "stage", "duration_ns", "error_message", "trace_id").rows() == [
        ("info", "stage finished", "req-42", "embed", 12_500_000, None, None),
        ("error", "stage failed", "req-42", "infer", 357_800_000, "ValueError: boom", None),
    ]  # fmt: skip
    assert logs.get_column("time_ns").to_list() == [iso_ns(w["timestamp"]) for w in written]


def test_python_json_logger_output_reads_as_it_was_logged(tmp_path: Path) -> None:
    pytest.importorskip("pythonjsonlogger")
    from pythonjsonlogger.json import JsonFormatter

    path = tmp_path / "pjl.jsonl"
    handler = logging.FileHandler(path)
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    formatter.converter = time.gmtime  # asctime has no zone: the reader takes it as UTC
    handler.setFormatter(formatter)
    logger = logging.getLogger("tracelens.test.pjl")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info(
            "stage done", extra={"request_id": "r-7", "stage": "tokenize", "latency_ms": 1.229}
        )
        logger.warning("slow", extra={"request_id": "r-7", "stage": "embed", "latency_ms": 61.4})
        try:
            raise KeyError("shard 3")
        except KeyError:
            logger.exception("failed", extra={"request_id": "r-7", "stage": "ann_search"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = [json.loads(line) for line in path.read_text().splitlines()]
    logs = read_file(path)
    assert logs.select("level", "message", "correlation_id", "stage", "duration_ns", "error_message").rows() == [
        ("info", "stage done", "r-7", "tokenize", 1_229_000, None),
        ("warn", "slow", "r-7", "embed", 61_400_000, None),
        ("error", "failed", "r-7", "ann_search", None, "KeyError: 'shard 3'"),
    ]  # fmt: skip
    want = [iso_ns(w["asctime"].replace(",", ".") + "+00:00") for w in written]
    assert logs.get_column("time_ns").to_list() == want
    assert attributes(logs)[0] == {"name": "tracelens.test.pjl"}  # a logger name is not a service


def test_loguru_output_reads_as_it_was_logged(tmp_path: Path) -> None:
    loguru = pytest.importorskip("loguru")
    path = tmp_path / "loguru.jsonl"
    logger = loguru.logger
    sink = logger.add(path, serialize=True)
    try:
        logger.bind(request_id="r-9", stage="preprocess", duration_ms=3).info("stage finished")
        logger.bind(request_id="r-9", stage="infer", duration_ms=357.8).warning("slow batch")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.bind(request_id="r-9", stage="postprocess").exception("failed")
    finally:
        logger.remove(sink)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    logs = read_file(path)
    assert logs.select("level", "message", "correlation_id", "stage", "duration_ns", "error_message").rows() == [
        ("info", "stage finished", "r-9", "preprocess", 3 * MS, None),
        ("warn", "slow batch", "r-9", "infer", 357_800_000, None),
        ("error", "failed", "r-9", "postprocess", None, "ZeroDivisionError: division by zero"),
    ]  # fmt: skip
    # record.time.timestamp is a float of seconds; its repr (µs) is exact, not float * 1e9
    assert logs.get_column("time_ns").to_list() == [
        iso_ns(w["record"]["time"]["repr"]) for w in written
    ]
    assert all(a["text"] == w["text"] for a, w in zip(attributes(logs), written, strict=True))


def iso_ns(text: str) -> int:
    """ISO-8601 with at most microseconds -> epoch ns via datetime (exact integer arithmetic)."""
    moment = datetime.fromisoformat(text)
    whole = moment.replace(microsecond=0)
    return int(whole.timestamp()) * S + moment.microsecond * 1000


# --- sample data ground truth ----------------------------------------------------------------


def test_sample_app_log_matches_the_generator_truth() -> None:
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["app_log"]
    path = SAMPLE_DATA / "app.log.jsonl"
    result = json_logs.read(InputSource(path.name, lambda: path.open("rb")), ReadOptions())
    logs = result.logs
    assert (result.stats.lines, result.stats.records, logs.height) == (truth["lines"],) * 3
    want_levels = {("warn" if k == "warning" else k): n for k, n in truth["levels"].items()}
    assert dict(Counter(logs.get_column("level").to_list())) == want_levels
    assert logs.get_column("correlation_id").n_unique() == truth["requests"]
    staged = logs.filter(pl.col("stage").is_not_null() & pl.col("duration_ns").is_not_null())
    assert staged.height == truth["stage_lines"]
    # errors by the README's rule: the handled profile failures are warnings with an error field
    counts = staged.group_by("stage").agg(count=pl.len(), errors=pl.col("error").sum())
    assert {
        r["stage"]: {"count": r["count"], "errors": r["errors"]} for r in counts.to_dicts()
    } == truth["stages"]
    assert logs.get_column("trace_id").str.contains("^[0-9a-f]{32}$").all()


def test_sample_stages_log_matches_the_generator_truth() -> None:
    truth = json.loads((SAMPLE_DATA / "truth.json").read_text())["stages_log"]
    data = (SAMPLE_DATA / "stages.log.jsonl").read_bytes()
    parsed = json_logs.parse_logs(data, "stages.log.jsonl", ReadOptions())
    logs = parsed.logs
    assert parsed.path == "fast"
    assert logs.height == truth["lines"]
    assert set(logs.get_column("service").unique()) == {truth["service"]}
    assert logs.get_column("correlation_id").n_unique() == truth["requests"]
    assert logs.get_column("trace_id").null_count() == logs.height  # request ids are not trace ids
    for stage, want in truth["stages"].items():
        mine = logs.filter(pl.col("stage") == stage)
        durations = mine.get_column("duration_ns").drop_nulls()
        assert sorted(durations.to_list()) == sorted(us * 1000 for us in want["durations_us"])
        assert (mine.get_column("level") == "error").sum() == want["errors"]


@pytest.mark.parametrize("key", ["_line", "\u0000line", "line", "\\u0000line"])
def test_a_key_named_like_the_line_column_is_read_as_data(key: str, tmp_path: Path) -> None:
    lines = [
        {"msg": "a", key: 5, "stage": "x", "duration_ms": 3, "request_id": "r1"},
        {"msg": "b", "stage": "y", "duration_ms": 1, "request_id": "r1", "nested": {key: "n"}},
    ]
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    python = json_logs.parse_logs(data, "g", ReadOptions(), path="python")
    auto = json_logs.parse_logs(data, "g", ReadOptions())
    assert_frame_equal(auto.logs, python.logs)
    assert python.logs.get_column("source").to_list() == ["g:1", "g:2"]
    spelled = key.replace("\u0000", "\\u0000")
    first, second = (json.loads(a) for a in python.logs.get_column("attributes"))
    assert first[spelled] == "5"
    assert second[f"nested.{spelled}"] == "n"
    # Small files are read together (ReaderSpec.read_many): each keeps the same rows.
    for index in range(3):
        (tmp_path / f"{index}.jsonl").write_bytes(data)
    together = ingest.load([str(tmp_path)]).logs.sort("source")
    assert (
        together.get_column("attributes").to_list()
        == 3 * python.logs.get_column("attributes").to_list()
    )
