"""Mutation fuzzer: hostile variants of real dumps never crash tracelens or lose lines.

Seeds are the real fixtures in ../shared/fixtures, the sample data and the small fixtures under
tests/fixtures (plus a Parquet file written by ``convert``). Large files contribute a fixed slice
(a few lines, the first traces) so one case runs in tens of milliseconds. Each case draws one to
three mutations from an RNG seeded by (TRACELENS_FUZZ_SEED, case number):

- bytes: truncate, flip bits, insert junk, NUL, a BOM, CRLF or bare CR line ends, invalid UTF-8,
  gzip the result, gzip and truncate or corrupt it, empty it;
- lines: duplicate, shuffle, drop, add blank lines, splice in lines of another seed (mixed
  formats in one file);
- JSON: drop a key, retype a value, put a hostile value in its place (huge, negative and
  beyond-int64 numbers, year-9999 and later times, rich markup, control characters, lone
  surrogates, long strings, deep nesting);
- attributes: nest one value past the depth limit (OTLP kvlistValues or bare arrays), give one
  a wrong type or shape (an intValue list, a kvlist of non-pairs, a non-string key);
- a span list grown to a Collector-sized batch (20 to 350 spans) with one span broken (no id, a
  boolean, list or object time, a wrong-typed field, a too-deep attribute list);
- extreme dates: ISO times at and beyond the Int64 ends (1677, 2262), years 1 and 9999,
  Feb 30, hour 25; epoch numbers at and beyond Int64;
- keys: one object given 1,100 to 10,050 keys (past a log block's column budget, or past
  TRACELENS_MAX_KEYS_PER_LINE), or every line given keys of its own (~1,200 in all).

Every case runs ``summary --format json`` and usually one other command (any of them, any output
format, sometimes with --strict, filters or --by, sometimes through the cache or on a directory
that also holds an intact input of another format) in-process through typer's CliRunner
(tests/_robustness.py), and asserts:

- the exit code is 0, 1 or 2; no exception escaped; no call hung (a per-call alarm);
- no "Traceback" and no "internal error" (the CLI's catch-all for bugs) in stdout or stderr;
- exit 2 explains itself on stderr ("error: ...") and leaves stdout empty;
- JSON output parses;
- line accounting: records + skipped = lines for every input; for a line-based input (JSON
  logs, or a first line that is a whole JSON value followed by more lines), inputs[].lines
  equals the lines of the file counted here by splitting on b"\n";
- span accounting (no silent loss): each line (or document) is judged here, without
  tracelens (``judge_documents``): unreadable (not JSON, or not the format's containers),
  readable, or either (nested past the depth limit, OTLP log lines, console objects, odd
  resources). Only unreadable lines and some of the "either" ones may be skipped whole, and
  the spans read + skipped inside lines that were read (+ duplicates a Zipkin-lineage reader
  merged, which it counts) + those of the lines skipped whole = the spans of the file;
  console objects count spans and log records alike;
- with --strict, an input with skipped or altered records (``ALTERATIONS``: a too-deep value
  dropped, invalid UTF-8 replaced) fails with exit 2 naming ``file:line`` or ``file#index``,
  and one without is never "rejected by --strict";
- differentials: an OTLP file read on two processes (forced) gives the same summary as one
  process, JSON-lines logs read with every key past the column budget (triples instead of
  columns) give the same summary, and the Parquet file ``convert`` writes reads back to the
  same summary.

Problems matching ``KNOWN_ISSUES`` (bugs reported to the lead, in files this suite's author may
not edit) make a case xfail instead of fail; the on-demand run counts them separately.

Running it:

    pytest tests/acceptance/test_fuzz.py             # DEFAULT_CASES cases, well under a minute
    TRACELENS_FUZZ_CASES=5000 pytest tests/acceptance/test_fuzz.py -m slow -s
                                                     # on demand: N cases in one loop, with a
                                                     # summary of what was found
    TRACELENS_FUZZ_SEED=7 ...                        # another seed (default 20251126)
    TRACELENS_FUZZ_OUT=DIR ...                       # keep each failing input in DIR

A failure names the case, the seed file, the mutations and the command, enough to rerun it.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from ml_tracelens.cli import app
from ml_tracelens.readers.base import ALTERATIONS
from ml_tracelens.readers.support import log_keys
from ml_tracelens.readers.support.zipkin_model import FRAGMENTS_MERGED
from tests._robustness import Outcome, run_cli
from tests.acceptance._fuzz_mutations import BOM, json_documents, mutate
from tests.acceptance._fuzz_seeds import Seed, build_seeds
from tests.factories import otlp_document

DEFAULT_CASES = 240
BASE_SEED = int(os.environ.get("TRACELENS_FUZZ_SEED", "20251126"))
_STRICT_LOCATION = re.compile(r"error: .*?(:\d+|#[\w\[\]]+)")
#: Bugs in files this suite's author may not edit, reported to the lead: a case whose every
#: problem matches one is xfailed, not failed (test_input_hazards.py has a strict xfail for
#: each, which flips when it is fixed). Remove an entry once its fix lands.
KNOWN_ISSUES: tuple[tuple[str, str], ...] = ()


@dataclass
class Case:
    number: int
    seed: Seed
    mutations: list[str]
    data: bytes
    gzipped: bool


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    return build_seeds(tmp_path_factory.mktemp("seeds"))


def physical_lines(data: bytes) -> int:
    """Lines as a reader iterating a binary file sees them: split on b'\\n' only."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def is_line_based(data: bytes, fmt: str) -> bool:
    """Independent restatement of "line-based": JSON logs always; other JSON formats when the
    first line is a whole JSON value and more follows (jsondoc's rule)."""
    if fmt == "json-logs":
        return True
    if fmt in ("parquet", "empty", "unknown"):
        return False  # not read as lines (an unknown file in a directory is not read at all)
    first, newline, rest = data.partition(b"\n")
    if not newline or not rest:
        return False
    first = first.removeprefix(BOM)
    if not first.strip(b" \t\r\n"):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def check_accounting(case: Case, path: Path, summary: Outcome) -> list[str]:
    if summary.exit_code != 0:
        return []
    document = orjson.loads(summary.stdout)
    problems = []
    for entry in document["inputs"]:
        if entry["path"] != str(path):
            continue
        fmt = entry["format"]
        if entry["records"] + entry["skipped"] != entry["lines"]:
            problems.append(
                f"accounting: {fmt} records {entry['records']} + skipped {entry['skipped']} "
                f"!= lines {entry['lines']}"
            )
        problems += check_items(case.data, entry)
        if not is_line_based(case.data, fmt):
            continue
        lines = physical_lines(case.data)
        if entry["lines"] != lines:
            problems.append(f"accounting: {fmt} reports {entry['lines']} lines, file has {lines}")
    return problems


