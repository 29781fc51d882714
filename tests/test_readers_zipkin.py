"""Zipkin v2 reader: the real zipkin-lens fixtures checked span by span against a plain-json pass,
a hand-made trace for every shared-id rule, and malformed input."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_tracelens.ingest import load
from ml_tracelens.ingest.inputs import resolve
from ml_tracelens.readers import zipkin_json
from ml_tracelens.readers.base import UTF8_REPLACED, ReadOptions, ReadResult
from ml_tracelens.readers.support.zipkin_model import micros_to_ns

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "zipkin"
REAL = [
    "ascend.json",
    "envoy.json",
    "messaging-kafka.json",
    "messaging2.json",
    "simple-db-p6.json",
    "smartthings-mobile-web-install.json",
    "smartthings-oauth-authorization.json",
]
B = 1_700_000_000_000_000_000  # 1700000000000000 µs in ns


def read(path: Path) -> ReadResult:
    return zipkin_json.read(resolve([str(path)]).sources[0], ReadOptions())


def pad(value: str) -> str:
    return value.lower().zfill(16 if len(value) <= 16 else 32)


def is_fragment(span: dict[str, Any], spans: list[dict[str, Any]]) -> bool:
    """A span carrying only ids, name and endpoint that repeats another span's id and endpoint."""
    extra = {"kind", "timestamp", "duration", "tags", "annotations", "remoteEndpoint", "shared"}
    if extra & span.keys() or "localEndpoint" not in span:
        return False
    return any(
        other is not span
        and other["traceId"] == span["traceId"]
        and other["id"] == span["id"]
        and other.get("localEndpoint") == span["localEndpoint"]
        and extra & other.keys()
        for other in spans
    )


def raw_index(source: str) -> int:
    return int(source.rsplit("#", 1)[1])


# --- the real fixtures ------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_real_fixture_span_by_span(shared_fixtures: Path, name: str) -> None:
    path = shared_fixtures / "zipkin" / name
    raw = json.loads(path.read_text())
    result = read(path)
    spans = result.spans
    fragments = [s for s in raw if is_fragment(s, raw)]

    assert result.stats.skipped == 0
    assert spans.height == len(raw) - len(fragments)
    assert sum(result.stats.ignored.values()) == len(fragments)
    assert spans.select(pl.struct("trace_id", "span_id").is_unique().all()).item()
    services = {(s.get("localEndpoint") or {}).get("serviceName") or "unknown_service" for s in raw}
    assert set(spans["service"]) == services
    errors = [s for s in raw if "error" in (s.get("tags") or {})]
    assert (spans["status"] == "error").sum() == len(errors)
    assert spans["duration_ns"].null_count() == sum(
        "duration" not in s for s in raw if s not in fragments
    )
    assert spans["start_ns"].null_count() == sum(
        "timestamp" not in s for s in raw if s not in fragments
    )
    # Every row against the raw span its source points at.
    for row in spans.iter_rows(named=True):
        span = raw[raw_index(row["source"])]
        assert row["trace_id"] == pad(span["traceId"])
        assert row["span_id"].split(":")[0] == pad(span["id"])
        assert row["start_ns"] == (span["timestamp"] * 1000 if "timestamp" in span else None)
        assert row["duration_ns"] == (span["duration"] * 1000 if "duration" in span else None)
        if row["start_ns"] is not None and row["duration_ns"] is not None:
            assert row["end_ns"] == row["start_ns"] + row["duration_ns"]
        assert row["service"] == span["localEndpoint"].get("serviceName", "unknown_service")
        assert row["kind"] == (span["kind"].lower() if span.get("kind") else None)
        if span.get("name"):
            assert row["name"] == span["name"]


