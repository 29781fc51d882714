"""A progress bar on stderr while inputs are read, for terminals only.

Shown only when stderr is a terminal and the inputs are big enough to take a moment; never with
--quiet or when stderr is piped, so logs and CI output stay clean. The bar advances per input by
bytes; a spinner and the elapsed time show that a single large input is being worked on.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ml_tracelens.render.cells import printable

#: Inputs smaller than this read too fast for a bar to be worth drawing.
MIN_BYTES = 32 * 1024 * 1024


class InputProgress:
    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(file=sys.stderr, highlight=False, markup=False)
        self._bar = Progress(
            SpinnerColumn(),
            # markup=False: the label is a file name, which may hold "[link=...]".
            TextColumn("{task.fields[label]}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._sizes: dict[str, int] = {}
        self._task: TaskID | None = None
        self._active = False

    def inputs(self, sizes: list[tuple[str, int]]) -> None:
        self._sizes = dict(sizes)
        total = sum(self._sizes.values())
        if total < MIN_BYTES or not self._console.is_terminal:
            return
        self._active = True
        self._bar.start()
        self._task = self._bar.add_task("read", total=total, label="")

    def reading(self, name: str) -> None:
        if self._active and self._task is not None:
            self._bar.update(self._task, label=Text(printable(name)))

    def read(self, name: str) -> None:
        if self._active and self._task is not None:
            self._bar.advance(self._task, self._sizes.get(name, 0))

    def __enter__(self) -> InputProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._active:
            self._bar.stop()
