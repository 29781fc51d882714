"""The mutations test_fuzz.py applies to seed inputs (see its docstring for how they are used).

``mutate`` draws one to three mutations from the given RNG and applies them in turn. JSON-aware
mutations find the documents of an input whatever its layout (one document, one per line, or
pretty-printed ones back to back) with ``json.JSONDecoder.raw_decode``, edit one node of one
document, and put it back in place; when the input no longer parses (an earlier mutation broke
it) they fall back to a byte mutation. Values orjson cannot write (integers beyond 64 bits,
lone surrogates, nesting deeper than orjson allows) are spliced in as raw JSON text.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"
_INVALID_UTF8 = (b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x80")
_JUNK = (b"}", b"]", b",", b'"', b"{", b"[", b"\\", b"null", b"\n", b"\x1b[31m", b"\t")


class Raw:
    """Raw JSON text to splice where a value goes."""

    def __init__(self, text: str):
        self.text = text


# Values that stress readers and reports: wrong magnitudes, times far out of range, markup.
_HOSTILE: tuple[Any, ...] = (
    0,
    -1,
    -(2**63),
    2**63 - 1,
    Raw("9223372036854775808"),  # int64 max + 1
    Raw("123456789012345678901234567890"),
    Raw("-123456789012345678901234567890"),
    Raw("1e400"),  # infinity once parsed
    Raw("NaN"),  # not JSON, but the standard library's decoder takes it
    Raw("-Infinity"),
    Raw("-0"),
    1.5,
    1e308,
    "253402300799999999",  # 9999-12-31T23:59:59.999 in µs
    "253402300799999999999",  # the same in ns: beyond int64
    253402300799999999,
    "9999-12-31T23:59:59.999999Z",
    "10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "",
    " ",
    "0x",
    "0",
    "00000000000000000000000000000000",
    "zz-not-hex-!",
    "ABCDEF",
    "abc",  # odd length
    "[bold red]redis GET [shard-1][/]",
    "[link=file:///etc/passwd]click[/link]",
    "\x1b[2J\x1b[31mred\x1b[0m",
    "line\nbreak\r\nand\ttab",
    "\u202eevil\u200b",
    "nul\x00inside",
    Raw('"\\ud800 lone surrogate"'),
    Raw('"\\udfff"'),
    "😀" * 50,
    "x" * 100_000,
    True,
    None,
    [],
    {},
    [None, 1, "a", [2], {"k": "v"}],
    {"nested": {"deeper": {"deepest": [1, {"a": None}]}}},
)
_ANY_TYPE: tuple[Any, ...] = (None, True, False, 0, -7, 3.25, "", "text", [], {}, [1], {"a": 1})


def _deep(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def json_documents(text: str, *, between: str = " \t\r\n\ufeff") -> list[tuple[int, int, Any]]:
    """(start, end, value) of every JSON document in ``text``, written back to back with only
    the characters ``between`` around them; [] if anything does not parse."""
    decoder = json.JSONDecoder()
    found = []
    position = 0
    while True:
        while position < len(text) and text[position] in between:
            position += 1
        if position >= len(text):
            return found
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            return []
        found.append((position, end, value))
        position = end


def _nodes(value: Any, limit: int = 20_000) -> list[tuple[Any, Any]]:
    """(container, key) of every node below ``value``, breadth first, without recursion."""
    out: list[tuple[Any, Any]] = []
    queue = [value]
    while queue and len(out) < limit:
        container = queue.pop()
        if isinstance(container, dict):
            items = list(container.items())
        elif isinstance(container, list):
            items = list(enumerate(container))
        else:
            continue
        for key, child in items:
            out.append((container, key))
            queue.append(child)
    return out


def _dumps(value: Any) -> str:
    raws: list[str] = []

    def default(obj: Any) -> str:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(obj).__name__)

    text = orjson.dumps(value, default=default).decode()
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000RAW{index}\\u0000"', raw)
    return text


def _edit_json(
    rng: random.Random, data: bytes, edit: Callable[[random.Random, Any], bool]
) -> bytes | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    documents = json_documents(text)
    if not documents:
        return None
    start, end, value = rng.choice(documents)
    holder = [value]
    if not edit(rng, holder):
        return None
    try:
        replacement = _dumps(holder[0])
    except (TypeError, orjson.JSONEncodeError):
        return None
    return (text[:start] + replacement + text[end:]).encode("utf-8", errors="surrogatepass")


def _drop_key(rng: random.Random, holder: list[Any]) -> bool:
    nodes = _nodes(holder[0])
    if not nodes:
        return False
    container, key = rng.choice(nodes)
    del container[key]
    return True


def _retype(rng: random.Random, holder: list[Any]) -> bool:
    nodes = _nodes(holder[0])
    if not nodes:
        holder[0] = rng.choice(_ANY_TYPE)
        return True
    container, key = rng.choice(nodes)
    old = container[key]
    choices = [v for v in _ANY_TYPE if type(v) is not type(old)]
    container[key] = rng.choice(choices)
    return True


def _hostile(rng: random.Random, holder: list[Any]) -> bool:
    nodes = _nodes(holder[0])
    if not nodes:
        return False
    # Prefer leaves (ids, times, names) over whole subtrees.
    leaves = [(c, k) for c, k in nodes if not isinstance(c[k], (dict, list))] or nodes
    container, key = rng.choice(leaves)
    container[key] = (
        _deep(rng.choice((50, 600, 5000))) if rng.random() < 0.08 else rng.choice(_HOSTILE)
    )
    return True


# -- byte and line mutations ---------------------------------------------------------------


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data) + 1)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: _pos(rng, data)]


def _flip_bits(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _insert(rng: random.Random, data: bytes, pieces: tuple[bytes, ...]) -> bytes:
    for _ in range(rng.randint(1, 4)):
        at = _pos(rng, data)
        data = data[:at] + rng.choice(pieces) + data[at:]
    return data


def _in_string(rng: random.Random, data: bytes, piece: bytes) -> bytes:
    """Put ``piece`` just after a quote, so it lands inside a JSON string more often than not."""
    quotes = [match.start() for match in re.finditer(b'"', data)]
    at = rng.choice(quotes) + 1 if quotes else _pos(rng, data)
    return data[:at] + piece + data[at:]


def _lines_op(rng: random.Random, data: bytes, op: str, others: list[bytes]) -> bytes:
    lines = data.split(b"\n")
    if op == "duplicate_lines":
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
    elif op == "shuffle_lines":
        rng.shuffle(lines)
    elif op == "drop_lines" and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    elif op == "blank_lines":
        for _ in range(rng.randint(1, 3)):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice((b"", b"   ", b"\t", b"\r")))
    elif op == "own_keys":
        return _own_keys(rng, data)
    elif op == "splice_other":
        other = rng.choice(others).split(b"\n")
        start = rng.randrange(len(other))
        chunk = other[start : start + rng.randint(1, 3)]
        at = rng.randrange(len(lines) + 1)
        lines[at:at] = chunk
    return b"\n".join(lines)


_BYTE_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncate": _truncate,
    "flip_bits": _flip_bits,
    "junk": lambda rng, d: _insert(rng, d, _JUNK),
    "nul": lambda rng, d: _insert(rng, d, (b"\x00",)),
    "bom_start": lambda rng, d: BOM + d,
    "bom_inside": lambda rng, d: _insert(rng, d, (BOM, b"\n" + BOM)),
    "crlf": lambda rng, d: d.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
    "cr_only": lambda rng, d: d.replace(b"\n", b"\r"),
    "invalid_utf8": lambda rng, d: _in_string(rng, d, rng.choice(_INVALID_UTF8)),
    "empty": lambda rng, d: rng.choice((b"", b"\n", b"  \n\n", BOM, b"\x00")),
}
# -- attributes, big Collector lines, dates ------------------------------------------------


def _kvlist_text(levels: int) -> str:
    """An OTLP AnyValue nesting ``levels`` kvlistValues (4 JSON levels each), as JSON text:
    deeper than orjson writes."""
    opening = '{"kvlistValue":{"values":[{"key":"k","value":'
    return opening * levels + '{"stringValue":"x"}' + "}]}}" * levels


# Values of the wrong shape for an attribute (OTLP AnyValue, Jaeger tag, Zipkin tag string).
_WRONG_ATTRIBUTE_VALUES: tuple[Any, ...] = (
    {"intValue": [1]},
    {"intValue": "not a number"},
    {"intValue": True},
    {"intValue": Raw("1e400")},
    {"stringValue": {"nested": "object"}},
    {"stringValue": None},
    {"arrayValue": 5},
    {"arrayValue": {"values": "x"}},
    {"arrayValue": {"values": [{"intValue": {}}]}},
    {"kvlistValue": [1, 2]},
    {"kvlistValue": {"values": [{"key": 1}, "x", None]}},
    {"doubleValue": "NaN"},
    {"boolValue": "yes"},
    {"bytesValue": 7},
    {"unknownValue": 1},
    {},
    None,
    [],
    [1, {"a": [2]}],
    5,
    "plain",
    True,
)
_DEEP_LEVELS = (20, 33, 40, 150, 300)  # x4 JSON levels: the limit of 128 lies in between
_DEEP_BRACKETS = (100, 127, 129, 200, 1100)


def _attribute_slots(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every attribute value: OTLP KeyValue pairs and Jaeger tags (the
    pair's "value"), and the entries of "tags"/"attributes" objects (Zipkin, console)."""
    slots: list[tuple[Any, Any]] = []
    for container, key in _nodes(value):
        node = container[key]
        if isinstance(node, dict) and "key" in node and "value" in node:
            slots.append((node, "value"))
        elif key in ("tags", "attributes") and isinstance(node, dict):
            slots.extend((node, k) for k in node)
            slots.append((node, "fuzz.added"))
    return slots


