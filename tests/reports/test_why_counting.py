"""`why` counts each candidate value's units as a plain reading of the rules would: random
requests with attributes of few values, of values to pool, of nearly one value per request and
of numbers, in the spans and in the resource, counted by hand per request. The counts do not
depend on which values are kept as bits and which as rows."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_tracelens.core import analyze
from ml_tracelens.reports import why, why_candidates, why_holdings, why_units
from ml_tracelens.reports.documents import WhyRow
from ml_tracelens.schema import spans_from_columns

MS = 1_000_000
TOP = why_candidates.TOP_VALUES
BUILTIN = set(why_candidates.BUILTIN)


def requests_of(seed: int, count: int) -> tuple[dict[str, list[Any]], list[set[tuple[str, str]]]]:
    """Span columns of ``count`` requests (a root and up to three children), and each request's
    (attribute, value) pairs as the rules define them (``sel = y`` marks the selected ones)."""
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = defaultdict(list)
    held: list[set[tuple[str, str]]] = []
    stages = [f"stage-{i}" for i in range(rng.choice([3, 14]))]
    for index in range(count):
        trace = f"{index:032x}"
        pairs: set[tuple[str, str]] = set()
        start = index * 1000 * MS
        spans = [(f"r{index}", None, "POST /predict")]
        spans += [
            (f"c{index}-{k}", f"r{index}", rng.choice(stages)) for k in range(rng.randint(0, 3))
        ]
        for offset, (span_id, parent, name) in enumerate(spans):
            attributes: dict[str, Any] = {}
            if parent is None:
                attributes["sel"] = rng.choice("yn")
                attributes["near.id"] = f"id-{rng.randint(0, count)}"
            if rng.random() < 0.7:
                attributes["few"] = rng.choice(["a", "b", "c"])
            if rng.random() < 0.6:
                attributes["some"] = f"v{rng.randint(0, 16)}"
            if rng.random() < 0.5:
                attributes["number"] = rng.randint(0, 40)
            if rng.random() < 0.2:
                attributes["status"] = "custom"
            service = rng.choice(["api", "model", "db"])
            resource = {"service.name": service, "region": rng.choice(["eu", "us"])}
            if rng.random() < 0.3:
                resource["few"] = rng.choice(["a", "d"])
            status = rng.choice(["unset", "ok", "error"])
            columns["trace_id"].append(trace)
            columns["span_id"].append(span_id)
            columns["parent_id"].append(parent)
            columns["service"].append(service)
            columns["name"].append(name)
            columns["kind"].append("internal")
            columns["start_ns"].append(start + offset * MS)
            columns["end_ns"].append(start + (50 - offset) * MS)
            columns["status"].append(status)
            columns["attributes"].append(json.dumps(attributes))
            columns["resource"].append(json.dumps(resource))
            pairs |= {("service", service), ("stage", name), ("status", status)}
            for key, value in [*attributes.items(), *resource.items()]:
                if key == "service.name":
                    continue
                name_of = f"attr.{key}" if key in BUILTIN else key
                pairs.add((name_of, value if isinstance(value, str) else json.dumps(value)))
        held.append(pairs)
    return columns, held


def expected_counts(held: list[set[tuple[str, str]]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(selected, baseline) units of every categorical candidate the rules test: numeric
    attributes and identifiers left out, each attribute's values beyond its TOP most common
    (ties by value) pooled as OTHER."""
    selected = [("sel", "y") in pairs for pairs in held]
    units: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for unit, pairs in enumerate(held):
        for attribute, value in pairs:
            units[attribute][value].append(unit)
    counts: dict[tuple[str, str], tuple[int, int]] = {}

    def count(members: set[int]) -> tuple[int, int]:
        chosen = sum(selected[u] for u in members)
        return chosen, len(members) - chosen

    for attribute, values in units.items():
        numbers = all(_is_number(v) for v in values)
        if numbers and len(values) > TOP and attribute not in BUILTIN:
            continue
        if len(values) > TOP and len(values) * 2 > sum(len(u) for u in values.values()):
            continue
        ranked = sorted(values, key=lambda v: (-len(values[v]), v))
        for value in ranked[:TOP]:
            counts[(attribute, value)] = count(set(values[value]))
        if len(ranked) > TOP:
            pooled = {u for value in ranked[TOP:] for u in values[value]}
            counts[(attribute, why_candidates.OTHER)] = count(pooled)
    return counts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def rows(columns: dict[str, list[Any]]) -> list[WhyRow]:
    analysed = analyze(spans_from_columns(columns)).spans
    report = why.build(
        analysed=analysed,
        selection=why_units.Selection(where="attr.sel = 'y'"),
        min_count=1,
        show_all=True,
    )
    table = next(t for t in report.tables if t.key == "rows")
    return msgspec.convert(table.rows, list[WhyRow])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(30, 120))
def test_counts_follow_the_rules(seed: int, count: int) -> None:
    columns, held = requests_of(seed, count)
    found = {
        (r.attribute, r.value): (r.selection_count, r.baseline_count)
        for r in rows(columns)
        if r.test == "fisher"
    }
    assert found == {k: c for k, c in expected_counts(held).items() if c[0] >= 1}


@pytest.mark.parametrize(("values", "words"), [(0, 1), (3, 1), (64, 1), (1000, 4)])
def test_counts_do_not_depend_on_which_values_are_bits(
    values: int, words: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns, _ = requests_of(7, 150)
    default = rows(columns)
    monkeypatch.setattr(why_holdings, "MASK_VALUES", values)
    monkeypatch.setattr(why_holdings, "MASK_WORDS", words)
    assert rows(columns) == default
