"""Batches made ready ahead of the training loop: `prefetched(batches, place, depth)`.

A background thread pulls host batches (dicts of `[B_host, ...]` arrays) from the input iterator
and applies `place` to each (in training: `sharding.shard_batch`, which copies them into the
global `[B_global, ...]` arrays on the devices), so the next batches are read, decoded and on
the devices while the current step runs, also while the loop waits for the device at log or
save cadence. Order and content are unchanged (one thread, first in first out); the thread pulls
at most `depth` batches beyond those handed to the loop, so stopping early (end of a stage, a
preemption) throws away at most `depth` batches that a resume builds again from its step
(batches are a function of seed and step: `mmp_jax.data.input_pipeline`). Placing a batch is
local to its process (`jax.make_array_from_process_local_data` has no collective), so the thread
is safe in multi-process jobs. `depth=0`: no thread, each batch placed when the loop asks for it.
"""
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

_END = object()  # the input iterator is exhausted


class _Failure:
    """An exception of the thread, raised again in the loop."""

    def __init__(self, error: BaseException):
        self.error = error


@contextlib.contextmanager
def prefetched(batches: Iterator, place: Callable, depth: int):
    """A context giving the iterator of `place(batch)` for each batch of `batches`, in order,
    up to `depth` of them pulled and placed ahead by a thread (0: none, no thread); leaving the
    context stops the thread (after the pull or placement under way, if any)."""
    if depth < 0:
        raise ValueError(f'prefetch depth {depth}: must be >= 0 (0 = off)')
    if depth == 0:
        yield map(place, batches)
        return
    ahead = _Ahead(batches, place, depth)
    try:
        yield ahead
    finally:
        ahead.close()


class _Ahead:
    """The iterator of `prefetched` with `depth` > 0: `slots` counts the batches the thread may
    still pull (taken before each pull, given back as the loop takes a batch)."""

    def __init__(self, batches: Iterator, place: Callable, depth: int):
        self._batches, self._place = batches, place
        self._slots = threading.Semaphore(depth)
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name='device_prefetch', daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while True:
            self._slots.acquire()
            if self._stop.is_set():
                return
            try:
                item = self._place(next(self._batches))
            except StopIteration:
                item = _END
            except BaseException as error:  # pylint: disable=broad-exception-caught (raised in the loop)
                item = _Failure(error)
            self._ready.put(item)
            if item is _END or isinstance(item, _Failure):
                return

    def __iter__(self):
        return self

    def __next__(self):
        item = self._ready.get()
        if item is _END or isinstance(item, _Failure):
            self._ready.put(item)  # every later call ends or fails the same way
            if item is _END:
                raise StopIteration
            raise item.error
        self._slots.release()
        return item

    def close(self) -> None:
        """Stops the thread and waits for it (it ends after the pull or placement under way)."""
        self._stop.set()
        self._slots.release()
        self._thread.join()
