"""What the JSON-lines log reader gives the log-derived span trees and error counts: the error
flag and message, parent span ids, why a time or duration was not read; how it detects logs
whose first lines are damaged; and what it tells the user about ``--field``.

Every expected value is written by hand from the line beside it (the rule is in
``readers/log_aliases``). Each line is parsed on its own on both parse paths, and all lines
together, so the paths are held to the same hand-written table.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from ml_tracelens import ingest
from ml_tracelens.cli import app
from ml_tracelens.cli.exits import message_for
from ml_tracelens.exceptions import UsageError
from ml_tracelens.readers import detect, json_logs
from ml_tracelens.readers.base import InputSource, ReadOptions, ReadStats
from ml_tracelens.readers.parquet import read as read_parquet
from ml_tracelens.readers.parquet import write_parquet
from ml_tracelens.readers.support import log_aliases, log_blocks
from ml_tracelens.readers.support.log_fast import FastPathUnavailable
from ml_tracelens.schema import LOG_SCHEMA, empty_spans, logs_from_columns

PATHS: tuple[json_logs.ParsePath, ...] = ("fast", "python")
TRACEBACK = 'Traceback (most recent call last):\n  File "a.py", line 1, in f\nValueError: boom'

#: (case, the line's fields besides "msg": "m", error, error_message, attributes left)
ERROR_CASES: list[tuple[str, dict[str, Any], bool, str | None, dict[str, str]]] = [
    ("no error", {"level": "info"}, False, None, {}),
    ("level error", {"level": "error"}, True, "m", {}),
    ("level critical", {"level": "critical"}, True, "m", {}),
    ("level fatal number", {"level": 60}, True, "m", {}),
    ("level warn", {"level": "warning"}, False, None, {}),
    ("error true", {"level": "info", "error": True}, True, "m", {"error": "true"}),
    ("error TRUE text", {"error": "TRUE"}, True, "m", {"error": "TRUE"}),
    ("error text", {"level": "info", "error": "HTTP 500"}, True, "HTTP 500", {}),
    ("error text on error line", {"level": "error", "error": "timeout"}, True, "timeout", {}),
    ("err text", {"level": "warn", "err": "timeout"}, True, "timeout", {}),
    ("error object message", {"error": {"message": "boom"}}, True, "boom", {}),
    (
        "error object type and message",
        {"error": {"type": "ValueError", "message": "boom"}},
        True,
        "ValueError: boom",
        {"error.type": "ValueError"},
    ),
    (
        "message already typed",
        {"error": {"type": "ValueError", "message": "ValueError: boom"}},
        True,
        "ValueError: boom",
        {"error.type": "ValueError"},
    ),
    (
        "error object type only",
        {"error": {"type": "ValueError"}},
        True,
        "ValueError",
        {"error.type": "ValueError"},
    ),
    ("error object code", {"error": {"code": "E42"}}, True, "m", {"error.code": "E42"}),
    (
        "error object saying no error",
        {"error": {"code": 0, "message": ""}},
        False,
        None,
        {"error.code": "0", "error.message": ""},
    ),
    (
        "pino err object",
        {"err": {"type": "Error", "message": "boom", "stack": "Error: boom\n    at f (a.js:1)"}},
        True,
        "Error: boom",
        {"err.stack": "Error: boom\n    at f (a.js:1)", "err.type": "Error"},
    ),
    (
        "ECS error with stack trace",
        {
            "error": {
                "type": "java.lang.IllegalStateException",
                "message": "no model",
                "stack_trace": "java.lang.IllegalStateException: no model\n\tat A.b(A.java:1)",
            }
        },
        True,
        "java.lang.IllegalStateException: no model",
        {
            "error.stack_trace": "java.lang.IllegalStateException: no model\n\tat A.b(A.java:1)",
            "error.type": "java.lang.IllegalStateException",
        },
    ),
    ("exc_info traceback", {"level": "error", "exc_info": TRACEBACK}, True, "ValueError: boom", {}),
    ("exc_info on an info line", {"exc_info": TRACEBACK}, True, "ValueError: boom", {}),
    ("exception traceback", {"exception": TRACEBACK}, True, "ValueError: boom", {}),
    ("exc_text", {"exc_text": TRACEBACK}, True, "ValueError: boom", {}),
    (
        "multi-line error text: its first line",
        {"error": "model-server returned 503\nretry budget exhausted after 3 attempts"},
        True,
        "model-server returned 503",
        {},
    ),
    (
        "Java stack trace: the exception",
        {
            "error.stack_trace": "java.lang.IllegalStateException: pool exhausted\n\tat P.get(P.java:4)"
        },
        True,
        "java.lang.IllegalStateException: pool exhausted",
        {},
    ),
    (
        "chained Python traceback: the last exception",
        {
            "exc_info": TRACEBACK
            + "\n\nDuring handling of the above exception:\n\n"
            + TRACEBACK.replace("ValueError: boom", "KeyError: 'x'")
            + "\n"
        },
        True,
        "KeyError: 'x'",
        {},
    ),
    ("stack_trace", {"stack_trace": TRACEBACK}, True, "ValueError: boom", {}),
    (
        "loguru record.exception",
        {
            "record": {
                "exception": {
                    "type": "ZeroDivisionError",
                    "value": "division by zero",
                    "traceback": True,
                }
            }
        },
        True,
        "ZeroDivisionError: division by zero",
        {"record.exception.traceback": "true", "record.exception.type": "ZeroDivisionError"},
    ),
    (
        "loguru no exception",
        {"record": {"exception": None, "level": {"name": "INFO"}}},
        False,
        None,
        {},
    ),
    ("status 503", {"status_code": 503}, True, "m", {"status_code": "503"}),
    ("status 404", {"status_code": 404}, False, None, {"status_code": "404"}),
    ("status 500 as text", {"status_code": "500"}, True, "m", {"status_code": "500"}),
    ("status not a number", {"status_code": "5xx"}, False, None, {"status_code": "5xx"}),
    (
        "ECS response status",
        {"http": {"response": {"status_code": 502}}},
        True,
        "m",
        {"http.response.status_code": "502"},
    ),
    ("http.status_code 500", {"http.status_code": 500}, True, "m", {"http.status_code": "500"}),
    (
        "loguru bound status",
        {"record": {"extra": {"status_code": 504}}},
        True,
        "m",
        {"record.extra.status_code": "504"},
    ),
    ("error false", {"error": False}, False, None, {"error": "false"}),
    ("error null", {"error": None}, False, None, {}),
    ("error empty", {"error": ""}, False, None, {"error": ""}),
    ("error 0", {"error": 0}, False, None, {"error": "0"}),
    ("error '0'", {"error": "0"}, False, None, {"error": "0"}),
    ("error 'false'", {"error": "false"}, False, None, {"error": "false"}),
    ("error 'ok'", {"error": "ok"}, False, None, {"error": "ok"}),
    ("error 'OK '", {"error": "OK "}, False, None, {"error": "OK "}),
    ("error 'False'", {"error": "False"}, False, None, {"error": "False"}),
    ("exc_info false", {"exc_info": False}, False, None, {"exc_info": "false"}),
    ("exception empty", {"exception": ""}, False, None, {"exception": ""}),
    (
        "error false on an error line",
        {"level": "error", "error": False},
        True,
        "m",
        {"error": "false"},
    ),
]


def _line(fields: dict[str, Any]) -> bytes:
    return orjson.dumps({"msg": "m", **fields}) + b"\n"


def _parse(data: bytes, path: json_logs.ParsePath, field_map: dict[str, str] | None = None):
    return json_logs.parse_logs(data, "f", ReadOptions(field_map=field_map or {}), path=path)


def _attributes(frame: pl.DataFrame) -> list[dict[str, str]]:
    return [orjson.loads(a) for a in frame.get_column("attributes")]


@pytest.mark.parametrize(("case", "fields", "error", "message", "left"), ERROR_CASES)
@pytest.mark.parametrize("path", ["fast", "python"])
def test_each_line_gets_its_error_flag_and_message_on_both_paths(
    case: str,
    fields: dict[str, Any],
    error: bool,
    message: str | None,
    left: dict[str, str],
    path: json_logs.ParsePath,
) -> None:
    logs = _parse(_line(fields), path).logs
    assert logs.select("error", "error_message").row(0) == (error, message), case
    assert _attributes(logs) == [left], case


def test_the_error_lines_read_together_give_the_same_flags_and_messages() -> None:
    data = b"".join(_line(fields) for _, fields, *_ in ERROR_CASES)
    python = _parse(data, "python")
    want = [(error, message) for _, _, error, message, _ in ERROR_CASES]
    assert python.logs.select("error", "error_message").rows() == want
    assert python.logs.get_column("error").null_count() == 0
    assert _attributes(python.logs) == [left for *_, left in ERROR_CASES]
    # One key holding text on some lines and an object on others: the fast path stands down.
    with pytest.raises(FastPathUnavailable):
        _parse(data, "fast")
    same_shape = b"".join(
        _line(fields)
        for _, fields, *_ in ERROR_CASES
        if not any(isinstance(fields.get(key), dict) for key in ("error", "err"))
    )
    fast, python = _parse(same_shape, "fast"), _parse(same_shape, "python")
    assert fast.path == "fast"
    assert_frame_equal(fast.logs, python.logs)
    assert fast.stats == python.stats


@pytest.mark.parametrize(
    ("line", "error", "message", "left"),
    [
        # the user's key replaces the error aliases: "error" is a plain attribute now
        ({"failure": "disk full", "error": "HTTP 500"}, True, "disk full", {"error": "HTTP 500"}),
        ({"error": "HTTP 500"}, False, None, {"error": "HTTP 500"}),
        ({"failure": True}, True, "m", {"failure": "true"}),
        ({"failure": "ok"}, False, None, {"failure": "ok"}),
        ({"failure": 0}, False, None, {"failure": "0"}),
        (
            {"failure": {"type": "OSError", "message": "disk full"}},
            True,
            "OSError: disk full",
            {"failure.type": "OSError"},
        ),
        # exception fields and statuses still count
        ({"exc_info": TRACEBACK}, True, "ValueError: boom", {}),
        ({"status_code": 500}, True, "m", {"status_code": "500"}),
    ],
)
def test_an_error_field_named_by_the_user_replaces_the_error_aliases(
    line: dict[str, Any], error: bool, message: str | None, left: dict[str, str]
) -> None:
    for path in PATHS:
        logs = _parse(_line(line), path, {"error": "failure"}).logs
        assert logs.select("error", "error_message").row(0) == (error, message), (line, path)
        assert _attributes(logs) == [left]


# --- parent span ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "parent"),
    [
        ({"parent_span_id": "00f067aa0ba902b7"}, "00f067aa0ba902b7"),
        ({"parent_id": "00F067AA0BA902B7"}, "00f067aa0ba902b7"),
        ({"parentSpanId": "0x53995c3f42cd8ad8"}, "53995c3f42cd8ad8"),
        ({"parentSpanID": "abc"}, "0000000000000abc"),
        ({"parent": {"id": "b7ad6b7169203331"}}, "b7ad6b7169203331"),
        ({"span": {"id": "1", "parent_id": "b7ad6b7169203331"}}, "b7ad6b7169203331"),
        ({"record": {"extra": {"parent_span_id": "b7ad6b7169203331"}}}, "b7ad6b7169203331"),
        ({"parent_id": "step-1"}, "step-1"),  # not hex: kept as written, as span ids are
        ({"parent_id": "0000000000000000"}, None),  # all zeros: no parent
        ({"parent_id": ""}, None),
        ({}, None),
    ],
)
def test_parent_span_ids_are_read_under_every_alias(
    fields: dict[str, Any], parent: str | None
) -> None:
    for path in PATHS:
        logs = _parse(_line(fields), path).logs
        assert logs.item(0, "parent_span_id") == parent, (fields, path)
        if parent is not None:  # consumed, like every field a column took
            assert _attributes(logs) == [{}]


def test_a_parent_span_id_field_named_by_the_user_replaces_the_aliases() -> None:
    data = _line({"up": "b7ad6b7169203331", "parent_id": "00f067aa0ba902b7"})
    for path in PATHS:
        logs = _parse(data, path, {"parent_span_id": "up"}).logs
        assert logs.item(0, "parent_span_id") == "b7ad6b7169203331"
        assert _attributes(logs) == [{"parent_id": "00f067aa0ba902b7"}]
    assert "parent_span_id" in log_aliases.FIELD_NAMES


def test_the_log_table_has_its_columns_in_order() -> None:
    assert list(LOG_SCHEMA) == [
        "time_ns", "level", "message", "trace_id", "span_id", "parent_span_id", "correlation_id",
        "service", "stage", "duration_ns", "error_message", "error", "attributes",
        "unread_reason", "source",
    ]  # fmt: skip
    assert LOG_SCHEMA["error"] == pl.Boolean


# --- unread reasons --------------------------------------------------------------------------


UNREAD_TIME = "unreadable time values (kept in attributes)"
UNREAD_DURATION = "unreadable duration values (kept in attributes)"


@pytest.mark.parametrize(
    ("fields", "reason", "kept", "counted"),
    [
        ({"ts": "yesterday", "duration_ms": 5}, "unreadable time", {"ts": "yesterday"}, [UNREAD_TIME]),
        ({"timestamp": "2026-02-30T00:00:00Z"}, "unreadable time", {"timestamp": "2026-02-30T00:00:00Z"}, [UNREAD_TIME]),
        ({"duration_ms": "abc"}, "duration not a number", {"duration_ms": "abc"}, [UNREAD_DURATION]),
        ({"duration": "5 parsecs"}, "duration not a number", {"duration": "5 parsecs"}, [UNREAD_DURATION]),
        ({"duration_ms": True}, "duration not a number", {"duration_ms": "true"}, [UNREAD_DURATION]),
        ({"duration_ms": -5}, "negative duration", {"duration_ms": "-5"}, [UNREAD_DURATION]),
        ({"duration": "-1.5ms"}, "negative duration", {"duration": "-1.5ms"}, [UNREAD_DURATION]),
        ({"latency_ms": " - 3"}, "negative duration", {"latency_ms": " - 3"}, [UNREAD_DURATION]),
        # a time and a duration both unreadable: the time is named, both are counted
        (
            {"ts": "soon", "duration_ms": "abc"},
            "unreadable time",
            {"ts": "soon", "duration_ms": "abc"},
            [UNREAD_TIME, UNREAD_DURATION],
        ),
        # a later duration key was read: nothing is missing
        ({"duration_ms": "abc", "elapsed": 0.5}, None, {"duration_ms": "abc"}, []),
        ({"ts": 1764147136, "duration_ms": 12}, None, {}, []),
        ({"stage": "infer"}, None, {}, []),
    ],
)  # fmt: skip
def test_a_time_or_duration_not_read_is_named_kept_and_counted(
    fields: dict[str, Any], reason: str | None, kept: dict[str, str], counted: list[str]
) -> None:
    for path in PATHS:
        parsed = _parse(_line(fields), path)
        assert parsed.logs.item(0, "unread_reason") == reason, (fields, path)
        assert _attributes(parsed.logs) == [kept]
        assert parsed.stats.ignored == dict.fromkeys(counted, 1)


def test_every_unread_time_and_duration_is_counted() -> None:
    data = _line({"ts": "soon", "duration_ms": "abc"}) + _line({"duration_ms": -1})
    stats = _parse(data, "python").stats
    assert stats.ignored == {
        "unreadable time values (kept in attributes)": 1,
        "unreadable duration values (kept in attributes)": 2,
    }


# --- detection -------------------------------------------------------------------------------

LINES = b"".join(_line({"level": "info", "n": n}) for n in range(6))


@pytest.mark.parametrize(
    ("head", "claimed"),
    [
        (LINES, True),
        (LINES[50:], True),  # a rotated file: tail -c +50, first line cut
        (b'{"a": NaN}\n' + LINES, True),
        (b'{"a": NaN}\n', True),  # as Python's json writes a float nan
        (b'{"msg":"x"}\nnot json\n', True),  # one of two: half
        (b'{"msg":"x"}\nnot json\nnor this\n', False),
        (b"2026-11-26 INFO started\n" * 5 + b'{"msg":"x"}\n', False),  # one JSON line in text
        (b"2026-11-26 INFO started\n" * 5 + LINES, True),  # a start-up banner
        (b'{\n  "msg": "x",\n  "level": "info"\n}\n', False),
        (b"{", False),
        (b'garbage\n{"msg":"' + b"x" * 200, True),  # a second line longer than the head
        (b"\n\n" + LINES[50:], True),
    ],
)
def test_sniff_judges_several_lines(head: bytes, claimed: bool) -> None:
    assert json_logs.sniff(head) is claimed
    if claimed:
        spec = detect(head)
        assert spec is not None
        assert spec.name == "json-logs"


def test_only_the_first_lines_are_judged() -> None:
    good = b"".join(_line({"n": n}) for n in range(json_logs.SNIFF_LINES))
    assert json_logs.sniff(good + b"not json\n" * 100)
    assert json_logs.sniff(b"not json\n" * 11 + good)  # a banner, then the log
    assert not json_logs.sniff(b"not json\n" * json_logs.BANNER_LINES + good)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (LINES[50 : LINES.index(b"\n", 50)], "invalid JSON (unexpected content after document)"),
        (
            b'{"msg": "m", "a": NaN}',
            "NaN or Infinity, which JSON does not allow (Python's json writes them)",
        ),
    ],
)
def test_a_bad_first_line_is_skipped_with_its_location(first: bytes, reason: str) -> None:
    rest = LINES[LINES.index(b"\n") + 1 :]
    data = first + b"\n" + rest
    paths = {}
    for path in PATHS:
        parsed = _parse(data, path)
        assert (parsed.stats.lines, parsed.stats.records, parsed.stats.skipped) == (6, 5, 1)
        assert parsed.stats.problems == [("f:1", reason)]
        assert parsed.logs.get_column("source").to_list() == [f"f:{n}" for n in range(2, 7)]
        assert parsed.logs.get_column("attributes").to_list() == [
            f'{{"n":"{n}"}}' for n in range(1, 6)
        ]
        paths[path] = parsed
    assert_frame_equal(paths["fast"].logs, paths["python"].logs)
    assert paths["fast"].stats == paths["python"].stats


def test_a_rotated_file_cut_mid_line_is_a_log_with_one_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(LINES[50:])
    lines = LINES[50:].count(b"\n")
    telemetry = ingest.load([str(path)])
    assert telemetry.inputs[0].format == "json-logs"
    assert telemetry.logs.height == lines - 1
    assert telemetry.inputs[0].stats.problems[0][0] == f"{path}:1"
    skipped = f"{path}: skipped 1 malformed of {lines} lines"
    assert any(w.startswith(skipped) for w in telemetry.warnings)


def test_bad_first_and_last_lines_read_alike_on_both_paths() -> None:
    data = b"{oops\n" + LINES + b'{"cut": '
    fast, python = _parse(data, "fast"), _parse(data, "python")
    assert [location for location, _ in fast.stats.problems] == ["f:1", "f:8"]
    assert_frame_equal(fast.logs, python.logs)
    assert fast.stats == python.stats


def test_nan_in_the_middle_falls_back_to_the_line_path() -> None:
    data = LINES + b'{"a": NaN}\n' + LINES
    parsed = _parse(data, "auto")
    assert parsed.path == "python"
    assert parsed.stats.problems == [
        ("f:7", "NaN or Infinity, which JSON does not allow (Python's json writes them)")
    ]
    assert parsed.logs.height == 12


# --- messages --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["took:minutes", "took:", "http:took"])
def test_unknown_duration_unit_is_a_usage_error(key: str) -> None:
    with pytest.raises(UsageError) as raised:
        log_aliases.validate_field_map({"duration": key})
    message = message_for(raised.value)  # as the CLI prints it
    assert message.startswith(f"--field duration={key}: unknown unit")
    assert "ns, us, µs, μs, ms, s, m, min, h" in message
    source = InputSource("x", lambda: io.BytesIO(b'{"took": 1}\n'))
    with pytest.raises(UsageError, match="unknown unit"):
        json_logs.read(source, ReadOptions(field_map={"duration": key}))


def test_a_key_with_a_colon_takes_an_explicit_unit() -> None:
    data = orjson.dumps({"http:took": 2}) + b"\n"
    logs = _parse(data, "auto", {"duration": "http:took:s"}).logs
    assert logs.item(0, "duration_ns") == 2_000_000_000


def _read(data: bytes, field_map: dict[str, str], name: str = "app.log") -> ReadStats:
    source = InputSource(name, lambda: io.BytesIO(data))
    return json_logs.read(source, ReadOptions(field_map=field_map)).stats


def test_a_field_key_no_line_has_is_a_warning() -> None:
    data = _line({"stage": "infer", "took": 3, "failure": {"type": "E"}})
    assert _read(data, {"stage": "step", "duration": "took:ms", "error": "failure"}).warnings == [
        '--field stage=step: no line has the key "step"'
    ]
    assert _read(data, {"duration": "wait:ms", "trace_id": "record.extra.tid"}).warnings == [
        '--field duration=wait:ms: no line has the key "wait"',
        '--field trace_id=record.extra.tid: no line has the key "record.extra.tid"',
    ]


def test_a_key_found_in_a_later_block_is_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    data = LINES * 20 + _line({"step": "infer"})
    monkeypatch.setattr(log_blocks, "BLOCK_BYTES", 200)
    assert _read(data, {"stage": "step"}).warnings == []
    assert _read(data, {"stage": "phase"}).warnings == [
        '--field stage=phase: no line has the key "phase"'
    ]


def test_reader_warnings_reach_the_user(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(_line({"stage": "infer", "duration_ms": 3, "request_id": "r"}))
    telemetry = ingest.load([str(path)], options=ReadOptions(field_map={"stage": "step"}))
    assert f'{path}: --field stage=step: no line has the key "step"' in telemetry.warnings
    assert telemetry.inputs[0].stats.warnings == ['--field stage=step: no line has the key "step"']
    result = CliRunner().invoke(app, ["summary", str(path), "--field", "stage=step"])
    assert result.exit_code == 0, result.output
    assert '--field stage=step: no line has the key "step"' in result.stderr
    assert "no line has the key" not in result.stdout


def test_sample_keys_are_the_keys_of_the_first_records(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (
        b"\n"
        + b"not json\n"
        + _line({"ts": 1, "ctx": {"model": "m"}})
        + _line({"level": "info"})
        + b"".join(_line({"n": n}) for n in range(3))
        + _line({"late": 1})
    )
    # blank and bad lines hold no keys; "late" is past the first five records
    assert _read(data, {}).sample_keys == ["ctx.model", "level", "msg", "n", "ts"]
    # Blocks of a line or two: the first block with records gives them.
    monkeypatch.setattr(log_blocks, "BLOCK_BYTES", 20)
    assert _read(data, {}).sample_keys == ["ctx.model", "msg", "ts"]
    for path in PATHS:  # a null value is no key
        assert _parse(_line({"b": 1, "a": None}), path).stats.sample_keys == ["b", "msg"]


# --- other readers -----------------------------------------------------------------------------


def test_other_readers_get_the_error_flag_from_the_level() -> None:
    logs = logs_from_columns(
        {
            "level": ["ERROR", "fatal", "warn", None, "error"],
            "message": ["a", "b", "c", "d", "e"],
            "error": [None, None, None, None, False],
        }
    )
    assert logs.get_column("error").to_list() == [True, True, False, False, False]
    assert logs.get_column("parent_span_id").null_count() == 5
    assert logs.schema == LOG_SCHEMA


def test_parquet_written_before_the_error_and_parent_columns_still_reads(tmp_path: Path) -> None:
    logs = logs_from_columns(
        {"level": ["error", "info"], "message": ["a", "b"], "parent_span_id": ["1", None]}
    )
    old = tmp_path / "old.parquet"
    write_parquet(empty_spans(), logs.drop("parent_span_id", "error", "unread_reason"), old)
    read = read_parquet(InputSource(old.name, old.open, path=old), ReadOptions())
    assert read.logs.schema == LOG_SCHEMA
    assert read.logs.select("error", "parent_span_id", "unread_reason").rows() == [
        (True, None, None),
        (False, None, None),
    ]
    new = tmp_path / "new.parquet"
    write_parquet(empty_spans(), logs, new)
    back = read_parquet(InputSource(new.name, new.open, path=new), ReadOptions()).logs
    assert_frame_equal(back, logs)
