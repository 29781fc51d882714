"""Safety limits: what one input may cost, whoever wrote it.

Telemetry is attacker-controlled text (span names, attributes and log lines come from request
payloads), so every input is read under these limits. Each is set by an environment variable,
read when an input is opened, so the same limits hold for the CLI, the library and the tests:

======================================  =========  ============================================
variable                                default    what happens beyond it
======================================  =========  ============================================
``TRACELENS_MAX_DOCUMENT_BYTES``        64M        a JSON line, or a whole-document input,
                                                   larger than this is refused (exit 2) before
                                                   it is held in memory
``TRACELENS_MAX_JSON_DEPTH``            128        a line or document nested deeper is skipped
                                                   and counted at its ``file:line``
``TRACELENS_MAX_KEYS_PER_LINE``         10000      a JSON-lines log line with more keys (nested
                                                   ones included, keys inside lists not) is
                                                   skipped and counted at its ``file:line``
``TRACELENS_MAX_GZIP_RATIO``            200        a ``.gz`` input that decompresses past 64 MiB
                                                   *and* past this many times the compressed
                                                   bytes read so far is refused (exit 2); 0 = off
``TRACELENS_MAX_STREAM_BYTES``          4G         stdin, a FIFO or a device named explicitly
                                                   is held in memory (it is read more than once);
                                                   a longer stream is refused (exit 2)
======================================  =========  ============================================

Sizes take binary suffixes: ``512M``, ``2G``, ``1GiB``, or plain bytes.

Why these numbers. Real dumps have lines of kilobytes to a few megabytes. Reading one line or
document takes 9-23 times its size (peak RSS of the whole process, measured per reader on one
line or document of 33-61 MB: a JSON log line holding an array of small objects is the worst,
23×, then a log line of one long string 16×, Zipkin 14×, Jaeger 13×, an OTLP document 9×), so
64 MiB keeps the worst case of these under 2 GB (1.5 GB); a larger Jaeger or Zipkin download is
refused with a message naming the variable to raise. Real log lines hold tens of keys, rarely
hundreds, while each key of a JSON-lines block can cost a column (``readers/support/log_keys.py``);
10,000 keys leaves ample room and keeps a line of millions (a 23 MB line of 1.6M keys took 24 GB)
from ever being parsed: the keys are counted on the raw bytes in about twice the line's size.
Real JSON nests 4 (Zipkin) to ~20 (OTLP with nested attribute maps) levels; 128 leaves ample
room, keeps every accepted value within what the JSON encoder (254 levels), polars' JSON
functions (128) and Python's recursion limit handle, and is checked on the raw bytes before
parsing. Honest telemetry
compresses 8-40× (measured on the fixtures and on a health-check log with millisecond
timestamps); gzip cannot exceed ~1032×, which a "bomb" reaches. 200× sits between the two; the
64 MiB floor keeps small files with unusual ratios readable and bounds the work a bomb can cause.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from ml_tracelens.exceptions import InputError, MalformedInput, UsageError, quoted

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
#: Decompressed bytes a gzip input may always produce, whatever its ratio.
GZIP_RATIO_FLOOR = 64 * MIB
#: orjson refuses deeper input whatever we allow.
PARSER_MAX_DEPTH = 1024

_ENV = {
    "max_document_bytes": "TRACELENS_MAX_DOCUMENT_BYTES",
    "max_json_depth": "TRACELENS_MAX_JSON_DEPTH",
    "max_keys_per_line": "TRACELENS_MAX_KEYS_PER_LINE",
    "max_gzip_ratio": "TRACELENS_MAX_GZIP_RATIO",
    "max_stream_bytes": "TRACELENS_MAX_STREAM_BYTES",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1024 * GIB}


class LimitExceeded(MalformedInput):
    """An input went past a safety limit; the message names the input and the variable."""


class ResourceLimit(InputError):
    """The machine, not the input, stops a read (``ulimit -v``, ``ulimit -n``): the message
    names the limit to raise, so the input is not blamed."""


@dataclass(frozen=True)
class Limits:
    #: the largest line or document read; its worst case (23× in memory) stays under 2 GB
    max_document_bytes: int = 64 * MIB
    max_json_depth: int = 128
    #: a log line's keys each become a column of its block: past this, the line is skipped
    max_keys_per_line: int = 10_000
    #: 0 disables the check
    max_gzip_ratio: float = 200.0
    max_stream_bytes: int = 4 * GIB


#: Set by ``configure`` (e.g. from command-line options); they win over the environment.
_overrides: dict[str, Any] = {}


def current() -> Limits:
    """The limits in force: defaults, then the environment, then ``configure``."""
    limits = Limits()
    values: dict[str, Any] = {}
    for attribute, variable in _ENV.items():
        raw = os.environ.get(variable)
        if raw is None or not raw.strip():
            continue
        values[attribute] = _parse(attribute, variable, raw)
    values.update(_overrides)
    return replace(limits, **values)


def configure(**values: float) -> None:
    """Override limits for this process (``configure()`` with no arguments clears overrides)."""
    unknown = set(values) - set(_ENV)
    if unknown:
        raise TypeError(f"unknown limits: {sorted(unknown)}")
    if not values:
        _overrides.clear()
    _overrides.update(values)


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912; binary units, an optional ``B``/``iB``; ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {quoted(text)}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def format_size(size: float) -> str:
    """A byte count as people write it: ``1 GiB``, ``64 MiB``, ``512 bytes``."""
    for unit, scale in (("TiB", 1024 * GIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(size)} bytes"


def _parse(attribute: str, variable: str, raw: str) -> Any:
    try:
        if attribute == "max_json_depth":
            depth = int(raw)
            if not 1 <= depth <= PARSER_MAX_DEPTH:
                raise ValueError
            return depth
        if attribute == "max_keys_per_line":
            keys = int(raw)
            if keys < 1:
                raise ValueError
            return keys
        if attribute == "max_gzip_ratio":
            ratio = float(raw)
            if ratio < 0 or ratio != ratio:  # NaN
                raise ValueError
            return ratio
        size = parse_size(raw)
        if size <= 0:
            raise ValueError
        return size
    except ValueError:
        expected = {
            "max_json_depth": f"a whole number of levels from 1 to {PARSER_MAX_DEPTH}",
            "max_keys_per_line": "a whole number of keys such as 10000",
            "max_gzip_ratio": "a ratio such as 200 (0 turns the check off)",
        }.get(attribute, "a size such as 512M or 2G")
        raise UsageError(f"{variable}={quoted(raw)}: expected {expected}") from None


# --- JSON nesting depth, measured on the raw bytes -------------------------------------------

# Keep only quotes (strings) and brackets, with ``{}`` folded into ``[]``: mismatched bracket
# kinds are invalid JSON, which the parser rejects anyway.
_STRUCTURE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')


def too_deep(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests arrays/objects more than ``limit`` levels.

    Runs before parsing, so a hostile document never reaches a recursive parser, encoder or
    ``repr``. Cheap bounds settle almost every input (nesting cannot exceed the number of
    opening brackets); otherwise strings are blanked out (escaped backslashes and quotes first,
    so brackets inside strings do not count) and the innermost pairs are peeled off one level
    per round: a document with pairs left after ``limit`` rounds is too deep. One
    ``bytes.replace`` per round removes exactly the innermost pairs (it never rescans its own
    output), so the count of rounds is the depth. Input that is not valid JSON may give either
    answer; the parser reports it.
    """
    if len(data) <= limit or data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes enclose no brackets; dropping them keeps every bracket's string parity.
    structure = data.translate(_STRUCTURE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])
    for _ in range(limit):
        peeled = structure.replace(b"[]", b"")
        if len(peeled) == len(structure):
            return False  # empty, or unbalanced leftovers (not JSON: the parser says so)
        structure = peeled
    return b"[]" in structure


