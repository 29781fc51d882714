"""Why a JSON-lines log line is not a log row, in one wording for every path.

The line-by-line path skips a line with a reason (``skip_reason``, ``json_kind``); the fast path
takes the first and last bad lines of a block out itself (``bad_line``) and must name them as
the line path would; batched reading counts its blank lines and colliding keys under the same
labels (``BLANK``, ``COLLISIONS``). Keeping these words here lets every path agree on them.
"""

from __future__ import annotations

import json

import orjson

from ml_tracelens import limits

BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"
#: Labels of ``ReadStats.ignored`` counts.
BLANK = "blank lines"
COLLISIONS = "colliding keys (dotted and nested spelling of one key; the shallower kept)"


def skip_reason(exc: orjson.JSONDecodeError, line: bytes) -> str:
    message = str(exc).split(":", 1)[0]
    if with_non_finite_numbers(line):
        return "NaN or Infinity, which JSON does not allow (Python's json writes them)"
    if b"\x00" in line:
        return "NUL byte in line"
    if "utf-8" in str(exc).lower():
        return "invalid UTF-8"
    if line.rstrip(WHITESPACE)[-1:] not in (b"}", b"]"):
        return f"truncated or invalid JSON ({message})"
    return f"invalid JSON ({message})"


def with_non_finite_numbers(line: bytes) -> bool:
    """Whether ``line`` is a JSON object but for ``NaN``/``Infinity`` numbers."""
    if b"NaN" not in line and b"Infinity" not in line:
        return False
    try:
        return type(json.loads(line)) is dict
    except (ValueError, RecursionError):
        return False


def json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "null"


def line_problem(line: bytes) -> str | None:
    """Why one line is not a JSON object (None when it is one)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return skip_reason(exc, line)
    return None if type(value) is dict else f"not a JSON object ({json_kind(value)})"


def bad_line(line: bytes, depth: int) -> str | None:
    """Why the line path would skip this non-blank line (None when it reads it), in its words:
    the depth is checked before parsing there."""
    if not line.strip(WHITESPACE):
        return None
    if limits.too_deep(line, depth):
        return limits.depth_reason(depth)
    keys = limits.current().max_keys_per_line
    if limits.too_many_keys(line, keys):
        return limits.keys_reason(keys)
    return line_problem(line)
