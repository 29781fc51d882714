"""Gate settings from a TOML file: budgets for `tracelens check`, rules for `tracelens diff`.

Where they are read from, and nowhere else:

1. ``--config FILE`` when given (a ``pyproject.toml`` is read from its ``[tool.tracelens]`` table,
   any other file from its top level);
2. otherwise ``tracelens.toml`` in the current directory;
3. otherwise the ``[tool.tracelens]`` table of ``pyproject.toml`` in the current directory.

Shape (the same keys at the top of ``tracelens.toml`` or under ``[tool.tracelens]``)::

    budgets = [                      # `tracelens check`; same grammar as --budget
        "model.inference:p95<=120ms",
        "error_rate<1%",
        "count>=1000",
    ]
    fail_on = ["p95>+10%", "error_rate>+0.5pp"]   # `tracelens diff`; same grammar as --fail-on
    log_time = "start"               # every command: a stage log line's timestamp marks its start

Every key is optional. Options given on the command line are added to the file's entries.
Any other key is an error naming the closest known one: a typo such as ``budget =`` must never
silently check nothing.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ml_tracelens.exceptions import UsageError, quoted
from ml_tracelens.gates.budgets import Budget, Rule, parse_budgets, parse_rules

CONFIG_NAME = "tracelens.toml"
PYPROJECT = "pyproject.toml"
KNOWN_KEYS = ("budgets", "fail_on", "log_time")
LOG_TIMES = ("end", "start")


@dataclass(frozen=True)
class GateConfig:
    """What a config file says; ``path`` is None when no file was found."""

    path: Path | None = None
    budgets: tuple[str, ...] = ()
    fail_on: tuple[str, ...] = ()
    #: what a stage log line's timestamp marks ("end" or "start"); None when not set
    log_time: str | None = None

    @property
    def origin(self) -> str:
        """How messages name where an entry came from."""
        return str(self.path) if self.path is not None else "config"


def find_config(cwd: Path | None = None) -> Path | None:
    """The default config file in ``cwd``: tracelens.toml, else a pyproject.toml that has a
    ``[tool.tracelens]`` table (other pyproject files are not ours to read)."""
    base = cwd or Path()  # relative, so messages say "tracelens.toml", not a long path
    own = base / CONFIG_NAME
    if own.is_file():
        return own
    pyproject = base / PYPROJECT
    if pyproject.is_file() and "tracelens" in _load(pyproject).get("tool", {}):
        return pyproject
    return None


def load_config(path: Path | str | None = None, *, cwd: Path | None = None) -> GateConfig:
    """Read ``path`` (``--config``), or the default file in ``cwd``; no file gives an empty config."""
    if path is None:
        found = find_config(cwd)
        if found is None:
            return GateConfig()
        path = found
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file", option="config")
    document = _load(path)
    if path.name == PYPROJECT:
        tool = document.get("tool", {})
        table = tool.get("tracelens") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise UsageError(f"{path}: no [tool.tracelens] table")
    else:
        table = document
    for key in table:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.5)
            hint = f"did you mean {quoted(close[0])}? " if close else ""
            raise UsageError(
                f"{path}: unknown key {quoted(key)}; {hint}(known: {', '.join(KNOWN_KEYS)})"
            )
    return GateConfig(
        path=path,
        budgets=_strings(table, "budgets", path),
        fail_on=_strings(table, "fail_on", path),
        log_time=_log_time(table, path),
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries the line and column.
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _log_time(table: dict[str, Any], path: Path) -> str | None:
    value = table.get("log_time")
    if value is not None and value not in LOG_TIMES:
        raise UsageError(f'{path}: log_time must be "end" or "start", not {quoted(value)}')
    return value


def log_time_setting(
    option: str | None, config: Path | str | None = None, *, cwd: Path | None = None
) -> Literal["end", "start"]:
    """What a stage log line's timestamp marks: ``--log-time``, else the config file's
    ``log_time``, else "end"."""
    if option is None:
        option = load_config(config, cwd=cwd).log_time or "end"
    if option == "end":
        return "end"
    if option == "start":
        return "start"
    raise UsageError(f"{quoted(option)}: expected end or start", option="log_time")


def _strings(table: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(
            f'{path}: {key} must be a list of strings, e.g. {key} = ["model.inference:p95<=120ms"]'
            if key == "budgets"
            else f'{path}: {key} must be a list of strings, e.g. {key} = ["p95>+10%"]'
        )
    return tuple(value)


def gate_budgets(
    options: Sequence[str] | None, config: Path | str | None = None, *, cwd: Path | None = None
) -> list[Budget]:
    """Budgets for `check`: the config file's, then ``--budget`` options.

    Raises UsageError for a bad budget (naming it and where it came from) or when there is none.
    """
    settings = load_config(config, cwd=cwd)
    budgets = parse_budgets(settings.budgets, origin=f"{settings.origin}: budget")
    budgets += parse_budgets(options or (), origin="--budget")
    if not budgets:
        raise UsageError(
            "no budgets: pass --budget (e.g. --budget 'model.inference:p95<=120ms') or list "
            f"them as budgets = [...] in {CONFIG_NAME} or [tool.tracelens] in {PYPROJECT}"
        )
    return budgets


def gate_rules(
    options: Sequence[str] | None, config: Path | str | None = None, *, cwd: Path | None = None
) -> list[Rule]:
    """--fail-on rules for `diff`: the config file's ``fail_on``, then the options (may be none)."""
    settings = load_config(config, cwd=cwd)
    rules = parse_rules(settings.fail_on, origin=f"{settings.origin}: fail_on")
    rules += parse_rules(options or (), origin="--fail-on")
    return rules
