"""Structural hazards, one explicit test each (issue 7, "Must hold"): size, depth, cycles,
orphans, duplicates, durations, time range, ids, attribute values and nesting.

Every input here is built by the test itself, so the expected numbers follow from how it was
built: critical path and self times come from a plain-Python walk over the constructed parent
table, span counts per stage are made while generating, timestamps are converted with
``datetime``. Every CLI call goes through ``run_cli`` (tests/_robustness.py), which also fails on
an exit code outside {0, 1, 2}, a traceback, an "internal error" or a hang.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests._robustness import INT64_MAX, fails, iso, ok, rows_by, summary
from tests.factories import (
    MS,
    T0,
    TRACE,
    console_span,
    otlp_document,
    otlp_span,
    sid,
    write_otlp_lines,
)

# -- size and depth -----------------------------------------------------------------------------

BIG = 100_000


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trace of 100,000 spans: span i's parent is (i - 1) // 10, so fan-out 10, depth 5;
    span i runs over [i, 2*BIG - i] µs, so every child nests inside its parent."""
    spans = [
        otlp_span(
            TRACE,
            sid(i),
            sid((i - 1) // 10) if i else None,
            f"stage{i % 7}",
            T0 + i * 1000,
            T0 + (2 * BIG - i) * 1000,
        )
        for i in range(BIG)
    ]
    path = tmp_path_factory.mktemp("big") / "big.otlp.jsonl"
    return write_otlp_lines(path, [spans[k : k + 10_000] for k in range(0, BIG, 10_000)])


def _expected_big() -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """Per stage: span count, critical-path share and mean self time (µs), by a plain walk."""
    children: dict[int, list[int]] = {}
    for i in range(1, BIG):
        children.setdefault((i - 1) // 10, []).append(i)
    counts: dict[str, int] = {}
    self_sum: dict[str, int] = {}
    cp: dict[str, int] = {}
    for i in range(BIG):
        stage = f"stage{i % 7}"
        counts[stage] = counts.get(stage, 0) + 1
        duration = 2 * BIG - 2 * i
        kids = children.get(i)
        # Children nest, so their union is the first (widest) child's interval.
        self_us = duration - (2 * BIG - 2 * min(kids)) if kids else duration
        self_sum[stage] = self_sum.get(stage, 0) + self_us
    # Critical path: the child that returns last is the first one (widest); the walk gives the
    # parent [child.end, parent.end] and [parent.start, child.start], then follows the child.
    span = 0
    while True:
        stage = f"stage{span % 7}"
        kids = children.get(span)
        if not kids:
            cp[stage] = cp.get(stage, 0) + 2 * BIG - 2 * span
            break
        first = min(kids)
        cp[stage] = cp.get(stage, 0) + 2 * (first - span)
        span = first
    root = 2 * BIG
    shares = {stage: cp.get(stage, 0) / root for stage in counts}
    self_mean = {stage: self_sum[stage] / counts[stage] for stage in counts}
    return counts, shares, self_mean


def test_a_hundred_thousand_span_trace_is_analysed_exactly_within_two_minutes(
    big_trace: Path,
) -> None:
    started = time.monotonic()
    facts = summary(big_trace)
    assert facts["spans"] == BIG
    assert facts["traces"] == 1
    assert facts["orphan_spans"] == 0
    assert facts["traces_with_multiple_roots"] == 0
    assert facts["inputs"][0]["lines"] == 10
    counts, shares, self_mean = _expected_big()
    latency = orjson.loads(ok("latency", "--format", "json", str(big_trace)).stdout)
    rows = rows_by(latency)
    assert {stage: row["count"] for stage, row in rows.items()} == counts
    for stage, row in rows.items():
        assert row["cp_share"] == pytest.approx(shares[stage], abs=1e-9), stage
        assert row["self_mean_ms"] == pytest.approx(self_mean[stage] / 1000, rel=1e-9), stage
    assert latency["requests"]["count"] == 1
    assert latency["requests"]["p50_ms"] == pytest.approx(2 * BIG / 1000)
    ok("bottlenecks", str(big_trace))
    listed = orjson.loads(ok("traces", "--format", "json", str(big_trace)).stdout)
    assert [row["spans"] for row in listed["rows"]] == [BIG]
    shown = ok("show", TRACE, str(big_trace), "--depth", "1")
    assert shown.stdout.count("\n") < 100  # the root and its 10 children, not 100,000 lines
    assert time.monotonic() - started < 120


DEEP = 10_000


@pytest.fixture(scope="module")
def deep_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chain 10,000 deep: span i's parent is i - 1 and it runs over [i, 2*DEEP - i] ms."""
    spans = [
        otlp_span(
            TRACE,
            sid(i),
            sid(i - 1) if i else None,
            f"level{i % 3}",
            T0 + i * MS,
            T0 + (2 * DEEP - i) * MS,
        )
        for i in range(DEEP)
    ]
    path = tmp_path_factory.mktemp("deep") / "deep.otlp.json"
    path.write_bytes(orjson.dumps(otlp_document(spans)))
    return path


def test_a_ten_thousand_deep_parent_chain_is_analysed_and_drawn_without_recursion(
    deep_chain: Path,
) -> None:
    facts = summary(deep_chain)
    assert (facts["spans"], facts["traces"], facts["orphan_spans"]) == (DEEP, 1, 0)
    latency = orjson.loads(ok("latency", "--format", "json", str(deep_chain)).stdout)
    # Every span owns 1 ms on each side of its child (the deepest one its 2 ms): all on the
    # critical path, self time 2 ms each, shares proportional to the span counts.
    counts = {f"level{k}": len(range(k, DEEP, 3)) for k in range(3)}
    for stage, row in rows_by(latency).items():
        assert row["count"] == counts[stage]
        assert row["self_mean_ms"] == pytest.approx(2.0)
        assert row["cp_share"] == pytest.approx(counts[stage] / DEEP)
    shown = orjson.loads(ok("show", TRACE, str(deep_chain), "--format", "json").stdout)
    assert shown["span_count"] == DEEP
    assert max(span["depth"] for span in shown["spans"]) == DEEP - 1
    ok("show", TRACE, str(deep_chain))  # the waterfall draws without recursion
    ok("bottlenecks", str(deep_chain))


def test_parent_cycles_are_broken_and_counted(tmp_path: Path) -> None:
    spans = [
        otlp_span(TRACE, sid(0), None, "root", T0, T0 + 100 * MS),
        # A -> C -> B -> A
        otlp_span(TRACE, sid(1), sid(3), "a", T0 + MS, T0 + 2 * MS),
        otlp_span(TRACE, sid(2), sid(1), "b", T0 + MS, T0 + 2 * MS),
        otlp_span(TRACE, sid(3), sid(2), "c", T0 + MS, T0 + 2 * MS),
        # its own parent
        otlp_span(TRACE, sid(4), sid(4), "self", T0 + MS, T0 + 2 * MS),
        # E <-> F
        otlp_span(TRACE, sid(5), sid(6), "e", T0 + MS, T0 + 2 * MS),
        otlp_span(TRACE, sid(6), sid(5), "f", T0 + MS, T0 + 2 * MS),
    ]
    path = write_otlp_lines(tmp_path / "cycles.otlp.jsonl", [spans])
    facts = summary(path)
    assert facts["spans"] == 7
    assert facts["cycles_broken"] == 3
    # The root plus one span per broken cycle are roots of the one trace.
    assert facts["traces_with_multiple_roots"] == 1
    assert any("cycle" in w for w in facts["warnings"])
    for command in ("latency", "bottlenecks", "errors", "traces"):
        ok(command, str(path))
    ok("show", TRACE, str(path))


def test_a_dump_of_orphans_is_counted_and_warned_about_and_every_command_runs(
    tmp_path: Path,
) -> None:
    spans = [
        otlp_span(f"{t + 1:032x}", sid(10 * t + s), "f" * 16, f"stage{s}", T0, T0 + (s + 1) * MS)
        for t in range(3)
        for s in range(4)
    ]
    path = write_otlp_lines(tmp_path / "orphans.otlp.jsonl", [spans])
    facts = summary(path)
    assert (facts["spans"], facts["traces"], facts["orphan_spans"]) == (12, 3, 12)
    assert any("orphan" in w for w in facts["warnings"])
    latency = orjson.loads(ok("latency", "--format", "json", str(path)).stdout)
    assert {stage: row["count"] for stage, row in rows_by(latency).items()} == {
        f"stage{s}": 3 for s in range(4)
    }
    assert latency["requests"]["count"] == 0  # no true root anywhere
    for command in ("bottlenecks", "errors", "traces"):
        ok(command, str(path))
    ok("show", f"{1:032x}", str(path))


def test_identical_duplicate_spans_merge_and_conflicting_ones_are_both_kept(tmp_path: Path) -> None:
    root = otlp_span(TRACE, sid(0), None, "root", T0, T0 + 10 * MS)
    same = otlp_span(TRACE, sid(1), sid(0), "same", T0 + MS, T0 + 2 * MS)
    first = otlp_span(TRACE, sid(2), sid(0), "x-first", T0 + 3 * MS, T0 + 4 * MS)
    second = otlp_span(TRACE, sid(2), sid(0), "x-second", T0 + 5 * MS, T0 + 7 * MS)
    path = write_otlp_lines(tmp_path / "dups.otlp.jsonl", [[root, same, first], [same, second]])
    facts = summary(path)
    assert facts["merged_duplicate_spans"] == 1
    assert facts["conflicting_duplicate_spans"] == 1
    assert facts["spans"] == 4
    rows = rows_by(orjson.loads(ok("latency", "--format", "json", str(path)).stdout))
    assert rows["x-first"]["count"] == rows["x-second"]["count"] == 1
    assert rows["x-second"]["p50_ms"] == pytest.approx(2.0)


@pytest.mark.parametrize("layout", ["otlp", "jaeger"])
def test_an_end_before_its_start_is_counted_and_never_a_negative_time(
    tmp_path: Path, layout: str
) -> None:
    # "work" runs 100 µs once and "ends" 100 µs before it starts once; "zero" takes no time.
    spans = [("root", 0, 1000), ("work", 100, 200), ("work", 500, 400), ("zero", 600, 600)]
    if layout == "otlp":
        document: Any = otlp_document(
            [
                otlp_span(TRACE, sid(i), sid(0) if i else None, n, T0 + s * 1000, T0 + e * 1000)
                for i, (n, s, e) in enumerate(spans)
            ]
        )
    else:
        document = {
            "data": [
                {
                    "traceID": TRACE,
                    "processes": {"p1": {"serviceName": "svc"}},
                    "spans": [
                        {
                            "traceID": TRACE,
                            "spanID": sid(i),
                            "operationName": n,
                            "processID": "p1",
                            "references": [{"refType": "CHILD_OF", "spanID": sid(0)}] if i else [],
                            "startTime": T0 // 1000 + s,
                            "duration": e - s,
                        }
                        for i, (n, s, e) in enumerate(spans)
                    ],
                }
            ]
        }
    path = tmp_path / f"durations.{layout}.json"
    path.write_bytes(orjson.dumps(document))
    facts = summary(path)
    assert facts["negative_durations"] == 1
    assert any("zero duration" in w for w in facts["warnings"])
    rows = rows_by(orjson.loads(ok("latency", "--format", "json", str(path)).stdout))
    # The negative one is excluded from timing, as the warning says: not averaged in.
    assert rows["work"]["count"] == 1
    assert rows["work"]["p50_ms"] == pytest.approx(0.1)
    assert rows["work"]["mean_ms"] == pytest.approx(0.1)
    assert rows["zero"]["p50_ms"] == 0.0
    assert all((row["self_mean_ms"] or 0) >= 0 for row in rows.values())
    ok("check", str(path), "--budget", "work:p50<=1ms", "--format", "json")


# -- time range ---------------------------------------------------------------------------------

Y9999_NS = 253402300799 * 10**9  # 9999-12-31T23:59:59Z: beyond Int64 nanoseconds
Y9999_US = 253402300799 * 10**6


def _time_hazards(layout: str) -> bytes:
    """Five one-span traces: at the epoch, at the last Int64 nanosecond, in year 9999, past
    Int64, and before the epoch. The last three cannot be timed."""
    if layout == "otlp" or layout == "otlp-numbers":
        cases = [
            (0, 1000),
            (INT64_MAX - 1000, INT64_MAX),
            (Y9999_NS, Y9999_NS + 1000),
            (INT64_MAX + 1, INT64_MAX + 2),
            (-1000, 5000),
        ]
        spans = [
            otlp_span(f"{i + 1:032x}", sid(i), None, f"t{i}", s, e)
            for i, (s, e) in enumerate(cases)
        ]
        if layout == "otlp-numbers":  # bare numbers, as older exporters write them
            for span in spans:
                span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
                span["endTimeUnixNano"] = int(span["endTimeUnixNano"])
        return orjson.dumps(otlp_document(spans)) if layout == "otlp" else _raw_numbers(spans)
    us_cases = [(1, 1), ((INT64_MAX - 1000) // 1000, 1), (Y9999_US, 1), (INT64_MAX, 1), (-5, 1)]
    if layout == "jaeger":
        return orjson.dumps(
            {
                "data": [
                    {
                        "traceID": f"{i + 1:032x}",
                        "spans": [
                            {
                                "traceID": f"{i + 1:032x}",
                                "spanID": sid(i),
                                "operationName": f"t{i}",
                                "startTime": s,
                                "duration": d,
                            }
                        ],
                    }
                    for i, (s, d) in enumerate(us_cases)
                ]
            }
        )
    return orjson.dumps(
        [
            {
                "traceId": f"{i + 1:032x}",
                "id": sid(i),
                "name": f"t{i}",
                "timestamp": s,
                "duration": d,
            }
            for i, (s, d) in enumerate(us_cases)
        ]
    )


def _raw_numbers(spans: list[dict[str, Any]]) -> bytes:
    # orjson cannot write integers past 64 bits; the json module can.
    return json.dumps(otlp_document(spans)).encode()


@pytest.mark.parametrize("layout", ["otlp", "otlp-numbers", "jaeger", "zipkin"])
def test_times_at_the_epoch_and_past_int64_are_counted_never_wrapped(
    tmp_path: Path, layout: str
) -> None:
    path = tmp_path / f"times.{layout}.json"
    path.write_bytes(_time_hazards(layout))
    facts = summary(path)
    # Each of the three hazards is counted, never wrapped around: as a span without timing, or
    # (Jaeger and Zipkin refuse a time that overflows when scaled to ns) as a skipped span.
    # Spans skipped inside a document that was read are "skipped_items", not skipped lines.
    skipped = facts["inputs"][0]["skipped_items"]
    assert facts["spans"] + skipped == 5
    assert facts["untimed_spans"] + skipped == 3
    assert skipped == (0 if layout.startswith("otlp") else 2)
    first = 0 if layout.startswith("otlp") else 1000
    assert facts["start"] == iso(first)
    last = INT64_MAX if layout.startswith("otlp") else (INT64_MAX - 1000) // 1000 * 1000 + 1000
    assert facts["end"] == iso(last)
    latency = orjson.loads(ok("latency", "--format", "json", str(path)).stdout)
    durations = [row["max_ms"] for row in latency["rows"] if row["max_ms"] is not None]
    assert all(0 <= d <= 0.001 for d in durations), durations
    for command in ("bottlenecks", "errors", "traces"):
        ok(command, str(path))
    ok("show", f"{1:032x}", str(path))


def test_a_number_beyond_float_range_costs_only_its_span(tmp_path: Path) -> None:
    # 1e400 is valid JSON that parses as infinity. orjson refuses it (the line is skipped); the
    # standard library, which reads documents written back to back, returns inf.
    good = orjson.dumps(otlp_document([otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)]))
    as_time = good.replace(b'"endTimeUnixNano":"%d"' % (T0 + MS), b'"endTimeUnixNano":1e400')
    attributes = [{"key": "n", "value": {"intValue": 0}}]
    as_attribute = orjson.dumps(
        otlp_document([otlp_span(TRACE, sid(1), None, "other", T0, T0 + MS, attributes=attributes)])
    ).replace(b'"intValue":0', b'"intValue":1e400')
    assert b"1e400" in as_time
    lines = tmp_path / "inf.otlp.jsonl"
    lines.write_bytes(b"\n".join((good, as_time, as_attribute)) + b"\n")
    entry = summary(lines)["inputs"][0]
    # The span with the infinite time is skipped on its own (its line is read); the attribute
    # is kept as written (the fast path never parses attribute values), so that span is read.
    assert (entry["lines"], entry["records"], entry["skipped"]) == (3, 3, 0)
    assert entry["skipped_items"] == 1
    ok("latency", "--by", "attr.n", str(lines))
    # Back to back and indented (not one document, not JSON lines): the fallback decoder.
    pretty = b"\n".join(
        json.dumps(json.loads(doc), indent=2).encode() for doc in (good, as_time, as_attribute)
    )
    stacked = tmp_path / "inf.otlp.json"
    stacked.write_bytes(pretty + b"\n")
    facts = summary(stacked)  # here both values reach int(): each document's span is skipped
    entry = facts["inputs"][0]
    assert (facts["spans"], entry["skipped"], entry["skipped_items"]) == (1, 0, 2)


def test_a_console_time_out_of_range_skips_its_object(tmp_path: Path) -> None:
    def span(number: int, start: str, end: str) -> dict[str, Any]:
        resource = {"attributes": {"service.name": "svc"}}
        return console_span(number, start, end, kind="SpanKind.SERVER", resource=resource)

    objects = [
        span(0, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000001Z"),
        span(1, "9999-12-31T23:59:59.000000Z", "9999-12-31T23:59:59.999999Z"),
        span(2, "0001-01-01T00:00:00.000000Z", "0001-01-01T00:00:01.000000Z"),
    ]
    path = tmp_path / "times.console.txt"
    path.write_text("\n".join(json.dumps(o, indent=4) for o in objects) + "\n")
    facts = summary(path)
    # Beyond Int64 ns (1677..2262) a time is unreadable, as an invalid date is: the object is
    # skipped and counted, never wrapped around into another century.
    assert (facts["spans"], facts["untimed_spans"], facts["inputs"][0]["skipped"]) == (1, 0, 2)
    assert facts["start"] == iso(0)


# -- ids and attributes -------------------------------------------------------------------------


def test_ids_of_odd_length_or_upper_case_are_normalised_and_non_hex_ids_kept(
    tmp_path: Path,
) -> None:
    spans = [
        otlp_span("ABC", "A1B2C", None, "root", T0, T0 + 10 * MS),
        otlp_span("abc", "not-hex!", "a1b2c", "child", T0 + MS, T0 + 5 * MS),
        otlp_span("0abc", "x", "not-hex!", "grandchild", T0 + 2 * MS, T0 + 3 * MS),
        otlp_span("trace-zz", "s1", None, "other", T0, T0 + MS),
    ]
    path = tmp_path / "ids.otlp.json"
    path.write_bytes(orjson.dumps(otlp_document(spans)))
    facts = summary(path)
    # Odd-length hex ids are left-padded and lowercased, so "ABC", "abc" and "0abc" are one
    # trace and "A1B2C"/"a1b2c" one span; non-hex ids are kept as written and still link.
    assert facts["spans"] == 4
    assert facts["traces"] == 2
    assert facts["orphan_spans"] == 0
    assert facts["traces_with_multiple_roots"] == 0
    shown = orjson.loads(ok("show", "ABC", str(path), "--format", "json").stdout)
    assert sorted(s["stage"] for s in shown["spans"]) == ["child", "grandchild", "root"]
    assert max(s["depth"] for s in shown["spans"]) == 2
    other = orjson.loads(ok("show", "trace-zz", str(path), "--format", "json").stdout)
    assert [s["stage"] for s in other["spans"]] == ["other"]


def _kvlist(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


ATTRIBUTES = [
    {"key": "s", "value": {"stringValue": "text"}},
    {"key": "i", "value": {"intValue": "42"}},
    {"key": "n", "value": {"intValue": 7}},
    {"key": "d", "value": {"doubleValue": 2.5}},
    {"key": "b", "value": {"boolValue": True}},
    {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}},
    {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "in", "value": {"intValue": 3}}]}}},
    {"key": "bytes", "value": {"bytesValue": "aGVsbG8="}},
    {"key": "empty", "value": {}},
    {"key": "null", "value": None},
    {"key": "nested", "value": _kvlist(10)},
]