@pytest.mark.parametrize("name", REAL)
def test_real_fixture_shared_ids_split(shared_fixtures: Path, name: str) -> None:
    path = shared_fixtures / "zipkin" / name
    raw = json.loads(path.read_text())
    spans = read(path).spans
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for span in raw:
        if not is_fragment(span, raw):
            groups[(span["traceId"], span["id"])].append(span)
    pairs = [g for g in groups.values() if any(s.get("shared") for s in g) and len(g) > 1]
    servers_with_client = sum(1 for g in pairs for s in g if s.get("shared"))
    ids = spans["span_id"]
    assert ids.str.ends_with(":client").sum() == len(pairs)
    extra_servers = sum(max(0, sum(1 for s in g if s.get("shared")) - 1) for g in groups.values())
    assert ids.str.contains(":server").sum() == extra_servers
    # Each server half hangs under its own client half.
    base_id = pl.col("span_id").str.split(":").list.first()
    halves = spans.filter(pl.col("parent_id") == base_id + ":client")
    assert halves.height == servers_with_client


def test_oauth_numbers_from_sources(shared_fixtures: Path) -> None:
    # SOURCES.md: 175 spans, 8 services, 45 ids used by a CLIENT and a SERVER half (shared),
    # 19 spans without duration, 2 errors.
    spans = read(shared_fixtures / "zipkin" / "smartthings-oauth-authorization.json").spans
    assert spans.height == 175
    assert spans["service"].n_unique() == 8
    base_id = pl.col("span_id").str.split(":").list.first()
    assert spans.filter(pl.col("parent_id") == base_id + ":client").height == 45
    assert spans["duration_ns"].null_count() == 19
    assert (spans["status"] == "error").sum() == 2


def test_oauth_kafka_fan_out_one_send_five_receives(shared_fixtures: Path) -> None:
    # One CLIENT "send iot-events360" (bouncer) and five shared SERVER "receive" halves on
    # pusher hosts share id 9d2d35b746db84f3. Ordered by timestamp (read off the file):
    # 549997 (.79), 553308 (.79), 560112 (.187), 560292 (.187), 564455 (.187).
    spans = read(shared_fixtures / "zipkin" / "smartthings-oauth-authorization.json").spans
    x = "9d2d35b746db84f3"
    by_id = {r["span_id"]: r for r in spans.iter_rows(named=True)}
    send = by_id[f"{x}:client"]
    assert send["name"] == "send iot-events360"
    assert send["service"] == "bouncer"
    # Its parent 19b91ab9a7d47f3d is itself shared (bouncer server, datamgmt client): the send
    # runs on the bouncer server half's endpoint, which kept the id.
    assert send["parent_id"] == "19b91ab9a7d47f3d"
    assert by_id["19b91ab9a7d47f3d"]["service"] == "bouncer"
    starts = {
        x: 1543334725549997,
        f"{x}:server2": 1543334725553308,
        f"{x}:server3": 1543334725560112,
        f"{x}:server4": 1543334725560292,
        f"{x}:server5": 1543334725564455,
    }
    for span_id, start_us in starts.items():
        assert by_id[span_id]["start_ns"] == start_us * 1000
        assert by_id[span_id]["parent_id"] == f"{x}:client"
        assert by_id[span_id]["duration_ns"] is None
    # Children go to the latest receive on their own host that started at or before them.
    assert by_id["975e74022b72e1cd"]["parent_id"] == x  # .79 at 550479
    assert by_id["de67d452708a545a"]["parent_id"] == f"{x}:server2"  # .79 at 553777
    assert by_id["d645461738ed0e17"]["parent_id"] == f"{x}:server5"  # .187 at 564862


def test_oauth_error_pair(shared_fixtures: Path) -> None:
    spans = read(shared_fixtures / "zipkin" / "smartthings-oauth-authorization.json").spans
    errors = spans.filter(pl.col("status") == "error").sort("span_id")
    assert errors.select("span_id", "parent_id", "service", "kind", "status_message").rows() == [
        ("c47bff7f7964b321", "c47bff7f7964b321:client", "auth", "server", "401"),
        ("c47bff7f7964b321:client", "be232464081e613d", "stlogin", "client", "401"),
    ]
    client = errors.row(1, named=True)
    assert client["start_ns"] == 1543334661559392000
    assert client["duration_ns"] == 56057000


