"""Keys of JSON-lines logs cost what their bytes do (issue 14, item 13).

Both parse paths make a column per distinct flattened key of a block. A line of millions of keys
(a 23 MB line of 1.6M keys took 24 GB and 6.5 minutes) is now skipped past
``TRACELENS_MAX_KEYS_PER_LINE``, counted at its ``file:line`` as an over-deep line is; and lines
that each bring keys of their own no longer make a column each: past the column budget
(``log_keys``) the keys the mapping does not read travel as (row, key, text) triples, and the
table is the one the columns would give.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from ml_tracelens import limits
from ml_tracelens.cli import app
from ml_tracelens.readers import json_logs
from ml_tracelens.readers.base import ReadOptions
from ml_tracelens.readers.support import log_fields, log_keys

runner = CliRunner()
REASON = "more than 20 keys in the line (TRACELENS_MAX_KEYS_PER_LINE)"


def _line(keys: int, **fields: Any) -> str:
    record = {"timestamp": "2026-11-26T08:52:16.891Z", "level": "info", "request_id": "r-1"}
    record.update({f"k{index}": index for index in range(keys - len(record))})
    record.update(fields)
    return json.dumps(record)


# --- one line with too many keys -----------------------------------------------------------


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_line_with_too_many_keys_is_skipped_with_its_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setenv("TRACELENS_MAX_KEYS_PER_LINE", "20")
    lines = [_line(10, message=f"m{i}") for i in range(6)]
    # Nested keys count; the 20 keys inside the list do not (a list is one value).
    nested = {"ctx": {f"n{i}": i for i in range(12)}, "items": [{f"i{i}": i} for i in range(20)]}
    lines.insert(3, _line(10, **nested))  # 10 + 1 + 12 + 1 = 24 keys
    lines.append(_line(10, items=[{f"i{i}": i} for i in range(40)]))  # 11: read
    at = {"first": 0, "middle": 4, "last": len(lines)}[where]
    wide = _line(21)
    lines.insert(at, wide)
    path = tmp_path / "wide.jsonl"
    path.write_text("\n".join(lines) + "\n")
    numbers = sorted({at + 1, 4 if at > 3 else 5})

    result = runner.invoke(app, ["summary", str(path), "--format", "json", "--no-cache"])
    assert result.exit_code == 0, result.stderr
    entry = orjson.loads(result.stdout)["inputs"][0]
    assert (entry["lines"], entry["records"], entry["skipped"]) == (9, 7, 2)
    warning = " ".join(result.stderr.split())
    assert f"skipped 2 malformed of 9 lines (first: {path}:{numbers[0]}: {REASON}" in warning
    assert f"{path}:{numbers[1]}: {REASON}" in warning

    strict = runner.invoke(app, ["summary", str(path), "--strict", "--no-cache"])
    assert strict.exit_code == 2
    assert f"{path}:{numbers[0]}: {REASON} (rejected by --strict)" in " ".join(
        strict.stderr.split()
    )

    data = path.read_bytes()
    python = json_logs.parse_logs(data, str(path), ReadOptions(), path="python")
    auto = json_logs.parse_logs(data, str(path), ReadOptions())
    assert_frame_equal(auto.logs, python.logs)
    assert auto.stats == python.stats
    assert python.stats.problems == [(f"{path}:{n}", REASON) for n in numbers]


def test_the_keys_limit_is_configurable_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(_line(10_001) + "\n" + _line(5) + "\n")
    default = runner.invoke(app, ["summary", str(path), "--format", "json", "--no-cache"])
    assert orjson.loads(default.stdout)["inputs"][0]["skipped"] == 1
    assert "more than 10,000 keys in the line" in default.stderr
    monkeypatch.setenv("TRACELENS_MAX_KEYS_PER_LINE", "10001")
    raised = runner.invoke(app, ["summary", str(path), "--format", "json", "--no-cache"])
    assert orjson.loads(raised.stdout)["inputs"][0]["skipped"] == 0
    monkeypatch.setenv("TRACELENS_MAX_KEYS_PER_LINE", "0")
    bad = runner.invoke(app, ["summary", str(path)])
    assert bad.exit_code == 2
    assert "TRACELENS_MAX_KEYS_PER_LINE='0': expected a whole number of keys" in bad.stderr


def _keys(value: Any, in_list: bool = False) -> int:
    """Object keys outside lists, counted on the parsed value."""
    count = 0
    stack = [(value, in_list)]
    while stack:
        node, listed = stack.pop()
        if isinstance(node, dict):
            count += 0 if listed else len(node)
            stack.extend((child, listed) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, True) for child in node)
    return count


_TRICKY = st.text('a:"\\[]{}', max_size=4)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.booleans())
def test_keys_are_counted_on_the_bytes_as_a_parser_would(value: Any, compact: bool) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    data = json.dumps({"k": value}, separators=separators).encode()
    keys = _keys({"k": value})
    assert limits.too_many_keys(data, keys - 1)
    assert not limits.too_many_keys(data, keys)


def _peak_rss(path: Path) -> tuple[int, int]:
    """(lines skipped, peak RSS in bytes) of a process loading ``path``."""
    script = (
        "import resource, sys\n"
        "from ml_tracelens import ingest\n"
        "loaded = ingest.load([sys.argv[1]])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(loaded.inputs[0].stats.skipped, peak)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    skipped, peak = map(int, result.stdout.split())
    return skipped, peak


def test_a_huge_line_of_keys_is_refused_before_parsing(tmp_path: Path) -> None:
    # 400,000 keys in 7 MB: skipped for its keys, counted on the bytes in a fraction of what
    # parsing it takes (orjson alone: ~90 MB; a column per key: gigabytes).
    small = tmp_path / "small.jsonl"
    small.write_text(_line(5) + "\n" + _line(5) + "\n")
    wide = tmp_path / "keys.jsonl"
    wide.write_text(_line(400_000) + "\n" + _line(5) + "\n")
    _, baseline = _peak_rss(small)
    skipped, peak = _peak_rss(wide)
    assert skipped == 1
    assert peak - baseline < 4 * wide.stat().st_size + 16 * 1024 * 1024


# --- many lines, each with keys of its own -------------------------------------------------


def _own_keys(lines: int, keys: int) -> bytes:
    """Lines that each bring ``keys`` keys no other line has (besides the common ones)."""
    out = []
    for number in range(lines):
        extra = {f"line{number}.key{k}": f"v{k}" for k in range(keys)}
        out.append(_line(3, message=f"m{number}", **extra))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("path", ["auto", "python"])
def test_lines_with_keys_of_their_own_do_not_make_a_column_each(
    monkeypatch: pytest.MonkeyPatch, path: json_logs.ParsePath
) -> None:
    data = _own_keys(300, 10)  # 3,000 distinct keys, 10 on each line
    widths: list[int] = []
    to_logs = log_fields.to_logs

    def spy(raw: pl.DataFrame, **kwargs: Any) -> Any:
        widths.append(raw.width)
        return to_logs(raw, **kwargs)

    monkeypatch.setattr(log_fields, "to_logs", spy)
    parsed = json_logs.parse_logs(data, "own", ReadOptions(), path=path)
    assert parsed.logs.height == 300
    assert widths
    assert max(widths) <= 10  # the keys the mapping reads, and _line
    attributes = orjson.loads(parsed.logs.item(7, "attributes"))
    assert attributes == {f"line7.key{k}": f"v{k}" for k in range(10)}
    assert parsed.logs.item(7, "message") == "m7"


def test_lines_with_keys_of_their_own_cost_what_their_bytes_do(tmp_path: Path) -> None:
    # 2,600 lines of 40 keys of their own: 104,000 distinct keys in 2 MB (a column each took
    # gigabytes; 100 lines of 1,000 took 3.4 GB).
    small = tmp_path / "small.jsonl"
    small.write_text(_line(5) + "\n" + _line(5) + "\n")
    own = tmp_path / "own.jsonl"
    own.write_bytes(_own_keys(2_600, 40))
    _, baseline = _peak_rss(small)
    skipped, peak = _peak_rss(own)
    assert skipped == 0
    assert peak - baseline < 40 * own.stat().st_size


_KEYS = st.sampled_from(
    [
        *("a", "b.c", "x y", "é", "a!", "a.b", "k\x01", 'q"'),
        *("level", "msg", "message", "request_id", "trace_id", "span_id", "ts", "timestamp"),
        *("stage", "duration_ms", "duration", "service"),
        *("error", "err", "exception", "error.message", "error.type", "status_code", "http"),
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(
        ["12ms", "500", "ok", "false", "info", "ERROR", "4bf92f3577b34da6a3ce929d0e0e4736", "-3"]
    )
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.dictionaries(_KEYS, inner, max_size=3) | st.lists(inner, max_size=2),
    max_leaves=6,
)
_RECORDS = st.lists(
    st.dictionaries(_KEYS, _VALUES, max_size=6) | st.sampled_from([b"", b"42", b'{"a":']),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RECORDS, st.sampled_from([{}, {"trace_id": "http.x"}, {"error": "a"}]))
def test_spilled_keys_give_the_table_columns_give(
    records: list[Any], field_map: dict[str, str]
) -> None:
    data = b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode() for r in records)
    options = ReadOptions(field_map=field_map)
    columns = json_logs.parse_logs(data, "g", options, path="python")
    budget = log_keys.MAX_COLUMNS
    log_keys.MAX_COLUMNS = 0
    try:
        spilled = json_logs.parse_logs(data, "g", options, path="python")
    finally:
        log_keys.MAX_COLUMNS = budget
    assert_frame_equal(spilled.logs, columns.logs)
    assert spilled.stats == columns.stats
    assert spilled.found_keys == columns.found_keys