def test_attribute_values_of_every_type_read_alike_on_both_decoders(tmp_path: Path) -> None:
    span = otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS, attributes=ATTRIBUTES)
    lenient = otlp_span("1" * 32, sid(1), None, "root", T0, T0 + MS, attributes=ATTRIBUTES)
    path = tmp_path / "attrs.otlp.jsonl"
    # A line that also holds logs goes through the lenient decoder: both paths must agree.
    path.write_bytes(
        orjson.dumps(otlp_document([span]))
        + b"\n"
        + orjson.dumps({**otlp_document([lenient]), "resourceLogs": []})
        + b"\n"
    )
    facts = summary(path)
    assert facts["spans"] == 2
    expected = {"s": "text", "i": "42", "n": "7", "d": "2.5", "b": "true", "bytes": "aGVsbG8="}
    for key, text in expected.items():
        latency = orjson.loads(
            ok("latency", "--by", f"attr.{key}", "--format", "json", str(path)).stdout
        )
        assert {row[key]: row["count"] for row in latency["rows"]} == {text: 2}, key
    for key in ("arr", "kv", "empty", "null", "nested"):
        ok("latency", "--by", f"attr.{key}", str(path))
    shown = ok("show", TRACE, str(path), "--attrs")
    assert "s = text" in shown.stdout
    assert "i = 42" in shown.stdout


def test_nesting_beyond_any_parser_is_skipped_and_counted(tmp_path: Path) -> None:
    good = orjson.dumps(otlp_document([otlp_span(TRACE, sid(0), None, "root", T0, T0 + MS)]))
    deep = b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}"
    path = tmp_path / "deep-json.otlp.jsonl"
    path.write_bytes(good + b"\n" + deep + b"\n" + good.replace(b'"root"', b'"again"') + b"\n")
    entry = summary(path)["inputs"][0]
    assert (entry["lines"], entry["records"], entry["skipped"]) == (3, 2, 1)
    strict = fails("summary", "--strict", str(path))
    assert f"{path}:2:" in strict.stderr
