"""Signals held around work that must finish or clean up whole (a cache write): SIGINT and
SIGTERM only stop it at the checks it makes, and then go where they would have gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import ctypes

#: What ``signal.signal`` takes and returns: a function, SIG_DFL or SIG_IGN, or None (a handler
#: installed outside Python).
_Handler: TypeAlias = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

#: Room for the C library's ``struct sigaction`` (152 bytes on Linux, 16 on macOS).
_SIGACTION_BYTES = 512


class _Interrupted(BaseException):
    """Raised at a safe point of a cache write that a held signal asked to stop."""


class HeldSignals:
    """The signals that arrived while held."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def hold(self, signum: int, _frame: object) -> None:
        self.received.append(signum)

    def stop_if_signalled(self) -> None:
        if self.received:
            raise _Interrupted


@contextlib.contextmanager
def signals_held() -> Iterator[HeldSignals]:
    """Hold SIGINT and SIGTERM until a write has finished or cleaned up after itself.

    Python raises KeyboardInterrupt wherever the program happens to be, so a second Ctrl-C
    could land inside the cleanup and leave a full-size temporary file; SIGTERM's default ends
    the process with no cleanup at all. Held, a signal only stops the write at the next check
    (``stop_if_signalled``), where removing the temporary file cannot be interrupted; then it
    goes to the handler that was in place: Ctrl-C still raises KeyboardInterrupt (exit 130) and
    SIGTERM still ends the process. Signals can be caught only in the main thread: a write in
    another thread that is killed leaves its temporary file to ``prune``.
    """
    held = HeldSignals()
    previous: dict[int, _Handler] = {}
    native: dict[int, ctypes.Array[ctypes.c_char] | None] = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(signum)
            # None: a handler installed outside Python, which could not be put back. An ignored
            # signal (SIGINT in a background job, say) stays ignored.
            if current is not None and current != signal.SIG_IGN:
                native[signum] = _native_action(signum)
                previous[signum] = signal.signal(signum, held.hold)
    try:
        yield held
    except _Interrupted:
        pass
    finally:
        for held_signum, handler in previous.items():
            signal.signal(held_signum, handler)
            _restore_native_action(held_signum, native[held_signum])
        if held.received:
            _deliver(held.received[0], previous.get(held.received[0], signal.SIG_DFL))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, where there is one with ``sigaction``."""
    if os.name != "posix":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None
    return libc if hasattr(libc, "sigaction") else None


def _native_action(signum: int) -> ctypes.Array[ctypes.c_char] | None:
    """The C library's action for ``signum``, as opaque bytes to put back later, or None.

    ``signal.signal`` can put back only a handler Python installed, and importing polars
    installs its own SIGINT handler beneath Python's (Ctrl-C cancels a running query): without
    this, a cache write would leave Python's in its place for the rest of the process.
    """
    libc = _libc()
    if libc is None:
        return None
    import ctypes

    action = ctypes.create_string_buffer(_SIGACTION_BYTES)
    return action if libc.sigaction(signum, None, action) == 0 else None


def _restore_native_action(signum: int, action: ctypes.Array[ctypes.c_char] | None) -> None:
    libc = _libc()
    if libc is not None and action is not None:
        libc.sigaction(signum, action, None)


def _deliver(signum: int, handler: _Handler) -> None:
    """Give ``signum`` to ``handler``, the one it would have gone to had it not been held."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)
