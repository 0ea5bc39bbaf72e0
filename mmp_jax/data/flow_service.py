"""One flow backend in the exporting process, shared by its worker processes: RAFT opens one
accelerator client (weights loaded and program compiled once) however many workers decode
frames, blur and write shards on the CPU.

The parent runs a `FlowService` (a thread answering requests in arrival order, one backend
call each: a window's new frames, their pairs batched by the backend); each worker process,
started with `connect` as its initializer, takes a reply slot of its own and uses `client()`
as its `FlowBackend`. Frames and flows travel through multiprocessing queues (pickled).
"""
import threading

import numpy as np

from mmp_jax.data.flow import FlowBackend

_client: 'FlowClient | None' = None


class FlowService:
    """Serves `backend` to `workers` processes of the multiprocessing `context`; use as a
    context manager around the pool (the thread stops when the block ends)."""

    def __init__(self, backend: FlowBackend, workers: int, context):
        self.backend = backend
        self.requests = context.Queue()
        self.replies = [context.Queue() for _ in range(workers)]
        self.slots = context.Queue()
        for slot in range(workers):
            self.slots.put(slot)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def initargs(self) -> tuple:
        """The arguments of `connect` in each worker."""
        return self.requests, self.replies, self.slots

    def _serve(self) -> None:
        while (request := self.requests.get()) is not None:
            slot, frames = request
            try:
                reply = self.backend(frames)
            except Exception as error:  # noqa: BLE001 (raised in the worker that asked, as one line)
                reply = ValueError(f'flow backend: {type(error).__name__}: {error}')
            self.replies[slot].put(reply)

    def __enter__(self) -> 'FlowService':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.requests.put(None)
        self.thread.join()


class FlowClient:
    """A worker's `FlowBackend`: frames uint8 `[T, H, W, 3]` -> the service's (forward,
    backward) float32 `[T-1, H, W, 2]`; the backend's error is raised here as a ValueError
    (its type and message: exceptions of accelerator runtimes may not pickle)."""

    def __init__(self, requests, replies, slot: int):
        self.requests, self.replies, self.slot = requests, replies, slot

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.requests.put((self.slot, frames))
        reply = self.replies.get()
        if isinstance(reply, Exception):
            raise reply
        return reply


def connect(requests, replies, slots) -> None:
    """Pool initializer: this worker's client, on a reply slot no other worker holds."""
    global _client  # noqa: PLW0603 (one client per worker process)
    slot = slots.get()
    _client = FlowClient(requests, replies[slot], slot)


def client() -> FlowClient:
    """This worker's client (after `connect`)."""
    if _client is None:
        raise RuntimeError('flow_service.connect has not run in this process')
    return _client