#: What a Zipkin-lineage reader folds into another span and counts (``ignored``).
_MERGED = ("identical duplicate spans dropped", FRAGMENTS_MERGED)
#: limits.py's default: a document nested deeper may be skipped whole.
_DEPTH_LIMIT = 128


@dataclass
class Document:
    """One line or document of an input as this suite judges it, independently of tracelens."""

    spans: int
    #: "readable": must be read (its spans read or skipped one by one); "unreadable": must be
    #: skipped whole; "either": the reader may skip it whole (too deep, or a shape whose
    #: validity depends on more than its containers)
    verdict: str


def check_items(data: bytes, entry: dict[str, Any]) -> list[str]:
    """No silent loss: every span of the file is read, skipped on its own, merged into a twin,
    or inside a line or document that was skipped whole; and only lines or documents that are
    unreadable (or may be) are skipped whole."""
    documents = judge_documents(data, entry["format"])
    if documents is None:
        return []
    unreadable = sum(d.verdict == "unreadable" for d in documents)
    either = [d.spans for d in documents if d.verdict == "either"]
    extra = entry["skipped"] - unreadable
    name = entry["format"]
    if not 0 <= extra <= len(either):
        return [
            f"span accounting: {name} skipped {entry['skipped']} lines/documents whole; "
            f"{unreadable} are unreadable and {len(either)} more may be skipped"
        ]
    read = entry["spans"] + (entry["logs"] if name == "otel-console" else 0)
    merged = sum(entry["ignored"].get(what, 0) for what in _MERGED)
    total = sum(d.spans for d in documents if d.verdict != "unreadable")
    lost = total - read - entry["skipped_items"] - merged
    if len(either) > 12:
        return []  # too many ways to choose the skipped ones
    if lost in {sum(c) for c in itertools.combinations(either, extra)}:
        return []
    return [
        f"silent loss: {name} read {read} + skipped {entry['skipped_items']} + merged {merged} "
        f"of {total} spans in readable lines/documents ({extra} of {either} skipped whole)"
    ]


