"""Reading bytes at an offset of a file, local or a URL, from any thread: `open_reader(path)`.

Local files: `os.pread` on one descriptor (no shared file position). URLs (`paths.is_url`): an
`epath` file object (gfile or fsspec), positioned and read under a lock (its position is shared).
"""
import contextlib
import os
import threading

from mmp_jax.io import paths


class LocalReader:
    """`pread` on a local file's descriptor."""

    def __init__(self, path: str | os.PathLike):
        self._descriptor = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._descriptor).st_size

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self._descriptor, length, offset)

    def close(self) -> None:
        os.close(self._descriptor)


class UrlReader:
    """`pread` on a file of a non-local filesystem, through epath."""

    def __init__(self, path: str | os.PathLike):
        path = paths.as_path(path)
        self.size = path.stat().length
        self._open = contextlib.ExitStack()  # epath's `open` is a context manager
        self._handle = self._open.enter_context(path.open('rb'))
        self._lock = threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        with self._lock:
            self._handle.seek(offset)
            return self._handle.read(length)

    def close(self) -> None:
        self._open.close()


def open_reader(path: str | os.PathLike) -> LocalReader | UrlReader:
    """A reader of `path`'s bytes (`pread(length, offset)`, `size`, `close()`)."""
    return UrlReader(path) if paths.is_url(path) else LocalReader(path)