def _deep_attribute(rng: random.Random, holder: list[Any]) -> bool:
    slots = _attribute_slots(holder[0])
    if not slots:
        return False
    container, key = rng.choice(slots)
    if rng.random() < 0.6:
        container[key] = Raw(_kvlist_text(rng.choice(_DEEP_LEVELS)))
    else:
        container[key] = _deep(rng.choice(_DEEP_BRACKETS))
    return True


def _wrong_attribute(rng: random.Random, holder: list[Any]) -> bool:
    slots = _attribute_slots(holder[0])
    if not slots:
        return False
    container, key = rng.choice(slots)
    if key == "value" and rng.random() < 0.2:
        container["key"] = rng.choice((5, None, ["k"], {"k": 1}, ""))
    else:
        container[key] = rng.choice(_WRONG_ATTRIBUTE_VALUES)
    return True


_SPAN_IDS = ("spanId", "spanID", "id")
# Ways one span can be malformed while its neighbours are fine.
_SPAN_BREAKAGES: tuple[Callable[[dict[str, Any]], None], ...] = (
    lambda span: span.pop("spanId", None) or span.pop("spanID", None) or span.pop("id", None),
    lambda span: span.pop("traceId", None) or span.pop("traceID", None),
    lambda span: span.update({k: True for k in span if k in _TIME_KEYS}),
    lambda span: span.update({k: [1] for k in span if k in _TIME_KEYS}),
    lambda span: span.update({k: {"ns": 1} for k in span if k in _TIME_KEYS}),
    lambda span: span.update({k: 5 for k in span if k in _SPAN_IDS}),
    lambda span: span.update(name=["a list"]),
    lambda span: span.update(kind={"k": 1}),
    lambda span: span.update(status="broken"),
    lambda span: span.update(attributes=5),
    lambda span: span.update(events="x"),
    lambda span: span.update(links=[1]),
    lambda span: span.update(parentSpanId=7),
    lambda span: span.update(attributes=Raw("[" + _kvlist_text(40) + "]")),
)