@pytest.mark.parametrize(
    "name", ["smartthings-oauth-authorization.json", "smartthings-mobile-web-install.json"]
)
def test_children_of_single_server_groups(shared_fixtures: Path, name: str) -> None:
    """A span whose parentId is a shared id with one server half goes under that half when it
    runs on the half's endpoint, else under the client half (Zipkin's SpanNode rule)."""
    path = shared_fixtures / "zipkin" / name
    raw = json.loads(path.read_text())
    spans = read(path).spans
    parent_of = {raw_index(s): p for s, p in zip(spans["source"], spans["parent_id"], strict=True)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for span in raw:
        groups[(span["traceId"], span["id"])].append(span)
    checked = 0
    for index, span in enumerate(raw):
        group = groups.get((span["traceId"], span.get("parentId")), [])
        servers = [s for s in group if s.get("shared")]
        has_client = any(s.get("kind") == "CLIENT" for s in group)
        if span.get("shared") or is_fragment(span, raw) or len(servers) != 1 or not has_client:
            continue
        same_host = servers[0]["localEndpoint"] == span["localEndpoint"]
        want = span["parentId"] if same_host else span["parentId"] + ":client"
        assert parent_of[index] == want, span
        checked += 1
    assert checked > 50


def test_messaging2_orphans(shared_fixtures: Path) -> None:
    path = shared_fixtures / "zipkin" / "messaging2.json"
    raw = json.loads(path.read_text())
    ids = {s["id"] for s in raw}
    absent = [s["parentId"] for s in raw if s.get("parentId") and s["parentId"] not in ids]
    assert len(absent) == 6  # SOURCES.md: six spans point at parents not in the file
    spans = read(path).spans
    orphans = spans.filter(~pl.col("parent_id").is_in(spans["span_id"].implode()))
    assert sorted(orphans["parent_id"]) == sorted(absent)
    assert len(set(absent)) == 2
    # The lone shared server (its client is not in the file) keeps its id and parentId.
    lone = [s for s in raw if s.get("shared")]
    assert len(lone) == 1
    row = spans.filter(pl.col("span_id") == lone[0]["id"]).row(0, named=True)
    assert row["parent_id"] == lone[0]["parentId"]


def test_mobile_web_install_fragments_merged(shared_fixtures: Path) -> None:
    # SOURCES.md: 1041 spans, 84 without timestamp, 175 without duration. The 84 without
    # timestamp are bare repeats of a server half (same id and endpoint, nothing else).
    path = shared_fixtures / "zipkin" / "smartthings-mobile-web-install.json"
    raw = json.loads(path.read_text())
    assert len(raw) == 1041
    no_timestamp = [s for s in raw if "timestamp" not in s]
    assert len(no_timestamp) == 84
    assert all(is_fragment(s, raw) for s in no_timestamp)
    result = read(path)
    assert result.spans.height == 1041 - 84
    assert result.spans["start_ns"].null_count() == 0
    assert result.spans["duration_ns"].null_count() == 175 - 84
    assert result.stats.ignored == {
        "span fragments merged into the span with the same id and endpoint": 84
    }


# --- hand-made fixtures -----------------------------------------------------------------------


def test_shared_rules_on_hand_made_trace() -> None:
    result = read(FIXTURES / "shared.json")
    cafe = "000000000000cafe"

    def sid(n: str) -> str:
        return n.zfill(16)

    expected = [
        (cafe, sid("1"), None, "frontend", "get /", "server", B, 1_000_000, "unset", None),
        (
            cafe,
            sid("2") + ":client",
            sid("1"),
            "frontend",
            "get",
            "client",
            B + 100_000,
            800_000,
            "unset",
            None,
        ),
        # the fragment at index 4 gave the nameless server half its name
        (
            cafe,
            sid("2"),
            sid("2") + ":client",
            "backend",
            "get /items",
            "server",
            B + 150_000,
            700_000,
            "unset",
            None,
        ),
        (
            cafe,
            sid("3"),
            sid("2"),
            "backend",
            "query",
            "client",
            B + 200_000,
            100_000,
            "error",
            "relation missing",
        ),
        (
            cafe,
            sid("4") + ":client",
            sid("2"),
            "backend",
            "send jobs",
            "client",
            B + 300_000,
            50_000,
            "unset",
            None,
        ),
        (
            cafe,
            sid("4") + ":server2",
            sid("4") + ":client",
            "worker",
            "receive jobs",
            "server",
            B + 400_000,
            None,
            "unset",
            None,
        ),
        (
            cafe,
            sid("4"),
            sid("4") + ":client",
            "worker",
            "receive jobs",
            "server",
            B + 380_000,
            None,
            "unset",
            None,
        ),
        (
            cafe,
            sid("5"),
            sid("4") + ":server2",
            "worker",
            "process",
            None,
            B + 410_000,
            20_000,
            "unset",
            None,
        ),
        (cafe, sid("6"), sid("4"), "worker", "process", None, B + 390_000, 30_000, "unset", None),
        # lone shared server: its client is absent, so it keeps id and parent
        (cafe, sid("7"), sid("3"), "cache", "lookup", "server", B + 220_000, 10_000, "unset", None),
        # SERVER without the shared flag repeating a CLIENT id: backfilled as shared
        (
            cafe,
            sid("8") + ":client",
            sid("1"),
            "frontend",
            "post",
            "client",
            B + 900_000,
            50_000,
            "unset",
            None,
        ),
        (
            cafe,
            sid("8"),
            sid("8") + ":client",
            "logger",
            "post /log",
            "server",
            B + 910_000,
            30_000,
            "unset",
            None,
        ),
        # parentId equal to its own id: no parent; no localEndpoint, no name
        (cafe, sid("9"), None, "unknown_service", "", None, B + 920_000, 5_000, "unset", None),
        (cafe, sid("a"), sid("1"), "frontend", "async.flush", None, None, 40_000, "ok", None),
        (cafe, sid("b"), sid("1"), "frontend", "late", None, B + 950_000, None, "error", None),
        # same span id in another trace: untouched
        (
            "000000000000beef",
            sid("2"),
            None,
            "backend",
            "other trace",
            "server",
            B,
            10_000,
            "unset",
            None,
        ),
    ]
    columns = [
        "trace_id",
        "span_id",
        "parent_id",
        "service",
        "name",
        "kind",
        "start_ns",
        "duration_ns",
        "status",
        "status_message",
    ]
    assert result.spans.select(columns).rows() == expected
    assert result.stats.ignored == {
        "span fragments merged into the span with the same id and endpoint": 1,
        "self-referencing parent ids dropped": 1,
    }
    assert result.spans["source"].to_list()[:3] == [
        f"{FIXTURES / 'shared.json'}#{i}" for i in (0, 1, 2)
    ]


def test_a_pair_reported_twice_stays_one_pair(tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / "shared.json").read_text())[:3]  # root, client, server of "2"
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(raw + raw[1:]))
    result = read(path)
    assert result.spans["span_id"].to_list() == [
        "0000000000000001",
        "0000000000000002:client",
        "0000000000000002",
    ]
    assert result.stats.ignored == {"identical duplicate spans dropped": 2}


