"""Stopping a run with SIGTERM or Ctrl-C without stranding a temporary file.

Python raises `KeyboardInterrupt` for Ctrl-C at whatever line the main thread is on, and
`stop_on_signals` makes SIGTERM raise `Terminated` the same way. Between a writer creating its
temporary and a `with` block owning it (or between committing one output and the next) there
are lines where an exception would leave the temporary behind. Code marks those lines with
`held()`: a signal arriving inside is remembered and raised when the outermost `held()` block
ends, so the temporary is already in the hands of the code that removes it. Outside
`stop_on_signals` (the library used from a program of its own), `held()` changes nothing.

An exception raised by a signal handler can also be lost: when the signal lands while Python runs
a finalizer (`__del__`, a generator's close), Python prints "Exception ignored" and goes on. So
every signal is also remembered, and `raise_if_received()`, called before outputs are committed,
raises it again: a run stopped by a signal never commits.
"""
import contextlib
import signal
from collections.abc import Iterator


class Terminated(Exception):
    """SIGTERM arrived (under `stop_on_signals`)."""


_depth = 0           # how many `held()` blocks are open
_pending = None      # a signal number that arrived inside them
_received = None     # the first signal number that arrived under `stop_on_signals`


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt()
    raise Terminated()


def _on_signal(signum, _frame) -> None:
    global _pending, _received
    _received = _received or signum
    if _depth:
        _pending = _pending or signum
        return
    _raise(signum)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Defers SIGTERM and SIGINT (under `stop_on_signals`) to the end of the outermost block."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            signum, _pending = _pending, None
            _raise(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM raises `Terminated` and SIGINT `KeyboardInterrupt`, except inside `held()`; the
    previous handlers are back at the end. Main thread only (as `signal.signal`)."""
    global _received
    _received = None
    previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        _received = None
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_if_received() -> None:
    """Raises `Terminated` (SIGTERM) or `KeyboardInterrupt` (SIGINT) if a signal arrived under
    `stop_on_signals`, whether or not its exception reached this line (see the module's doc)."""
    if _received is not None:
        _raise(_received)