def _span_lists(value: Any) -> list[list[Any]]:
    lists = [
        container[key]
        for container, key in _nodes(value)
        if key == "spans" and isinstance(container[key], list) and container[key]
    ]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        lists.append(value)  # a Zipkin array
    return [s for s in lists if all(isinstance(span, dict) for span in s)]


def _bad_span_in_big_document(rng: random.Random, holder: list[Any]) -> bool:
    """Grow one span list to a Collector-sized batch (fresh span ids) and break one span."""
    lists = _span_lists(holder[0])
    if not lists:
        return False
    spans = rng.choice(lists)
    template = list(spans)
    size = rng.choice((20, 120, 350))
    spans[:] = []
    for number in range(size):
        span = json.loads(json.dumps(template[number % len(template)]))
        for key in _SPAN_IDS:
            if isinstance(span.get(key), str):
                span[key] = f"{number + 0xF000:016x}"
        spans.append(span)
    rng.choice(_SPAN_BREAKAGES)(spans[rng.randrange(size)])
    return True


_TIME_KEYS = frozenset(
    (
        "startTimeUnixNano",
        "endTimeUnixNano",
        "timeUnixNano",
        "observedTimeUnixNano",
        "startTime",
        "timestamp",
        "start_time",
        "end_time",
        "observed_timestamp",
        "time",
        "ts",
        "@timestamp",
        "asctime",
    )
)
_EXTREME_ISO = (
    "0001-01-01T00:00:00Z",
    "1500-01-01T00:00:00Z",
    "1677-09-21T00:12:43.145224191Z",
    "1677-09-21T00:12:43.145224192Z",
    "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z",
    "2262-04-12T01:00:00+02:00",
    "9999-12-31T23:59:59.999999999Z",
    "2026-02-30T00:00:00Z",
    "2026-11-26T25:00:00Z",
    "2026-11-26T08:00:00+24:00",
)
_EXTREME_NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    -(2**63),
    2**63 - 1,
    Raw("9223372036854775808"),
    "9223372036854775808",
    "-9223372036854775809",
    -62135596800,  # 0001-01-01 in epoch seconds
    253402300799,  # 9999-12-31 in epoch seconds
    253402300799999999,
    1e19,
)