def depth_reason(limit: int) -> str:
    """The skip reason for a too-deep line or document."""
    return f"JSON nested deeper than {limit} levels (TRACELENS_MAX_JSON_DEPTH)"


# --- Keys of a JSON-lines log line, counted on the raw bytes ---------------------------------

_KEY_STRUCTURE = bytes(range(256)).translate(None, b'"[]:')
#: Bytes of structure looked at a time (the pieces of a split hold a pointer each).
_KEY_WINDOW = 1 << 20


def too_many_keys(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` has more than ``limit`` object keys outside lists (nested
    objects' keys included; a list is kept whole as one value, so keys inside it do not count).

    Runs before parsing, like ``too_deep``: a line of millions of keys never reaches a parser.
    Every key is followed by a colon, so a line with few colons is settled at once; otherwise
    only quotes, brackets and colons are kept (escaped backslashes and quotes removed first),
    strings are cut out, and the colons outside lists are counted, a window at a time so that
    memory stays a fraction of the line. Input that is not valid JSON may give either answer;
    the parser reports it.
    """
    if data.count(b":") <= limit:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes enclose nothing kept: dropping them keeps every colon's string parity.
    structure = data.translate(None, _KEY_STRUCTURE).replace(b'""', b"")
    del data
    outside = []
    in_string = False
    for start in range(0, len(structure), _KEY_WINDOW):
        parts = structure[start : start + _KEY_WINDOW].split(b'"')
        outside.append(b"".join(parts[1 if in_string else 0 :: 2]))
        in_string ^= len(parts) % 2 == 0
    keys = b"".join(outside)
    del structure, outside
    if keys.count(b":") <= limit:
        return False
    if b"[" not in keys:
        return True
    return _colons_outside_lists(keys, limit) > limit


def _colons_outside_lists(structure: bytes, limit: int) -> int:
    """Colons at list depth 0 in ``structure`` (only ``:[]``), counted until past ``limit``."""
    count = depth = 0
    for start in range(0, len(structure), _KEY_WINDOW):
        for index, segment in enumerate(structure[start : start + _KEY_WINDOW].split(b"[")):
            if index:
                depth += 1
            for level, run in enumerate(segment.split(b"]")):
                depth -= level > 0
                if depth <= 0:
                    count += len(run)
            if count > limit:
                return count
    return count


def keys_reason(limit: int) -> str:
    """The skip reason for a log line with too many keys."""
    return f"more than {limit:,} keys in the line (TRACELENS_MAX_KEYS_PER_LINE)"


# --- The process's own limits (ulimit) ---------------------------------------------------------

#: Address space a read takes beyond what the process already maps: polars starts a thread pool
#: on first use whose stacks and arenas are reserved up front (VmPeak 887 MB reading a
#: 3,000-span file, against 396 MB after the imports).
ADDRESS_SPACE_RESERVE = 512 * MIB
#: ... and per byte of input: VmPeak 1,713 MB reading a 354 MB, 1M-span OTLP dump in one process
#: (3.7 bytes a byte over the imports; a worker maps less, as it reads a part).
ADDRESS_SPACE_PER_INPUT_BYTE = 4


def address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` (``ulimit -v``) in bytes, None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def open_files_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` (``ulimit -n``), None when unlimited or unknown."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def address_space_in_use() -> int:
    """Bytes of address space this process maps now (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def check_address_space(name: str, size: int) -> None:
    """Refuse to read ``size`` bytes of ``name`` when ``ulimit -v`` cannot hold the read.

    Past the limit, polars' allocator aborts the process with a Rust backtrace (an allocation
    failure cannot be caught), so the estimate is checked before reading, not after.
    """
    limit = address_space_limit()
    if limit is None:
        return
    needed = address_space_in_use() + ADDRESS_SPACE_RESERVE + ADDRESS_SPACE_PER_INPUT_BYTE * size
    if needed > limit:
        raise ResourceLimit(
            f"out of memory reading {name}: ulimit -v is {format_size(limit)}, reading "
            f"{format_size(size)} takes about {format_size(needed)} of address space; raise the "
            "limit (ulimit -v) or read a smaller input"
        )


def out_of_memory(name: str) -> ResourceLimit:
    """What a MemoryError while reading ``name`` is, for the user."""
    limit = address_space_limit()
    why = f"ulimit -v is {format_size(limit)}" if limit is not None else "the machine ran out"
    return ResourceLimit(
        f"out of memory reading {name} ({why}); raise the limit (ulimit -v) or free memory, "
        "or read a smaller input"
    )


def os_limit_error(exc: BaseException) -> ResourceLimit | None:
    """The limit behind an OSError (too many open files), or None for other errors."""
    number = getattr(exc, "errno", None)
    if number == errno.EMFILE:
        limit = open_files_limit()
        shown = f"{limit:,}" if limit is not None else "unlimited"
        return ResourceLimit(f"too many open files (ulimit -n is {shown}; raise it)")
    if number == errno.ENFILE:
        return ResourceLimit("too many open files on this system (ENFILE); close some and retry")
    return None
