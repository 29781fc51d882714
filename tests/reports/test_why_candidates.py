"""The attribute texts `why` reads by pattern give the same (attribute, value) items as a JSON
parser: every layout the readers keep (OTLP KeyValue lists compact or spaced, objects), with
escapes, nested values and numbers spelled either way."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.reports import why_candidates

KEYS = st.text(alphabet=st.sampled_from('ab.\\"{}[],: é'), min_size=1, max_size=8)
SCALARS = st.one_of(
    st.text(alphabet=st.sampled_from('xy\\"{}[],: é\n'), max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(-1e5, 1e5, allow_nan=False).map(lambda f: round(f, 3)),
    st.booleans(),
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(KEYS, SCALARS, max_size=2)
)


def otlp_value(value: Any, *, int_as_string: bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value) if int_as_string else value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_value(v, int_as_string=True) for v in value]}}
    return {
        "kvlistValue": {
            "values": [
                {"key": k, "value": otlp_value(v, int_as_string=True)} for k, v in value.items()
            ]
        }
    }


def expected(attributes: dict[str, Any]) -> set[tuple[str, str]]:
    """What a JSON parser makes of the attributes: scalars only, strings bare, the rest as JSON
    writes them."""
    return {
        (key, value if isinstance(value, str) else json.dumps(value))
        for key, value in attributes.items()
        if not isinstance(value, list | dict)
    }


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.dictionaries(KEYS, VALUES, max_size=4), min_size=1, max_size=6),
    st.sampled_from(["compact list", "spaced list", "compact object", "spaced object"]),
    st.booleans(),
)
def test_every_layout_reads_as_a_json_parser_does(
    documents: list[dict[str, Any]], layout: str, int_as_string: bool
) -> None:
    separators = (",", ":") if layout.startswith("compact") else (", ", ": ")
    texts = []
    for attributes in documents:
        if layout.endswith("list"):
            data: Any = [
                {"key": k, "value": otlp_value(v, int_as_string=int_as_string)}
                for k, v in attributes.items()
            ]
        else:
            data = attributes
        texts.append(json.dumps(data, separators=separators, ensure_ascii=False))
    frame = pl.DataFrame(
        {"code": list(range(len(texts))), "_text": texts},
        schema={"code": pl.UInt32, "_text": pl.String},
    )
    parsed = why_candidates._parsed(frame)
    found = parsed.links.join(parsed.items, on="item")
    for code, attributes in enumerate(documents):
        got = found.filter(pl.col("code") == code).select("attribute", "value").rows()
        assert sorted(got) == sorted(expected(attributes)), texts[code]
    # Each item is one distinct spelling, and every link names an item.
    assert parsed.items.get_column("item").is_unique().all()
    assert parsed.links.join(parsed.items, on="item", how="anti").is_empty()