def judge_documents(data: bytes, fmt: str) -> list[Document] | None:
    """The lines (line-based input) or documents of ``data``; None when this suite cannot
    split the input the reader's way or does not count the format's spans."""
    judge = {
        "otlp-json": _otlp_document,
        "jaeger-json": _jaeger_document,
        "zipkin-json": _zipkin_document,
        "otel-console": _console_document,
    }.get(fmt)
    if judge is None:
        return None
    out = []
    if is_line_based(data, fmt):
        for number, line in enumerate(data.split(b"\n"), start=1):
            line = line.removeprefix(BOM) if number == 1 else line
            if not line.strip(b" \t\r"):
                continue
            out.append(_judged_line(line, judge))
        return out
    text = data.removeprefix(BOM).decode("utf-8", errors="replace")
    documents = _back_to_back(text)
    if documents is None:
        return None
    return [_judged(value, judge) for value in documents]


def _back_to_back(text: str) -> list[Any] | None:
    """The JSON documents of ``text`` (one, or several back to back); None if any is broken
    (the reader then resynchronises in a way this suite does not repeat). Only JSON's own
    whitespace separates them: a BOM past the start is not JSON."""
    return [value for _, _, value in json_documents(text, between=" \t\r\n")] or None


def _judged_line(line: bytes, judge: Callable[[Any], Document]) -> Document:
    try:
        # JSON as RFC 8259 has it: 1e400 is a number (infinite), NaN is not JSON, nor is a BOM
        # (which json.loads would drop from bytes, hence the decoding here).
        return _judged(json.loads(line.decode("utf-8"), parse_constant=_not_json), judge)
    except UnicodeDecodeError:
        pass
    except (ValueError, RecursionError):
        return _UNREADABLE
    # Invalid UTF-8 in a part of the line the reader never looks at costs nothing: such a
    # line may be read or skipped.
    try:
        value = json.loads(line.decode("utf-8", errors="replace"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        return _UNREADABLE
    return Document(_judged(value, judge).spans, "either")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _judged(value: Any, judge: Callable[[Any], Document]) -> Document:
    document = judge(value)
    if document.verdict == "readable" and (
        _depth(value) > _DEPTH_LIMIT or _has_lone_surrogate(value)
    ):
        # Past the depth limit, or holding a string no UTF-8 output can carry (which orjson
        # refuses and a raw value may still hold): the reader may skip it whole.
        document.verdict = "either"
    return document


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


_UNREADABLE = Document(0, "unreadable")


def _otlp_document(document: Any) -> Document:
    keys = ("resourceSpans", "resourceLogs", "resourceMetrics")
    if not isinstance(document, dict) or not any(k in document for k in keys):
        return _UNREADABLE
    resources = document.get("resourceSpans") or []
    if not isinstance(resources, list):
        return _UNREADABLE
    count, verdict = 0, "readable"
    for resource in resources:
        if not isinstance(resource, dict):
            return _UNREADABLE
        scopes = resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans") or []
        if not isinstance(scopes, list):
            return _UNREADABLE
        for scope in scopes:
            spans = scope.get("spans") or [] if isinstance(scope, dict) else None
            if not isinstance(spans, list):
                return _UNREADABLE
            count += len(spans)
        if not _plain_resource(resource.get("resource")):
            verdict = "either"
    if "resourceLogs" in document or not count:
        verdict = "either"  # log records are judged whole; nothing to lose without spans
    return Document(count, verdict)


def _plain_resource(resource: Any) -> bool:
    if resource is None:
        return True
    if not isinstance(resource, dict):
        return False
    pairs = resource.get("attributes")
    return pairs is None or (
        isinstance(pairs, list)
        and all(isinstance(p, dict) and isinstance(p.get("key"), str) for p in pairs)
    )


def _jaeger_document(document: Any) -> Document:
    def trace(item: Any) -> int:
        # A trace that cannot be read counts each of its spans as skipped, or itself as one.
        spans = item.get("spans") if isinstance(item, dict) else None
        if isinstance(item, dict) and "spans" not in item and "spanID" in item:
            return 1
        return len(spans) if isinstance(spans, list) else 1

    if isinstance(document, dict) and "data" in document:
        data = document["data"]
        if data is not None and not isinstance(data, list):
            return _UNREADABLE
        return Document(sum(trace(t) for t in data or ()), "readable")
    if isinstance(document, dict) and ("spans" in document or "spanID" in document):
        if "spans" in document and not isinstance(document["spans"], list):
            return _UNREADABLE
        processes = document.get("processes")
        if processes is not None and not isinstance(processes, dict):
            return _UNREADABLE
        return Document(trace(document), "readable")
    if isinstance(document, list):
        if document and all(isinstance(i, dict) and "spans" in i for i in document):
            return Document(sum(trace(t) for t in document), "readable")
        return Document(len(document), "readable")
    return _UNREADABLE


def _zipkin_document(document: Any) -> Document:
    if isinstance(document, dict) and "traceId" in document:
        return Document(1, "readable")
    if isinstance(document, list):
        return Document(len(document), "readable")
    return _UNREADABLE


def _console_document(document: Any) -> Document:
    if isinstance(document, list):
        return Document(len(document), "readable")
    # One object is read or skipped whole, whatever field of it is wrong.
    return Document(1, "either")


def check_parallel(path: Path, target: str, summary: Outcome) -> list[str]:
    """Reading on two processes (forced for this small file) must give the same summary."""
    document = orjson.loads(summary.stdout)
    if not any(e["format"] == "otlp-json" for e in document["inputs"]):
        return []  # the only reader with a parallel path
    env = {"TRACELENS_PARALLEL_MIN_MB": "0", "TRACELENS_WORKERS": "2"}
    parallel = run_cli(["summary", "--format", "json", "--no-cache", target], env=env)
    if parallel.problems:
        return [f"{p} [summary, 2 workers]" for p in parallel.problems]
    if parallel.exit_code != 0:
        return [f"2 workers: exit {parallel.exit_code}: {parallel.stderr.strip()[:200]}"]
    other = orjson.loads(parallel.stdout)
    differs = sorted(k for k in document if document[k] != other.get(k))
    return [f"2 workers: summary differs in {differs}"] if differs else []


def check_spilled(target: str, summary: Outcome) -> list[str]:
    """Reading JSON-lines logs with every key past the column budget (all keys the mapping does
    not read as (row, key, text) triples) must give the same summary."""
    document = orjson.loads(summary.stdout)
    if not any(e["format"] == "json-logs" for e in document["inputs"]):
        return []
    budget = log_keys.MAX_COLUMNS
    log_keys.MAX_COLUMNS = 0
    try:
        spilled = run_cli(["summary", "--format", "json", "--no-cache", target])
    finally:
        log_keys.MAX_COLUMNS = budget
    if spilled.problems:
        return [f"{p} [summary, keys spilled]" for p in spilled.problems]
    if spilled.exit_code != 0:
        return [f"keys spilled: exit {spilled.exit_code}: {spilled.stderr.strip()[:200]}"]
    other = orjson.loads(spilled.stdout)
    differs = sorted(k for k in document if document[k] != other.get(k))
    return [f"keys spilled: summary differs in {differs}"] if differs else []


def _skipped_anything(summary: Outcome) -> bool | None:
    """Whether any input lost or altered something (what --strict refuses), stage log lines
    that could not become spans included."""
    if summary.exit_code != 0:
        return None
    document = orjson.loads(summary.stdout)
    if any("not turned into spans" in warning for warning in document["warnings"]):
        return True
    return any(
        e["skipped"] or e.get("skipped_items") or any(e["ignored"].get(a) for a in ALTERATIONS)
        for e in document["inputs"]
    )


# -- one case ---------------------------------------------------------------------------------

_COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
_OTHER = tuple(
    c
    for c in (
        *("latency", "errors", "bottlenecks", "traces", "show"),
        *("check", "diff", "convert", "models"),
    )
    if c in _COMMANDS
)
_FORMATS = ("table", "json", "csv", "markdown")
_HEX_ID = re.compile(rb"[0-9a-fA-F]{16,32}")


def make_case(number: int, seeds: list[Seed]) -> Case:
    rng = random.Random(f"{BASE_SEED}:{number}")
    seed = rng.choice(seeds)
    others = [s.data for s in seeds if s is not seed and s.suffix != ".parquet"]
    data, names, gzipped = mutate(rng, seed.data, others)
    return Case(number, seed, names, data, gzipped)


def _extra_args(rng: random.Random, command: str, case: Case, path: str, tmp: Path) -> list[str]:
    args = [command]
    if command == "show":
        ids = _HEX_ID.findall(case.seed.data[:50_000])
        ident = rng.choice(ids).decode() if ids and rng.random() < 0.8 else "deadbeefcafe"
        args += [ident[: rng.choice((6, 8, 16, 32))], path]
        if rng.random() < 0.5:
            args += rng.choice((["--attrs"], ["--collapse"], ["--critical-only"], ["--depth", "1"]))
    elif command == "diff":
        baseline = tmp / f"baseline{case.seed.suffix}"
        baseline.write_bytes(case.seed.data)
        args += [str(baseline), path, "--bootstrap", "100", "--fail-on", "p95>+10%"]
    elif command == "check":
        args += [path, "--budget", rng.choice(("p95<=100ms", "error_rate<1%", "x:count>=1"))]
    elif command == "convert":
        args += [path, "-o", str(tmp / "out.parquet")]
    elif command == "models":
        args.append(path)
        if rng.random() < 0.5:
            args += rng.choice(
                (["--feature", "input.length"], ["--window", "10s"], ["--compare", "v1,v2"])
            )
    else:
        args.append(path)
        if command in ("latency", "errors", "bottlenecks") and rng.random() < 0.5:
            args.append("--no-cache")
        if command == "latency" and rng.random() < 0.3:
            args += ["--by", rng.choice(("service", "attr.model.version", "stage,kind"))]
        if command != "traces" and rng.random() < 0.2:
            args += rng.choice(
                (
                    ["--where", "duration_ms > 1 AND status = 'error'"],
                    ["--where", "attr.http.status_code >= 500"],
                    ["--since", "10m"],
                    ["--until", "2025-01-01T00:00:00Z"],
                    ["--service", "gateway"],
                )
            )
    if command != "convert":
        args += ["--format", rng.choice(_FORMATS)]
    if rng.random() < 0.15:
        args.append("--strict")
    return args


def run_case(case: Case, tmp: Path, seeds: list[Seed]) -> list[str]:
    """Every problem found for one case (empty when tracelens behaved)."""
    rng = random.Random(f"{BASE_SEED}:{case.number}:run")
    suffix = case.seed.suffix + (".gz" if case.gzipped else "")
    path = tmp / f"case{case.number}{suffix}"
    target = str(path)
    if rng.random() < 0.1:
        # A directory holding the mutated input and an intact one of another seed.
        folder = tmp / f"dir{case.number}"
        folder.mkdir()
        path = folder / path.name
        companion = rng.choice([s for s in seeds if s is not case.seed])
        (folder / f"companion{companion.suffix}").write_bytes(companion.data)
        target = str(folder)
    path.write_bytes(_on_disk(case))
    problems: list[str] = []
    summary = run_cli(["summary", "--format", "json", "--no-cache", target])
    problems += [f"{p} [summary]" for p in summary.problems]
    if not summary.problems:
        problems += check_accounting(case, path, summary)
    if summary.exit_code == 0 and not case.gzipped and rng.random() < 0.1:
        problems += check_parallel(path, target, summary)
    if summary.exit_code == 0 and rng.random() < 0.2:
        problems += check_spilled(target, summary)
    if rng.random() < 0.7:
        command = rng.choice(_OTHER)
        args = _extra_args(rng, command, case, target, tmp)
        other = run_cli(args)
        problems += [f"{p} [{' '.join(args[:1])}]" for p in other.problems]
        if "--strict" in args and command not in ("show", "diff") and not other.problems:
            problems += _check_strict(summary, other)
        if command == "convert" and other.exit_code == 0 and summary.exit_code == 0:
            problems += check_round_trip(summary, tmp / "out.parquet")
    return problems


def check_round_trip(summary: Outcome, parquet: Path) -> list[str]:
    """`convert` promises that reading its Parquet back gives the same reports."""
    again = run_cli(["summary", "--format", "json", "--no-cache", str(parquet)])
    if again.problems or again.exit_code != 0:
        return [f"convert round trip: {again.problems or again.stderr.strip()[:200]}"]
    before, after = orjson.loads(summary.stdout), orjson.loads(again.stdout)
    keys = ("spans", "traces", "error_spans", "log_records", "orphan_spans", "start", "end")
    differs = [f"{k} {before[k]} -> {after[k]}" for k in keys if before[k] != after[k]]
    return [f"convert round trip differs: {', '.join(differs)}"] if differs else []


def _on_disk(case: Case) -> bytes:
    return case.data if not case.gzipped else gzip.compress(case.data, mtime=0)


def _check_strict(summary: Outcome, strict: Outcome) -> list[str]:
    skipped = _skipped_anything(summary)
    if skipped is False and "rejected by --strict" in strict.stderr:
        return [f"--strict rejected a dump without skipped records: {strict.stderr.strip()[:200]}"]
    if skipped and strict.exit_code != 2:
        return [f"--strict exit {strict.exit_code} although records were skipped"]
    if skipped and not _STRICT_LOCATION.search(strict.stderr):
        return [f"--strict message without file:line: {strict.stderr.strip()[:200]}"]
    return []


def known_issue(problems: list[str]) -> str | None:
    """The reason shared by known issues when every problem is one, else None."""
    reasons = set()
    for problem in problems:
        match = next((why for pattern, why in KNOWN_ISSUES if re.search(pattern, problem)), None)
        if match is None:
            return None
        reasons.add(match)
    return "; ".join(sorted(reasons)) if reasons else None


def describe(case: Case, problems: list[str]) -> str:
    return (
        f"fuzz case {case.number} (TRACELENS_FUZZ_SEED={BASE_SEED}): seed {case.seed.name}, "
        f"mutations {case.mutations}{' + gzip' if case.gzipped else ''}:\n  "
        + "\n  ".join(problems)
    )


def _keep(case: Case, out: str | None) -> None:
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        name = f"case{case.number}-{case.seed.name.replace('/', '_')}"
        (Path(out) / name).write_bytes(_on_disk(case))


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", range(DEFAULT_CASES))
def test_a_mutated_dump_neither_crashes_nor_loses_a_line(
    number: int, seeds: list[Seed], tmp_path: Path
) -> None:
    case = make_case(number, seeds)
    problems = run_case(case, tmp_path, seeds)
    if problems:
        _keep(case, os.environ.get("TRACELENS_FUZZ_OUT"))
        known = known_issue(problems)
        if known:
            pytest.xfail(f"known issue: {known}")
    assert not problems, describe(case, problems)


#: Fixtures that hold malformed records on purpose.
_BROKEN_ON_PURPOSE = (
    *("malformed", "bad_lines", "truncated", "jaeger/traces.jsonl", "spans.jsonl"),
    "logs/stages.jsonl",  # stage lines whose duration is not a number
)


def test_seeds_read_cleanly(seeds: list[Seed], tmp_path: Path) -> None:
    """Unmutated seeds are the control: none may skip a line (else the fuzzer tests nothing)."""
    for seed in seeds:
        if any(word in seed.name for word in _BROKEN_ON_PURPOSE):
            continue
        path = tmp_path / f"seed{seed.suffix}"
        path.write_bytes(seed.data)
        summary = run_cli(["summary", "--format", "json", "--no-cache", str(path)])
        if summary.exit_code == 2 and "no telemetry recognised" in summary.stderr:
            continue  # fields only a --field names (logs/durations.jsonl): not claimed alone
        assert summary.exit_code == 0, (seed.name, summary.stderr)
        assert _skipped_anything(summary) is False, (seed.name, summary.stdout[:2000])


@pytest.mark.slow
def test_any_number_of_mutated_dumps_on_demand_neither_crash_nor_lose_a_line(
    seeds: list[Seed], tmp_path: Path
) -> None:
    """TRACELENS_FUZZ_CASES=N cases in one loop (after the parametrized ones), with a summary."""
    wanted = int(os.environ.get("TRACELENS_FUZZ_CASES", "0"))
    if not wanted:
        pytest.skip("set TRACELENS_FUZZ_CASES=N to fuzz N cases")
    out = os.environ.get("TRACELENS_FUZZ_OUT")
    findings: dict[str, list[int]] = collections.defaultdict(list)
    failed: list[str] = []
    known: collections.Counter[str] = collections.Counter()
    mutations: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for number in range(DEFAULT_CASES, DEFAULT_CASES + wanted):
        case = make_case(number, seeds)
        mutations.update(case.mutations)
        work = tmp_path / str(number)
        work.mkdir()
        problems = run_case(case, work, seeds)
        shutil.rmtree(work, ignore_errors=True)
        if problems:
            _keep(case, out)
            reason = known_issue(problems)
            if reason:
                known[reason] += 1
            else:
                failed.append(describe(case, problems))
            for problem in problems:
                findings[re.sub(r"\d+", "N", problem)[:160]].append(number)
    elapsed = time.monotonic() - started
    print(
        f"\nfuzzed {wanted} cases in {elapsed:.0f} s (seed {BASE_SEED}); new failures: "
        f"{len(failed)}; known issues: {dict(known)}"
    )
    print("mutations used:", dict(mutations.most_common()))
    for signature, numbers in sorted(findings.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(numbers):5d}  {signature}  (cases {numbers[:5]})")
    assert not failed, "\n".join(failed[:20])


def _entry(**counts: Any) -> dict[str, Any]:
    entry = {"format": "otlp-json", "spans": 0, "logs": 0, "skipped": 0, "skipped_items": 0}
    return {**entry, "ignored": {}, **counts}


def test_span_accounting_tells_a_counted_loss_from_a_silent_one() -> None:
    """The checker itself, on a hand-built input: two lines of 3 and 2 spans and a broken one."""

    def line(spans: int) -> bytes:
        body = [{"traceId": "a" * 32, "spanId": f"{i + 1:016x}"} for i in range(spans)]
        return orjson.dumps(otlp_document(body, service=None))

    data = line(3) + b"\n" + line(2) + b'\n{"resourceSpans": [\n'
    assert check_items(data, _entry(spans=5, skipped=1)) == []
    assert check_items(data, _entry(spans=4, skipped=1, skipped_items=1)) == []
    # One span neither read nor counted; a readable line skipped whole.
    assert check_items(data, _entry(spans=4, skipped=1))[0].startswith("silent loss")
    assert check_items(data, _entry(spans=3, skipped=2))[0].startswith("span accounting")