def _extreme_date(rng: random.Random, holder: list[Any]) -> bool:
    slots = [(c, k) for c, k in _nodes(holder[0]) if k in _TIME_KEYS]
    if not slots:
        return False
    container, key = rng.choice(slots)
    current = container[key]
    iso = isinstance(current, str) and "-" in current and ":" in current
    container[key] = rng.choice(_EXTREME_ISO if iso or rng.random() < 0.2 else _EXTREME_NUMBERS)
    return True


# -- keys: one object with very many, lines that each bring their own ----------------------

#: Keys added to one object: past TRACELENS_MAX_KEYS_PER_LINE (10,000), or wide but within it
#: (past a log block's column budget of 1,000).
_MANY_KEYS = (1_100, 3_000, 10_001, 10_050)
_KEY_VALUES: tuple[Any, ...] = (0, 7, -1.5, "", "v", 'q"\\', "\x01", True, None, [1], {"in": 1})


def _many_keys(rng: random.Random, holder: list[Any]) -> bool:
    objects = [holder[0]] if isinstance(holder[0], dict) else []
    objects += [c[k] for c, k in _nodes(holder[0]) if isinstance(c[k], dict)]
    if not objects:
        return False
    target = rng.choice(objects)
    for index in range(rng.choice(_MANY_KEYS)):
        target[f"many{index}"] = rng.choice(_KEY_VALUES)
    return True


def _own_keys(rng: random.Random, data: bytes) -> bytes:
    """Every object line gets keys no other line has (enough for ~1,200 distinct keys in all):
    for a JSON-lines log, more than a block's columns may hold."""
    lines = data.split(b"\n")
    per_line = max(3, 1_200 // max(len(lines), 1) + 1)
    for number, line in enumerate(lines):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        for index in range(per_line):
            name = rng.choice((f"own{number}_{index}", f"own{number}.n{index}"))
            value[name] = rng.choice(_KEY_VALUES)
        try:
            lines[number] = orjson.dumps(value)
        except TypeError:  # nested deeper than orjson writes: left as it was
            continue
    return b"\n".join(lines)


_JSON_MUTATIONS: dict[str, Callable[[random.Random, list[Any]], bool]] = {
    "drop_key": _drop_key,
    "retype": _retype,
    "hostile_value": _hostile,
    "deep_attribute": _deep_attribute,
    "wrong_attribute": _wrong_attribute,
    "bad_span_in_big_document": _bad_span_in_big_document,
    "extreme_date": _extreme_date,
    "many_keys": _many_keys,
}
_LINE_MUTATIONS = (
    *("duplicate_lines", "shuffle_lines", "drop_lines", "blank_lines", "splice_other"),
    "own_keys",
)
# JSON edits keep most of a file readable, so they find deeper bugs: draw them most often.
_WEIGHTS = {
    **dict.fromkeys(_JSON_MUTATIONS, 3),
    **dict.fromkeys(_LINE_MUTATIONS, 1),
    **dict.fromkeys(_BYTE_MUTATIONS, 1),
    "empty": 0.2,
    "gzip": 0.6,
    "gzip_truncated": 0.4,
    "gzip_corrupt": 0.4,
}


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> tuple[bytes, list[str], bool]:
    """(mutated bytes, names of the mutations applied, whether to gzip the result on disk)."""
    names = list(_WEIGHTS)
    weights = [_WEIGHTS[n] for n in names]
    applied: list[str] = []
    gzipped = False
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choices(names, weights)[0]
        if name == "gzip":
            gzipped = True
        elif name in ("gzip_truncated", "gzip_corrupt"):
            packed = gzip.compress(data, mtime=0)
            if name == "gzip_truncated":
                data = packed[: rng.randrange(2, max(len(packed) - 1, 3))]
            else:  # damage the deflate stream or the CRC trailer, keep the magic bytes
                data = packed[:10] + _flip_bits(rng, packed[10:])
            applied.append(name)
            break  # later text mutations would not mean anything on compressed bytes
        elif name in _JSON_MUTATIONS:
            edited = _edit_json(rng, data, _JSON_MUTATIONS[name])
            if edited is None:
                name = "flip_bits"
                edited = _flip_bits(rng, data)
            data = edited
        elif name in _LINE_MUTATIONS:
            data = _lines_op(rng, data, name, others)
        else:
            data = _BYTE_MUTATIONS[name](rng, data)
        applied.append(name)
    return data, applied, gzipped