def test_endpoints_tags_and_annotations() -> None:
    spans = read(FIXTURES / "shared.json").spans
    query = spans.filter(pl.col("name") == "query").row(0, named=True)
    assert json.loads(query["attributes"]) == {
        "service.name": "backend",
        "net.host.ip": "10.0.0.2",
        "net.host.port": 8080,
        "peer.service": "postgres",
        "net.peer.ip": "10.0.0.9",
        "net.peer.port": 5432,
        "error": "relation missing",
        "db.system": "postgresql",
    }
    assert json.loads(query["events"]) == [
        {"name": "wire.send", "time_ns": B + 210_000, "attributes": {}},
        {
            "name": "exception",
            "time_ns": B + 250_000,
            "attributes": {"exception.message": "boom", "exception.type": "X"},
        },
    ]
    assert spans.filter(pl.col("name") == "get").row(0, named=True)["events"] is None


def test_malformed_spans_are_counted_and_the_rest_read() -> None:
    path = FIXTURES / "malformed.json"
    result = read(path)
    assert result.spans["name"].to_list() == ["ok-first", "ok-last"]
    # "ok-last" has timestamp and duration as numeric strings
    assert result.spans["start_ns"].to_list() == [B, B + 20_000]
    assert result.spans["duration_ns"].to_list() == [10_000, 5_000]
    assert result.stats.skipped_items == 9  # spans inside the one array that was read
    assert result.stats.skipped == 0
    assert [loc for loc, _ in result.stats.problems] == [f"{path}#{i}" for i in range(1, 6)]
    reasons = [reason for _, reason in result.stats.problems]
    assert "duration is not a number: 'abc'" in reasons[0]
    assert "tags is not an object" in reasons[2]
    assert "missing id" in reasons[3]


