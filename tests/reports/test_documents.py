"""One JSON contract: every command's real --format json output decodes with its report's
document type, the envelope never shares a key with a report, a key several reports print has
one type, `tracelens schema` prints the schema of those types, and the README's key table names
exactly the keys the types have."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from ml_tracelens.reports import documents
from ml_tracelens.reports.result import Column, Report, Table
from tests.conftest import GOLDEN, REPO

#: A key two reports print with different types, on purpose: summary's `spans` counts the
#: dump's spans, show's lists one request's spans (both documented in the README).
DIFFERENT_BY_DESIGN = {"spans"}


def golden_documents() -> list[tuple[str, str]]:
    found = []
    for path in sorted(GOLDEN.glob("*.json")):
        stdout = path.read_text().split("--- stdout\n", 1)[1].split("--- stderr", 1)[0]
        if stdout.strip():
            found.append((path.name, stdout))
    return found


@pytest.mark.parametrize(("name", "text"), golden_documents(), ids=lambda v: v[:40])
def test_every_commands_json_decodes_with_its_type(name: str, text: str) -> None:
    document = documents.decode(text)
    assert isinstance(document, documents.DOCUMENTS[json.loads(text)["report"]])


def test_every_report_has_recorded_json_output() -> None:
    reports = {json.loads(text)["report"] for _, text in golden_documents()}
    assert reports == set(documents.DOCUMENTS)


def test_a_wrongly_typed_value_is_caught() -> None:
    _, text = next(item for item in golden_documents() if item[0] == "latency-otlp.json")
    document = json.loads(text)
    document["requests"]["count"] = "350"
    with pytest.raises(msgspec.ValidationError, match=r"requests\.count"):
        documents.decode(json.dumps(document))
    document = json.loads(text)
    document["unexpected"] = 1
    with pytest.raises(msgspec.ValidationError, match="unexpected"):
        documents.decode(json.dumps(document))


def test_no_report_key_repeats_an_envelope_key() -> None:
    for report, kind in documents.DOCUMENTS.items():
        own = set(kind.__struct_fields__) - documents.ENVELOPE_KEYS
        # A subclass field of an envelope name would replace the envelope's own.
        hints = typing.get_type_hints(kind)
        envelope = typing.get_type_hints(documents.Envelope)
        assert all(hints[k] == envelope[k] for k in documents.ENVELOPE_KEYS), report
        assert own, report


def _json_type(annotation: Any) -> str:
    """The JSON type of an annotation, null aside."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        kinds = {_json_type(a) for a in typing.get_args(annotation) if a is not type(None)}
        assert len(kinds) == 1, annotation
        return kinds.pop()
    if origin is list or annotation is list:
        return "array"
    if (
        origin is dict
        or annotation is dict
        or (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct))
    ):
        return "object"
    if annotation is bool:
        return "boolean"
    if annotation in (int, float):
        return "number"
    if annotation is str:
        return "string"
    return "any"


def test_a_key_has_one_type_in_every_report() -> None:
    seen: dict[str, dict[str, str]] = {}
    for report, kind in documents.DOCUMENTS.items():
        for key, annotation in typing.get_type_hints(kind).items():
            seen.setdefault(key, {})[report] = _json_type(annotation)
    clashes = {
        key: types
        for key, types in seen.items()
        if len(set(types.values())) > 1 and key not in DIFFERENT_BY_DESIGN
    }
    assert clashes == {}


@pytest.mark.parametrize("report", list(documents.DOCUMENTS))
def test_the_schema_command_prints_the_schema_of_the_type(report: str) -> None:
    result = CliRunner().invoke(app, ["schema", report])
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(json.dumps(msgspec.json.schema(documents.DOCUMENTS[report])))
    definition = printed["$defs"][documents.DOCUMENTS[report].__name__]
    assert set(definition["properties"]) == set(documents.DOCUMENTS[report].__struct_fields__)


def test_an_unknown_report_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["schema", "latencyy"])
    assert result.exit_code == 2
    assert "choose one of summary, latency" in result.stderr


def _readme_keys() -> dict[str, set[str]]:
    """Report -> the backticked names of its row in the README's JSON key table."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## JSON output") :]
    rows = re.findall(r"^\| `([a-z]+)` \| (.+) \|$", section, re.M)
    return {report: set(re.findall(r"`([a-z_.]+)`", keys)) for report, keys in rows}


def _field_names(kind: Any, into: set[str]) -> set[str]:
    """Every key of a document type, nested ones too."""
    for key, annotation in typing.get_type_hints(kind).items():
        field = next(f for f in msgspec.structs.fields(kind) if f.name == key)
        into.add(field.encode_name)
        for inner in [annotation, *typing.get_args(annotation)]:
            for candidate in [inner, *typing.get_args(inner)]:
                if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                    _field_names(candidate, into)
    return into


def test_the_readme_names_the_keys_of_every_report() -> None:
    readme = _readme_keys()
    assert set(readme) == set(documents.DOCUMENTS)
    for report, kind in documents.DOCUMENTS.items():
        own = set(kind.__struct_fields__) - documents.ENVELOPE_KEYS
        top = {
            msgspec.structs.fields(kind)[i].encode_name
            for i, _ in enumerate(kind.__struct_fields__)
            if kind.__struct_fields__[i] in own
        }
        missing = top - readme[report]
        assert missing == set(), f"{report}: the README does not name {sorted(missing)}"
        every = _field_names(kind, set())
        # Values named in the table (metric names, sides) are allowed besides keys.
        unknown = {k for k in readme[report] - every - set(documents.DOCUMENTS) if k.isidentifier()}
        assert unknown <= _README_VALUES, (
            f"{report}: the README names {sorted(unknown - _README_VALUES)}"
        )


#: Words the README's key table quotes as values, not keys.
_README_VALUES = {
    "stage", "service", "slower", "faster", "baseline", "current", "stable", "moderate", "major",
    "prediction", "confidence", "count", "p50", "p95", "p99", "error_rate", "requests", "request",
    "cp_share", "errors", "self_mean", "mean", "max", "model", "operation", "provider",
    "fisher", "root", "span", "id", "typical",
}  # fmt: skip


def test_a_payload_type_cannot_declare_an_envelope_key() -> None:
    with pytest.raises(TypeError, match="repeats envelope keys: warnings"):

        class Clashing(documents.Payload):
            warnings: int


def test_a_document_type_refuses_a_table_key_its_payload_already_has() -> None:
    with pytest.raises(TypeError, match="table keys repeat other keys: requests"):
        documents.document("X", documents.LatencyPayload, {"requests": list[int]})


def test_a_report_whose_table_repeats_a_payload_key_cannot_be_built() -> None:
    unmeasured = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "error_rate")
    summary = documents.RequestSummary(count=0, errors=0, **dict.fromkeys(unmeasured))
    payload = documents.ErrorsPayload(requests=summary, distinct_messages=0)
    table = Table(key="requests", title="Requests", columns=(Column("n", "n"),), rows=[])
    with pytest.raises(ValueError, match="JSON keys printed twice: requests"):
        Report(name="errors", title="x", tables=[table], payload=payload)