def test_json_lines_of_spans_and_arrays() -> None:
    path = FIXTURES / "spans.jsonl"
    result = read(path)
    assert result.spans.select("span_id", "parent_id", "service", "source").rows() == [
        ("0000000000000001", None, "a", f"{path}#0"),
        ("0000000000000002", "0000000000000001", "b", f"{path}:2#0"),
        ("0000000000000003", "0000000000000001", "b", f"{path}:2#1"),
    ]
    assert result.stats.skipped == 2
    assert [loc for loc, _ in result.stats.problems] == [f"{path}:4", f"{path}:5"]
    assert result.stats.lines == 5


@given(st.integers(min_value=-(2**62) // 1000, max_value=(2**63 - 1) // 1000))
def test_micros_to_ns_is_exact(micros: int) -> None:
    assert micros_to_ns(micros, "t") == micros * 1000
    assert micros_to_ns(str(micros), "t") == micros * 1000


@pytest.mark.parametrize("value", ["abc", "1e30", "nan", [1], {"a": 1}, str(2**63)])
def test_micros_to_ns_rejects(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        micros_to_ns(value, "t")


# --- bad input never crashes ------------------------------------------------------------------


def test_empty_input(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    result = read(path)
    assert result.spans.is_empty()
    assert result.stats.skipped == 0


def test_truncated_input(tmp_path: Path) -> None:
    data = (FIXTURES / "shared.json").read_bytes()
    path = tmp_path / "truncated.json"
    path.write_bytes(data[: len(data) // 2])
    result = read(path)
    assert result.spans.is_empty()
    assert result.stats.skipped == 1
    assert result.stats.problems[0][0].startswith(f"{path}:")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    data = (FIXTURES / "spans.jsonl").read_bytes().replace(b'"single"', b'"sin\xffgle"')
    path = tmp_path / "latin.jsonl"
    path.write_bytes(data)
    result = read(path)
    # Counted at its line; the splitter then reads on with the byte replaced, so no span of
    # the file is lost to one bad byte.
    assert result.stats.problems[0] == (
        f"{path}:1",
        "invalid UTF-8 bytes replaced (with U+FFFD): 1 byte in the input",
    )
    # The byte is replaced and counted, not a skipped document: the one skip is the truncated
    # document the fixture holds on purpose (line 5).
    assert (result.stats.lines, result.stats.records, result.stats.skipped) == (3, 2, 1)
    assert result.stats.problems[1][0] == f"{path}:5"
    assert result.stats.ignored[UTF8_REPLACED] == 1
    assert result.spans["name"].to_list() == ["sin\ufffdgle", "in array", "in array too"]


def test_top_level_not_spans(tmp_path: Path) -> None:
    path = tmp_path / "object.json"
    path.write_text('{"spans": "no"}')
    result = read(path)
    assert result.spans.is_empty()
    assert (result.stats.records, result.stats.skipped) == (0, 1)


# --- detection --------------------------------------------------------------------------------


def test_sniff() -> None:
    assert zipkin_json.sniff((FIXTURES / "shared.json").read_bytes())
    assert zipkin_json.sniff((FIXTURES / "spans.jsonl").read_bytes())
    assert not zipkin_json.sniff(b'{"traceId": "1", "id": "2", "msg": "a log line"}\n')
    assert not zipkin_json.sniff(b'[{"traceID": "1", "spanID": "2"}]')
    assert not zipkin_json.sniff(b'{"resourceSpans": [{"traceId": "1", "id": "2"}]}')


def test_through_ingest() -> None:
    telemetry = load([str(FIXTURES / "shared.json")])
    assert telemetry.inputs[0].format == "zipkin-json"
    assert telemetry.spans.height == 16
    counts = Counter(telemetry.spans["trace_id"])
    assert counts == {"000000000000cafe": 15, "000000000000beef": 1}
