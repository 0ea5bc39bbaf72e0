"""Files written whole or not at all: a temporary file in the same folder, then a rename.

Local paths: `tempfile.mkstemp` beside the target, then `os.replace` (atomic on POSIX: a reader
sees the old file or the new one, never part of one). URLs (`paths.is_url`, through epath): a
temporary object `.<name>.<random>.tmp` beside the target, then `epath`'s `replace`. On object
stores (gs://, s3://) an object appears whole once its upload completes and the rename is a
server-side copy then a delete, so a reader still never sees part of a file; what is lost is the
single step (a process killed between copy and delete leaves the `.tmp` object, which
`temporaries` lists for the caller to remove). Where the filesystem cannot rename (gfile reports
it), the error says so rather than leaving a half-written target.

A writer that streams into its temporary for as long as it runs (`mmp_jax.frame_writers`: a
video, a folder of frames; local paths) takes one from `temporary_beside`, named for its process
(`.NAME.tmp-PID-<random>`), and renames it itself; the temporaries of processes that were killed
are removed by the next writer of the same target (`remove_orphans`).
"""
import contextlib
import json
import os
import pathlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator

from mmp_jax.io import paths


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path` to write; renamed to `path` when the block ends
    without an error, removed otherwise."""
    if paths.is_url(path):
        with _replacing_url(paths.as_path(path)) as tmp:
            yield tmp
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _replacing_url(path) -> Iterator[str]:
    """`replacing` on a non-local filesystem (an `epath.Path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp'
    try:
        yield os.fspath(tmp)
        tmp.replace(path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        paths.as_path(tmp).write_bytes(data)


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copies the finished file `source` to `path` (either local or a URL), whole or not at all."""
    with replacing(path) as tmp, paths.as_path(source).open('rb') as reader, \
            paths.as_path(tmp).open('wb') as writer:
        shutil.copyfileobj(reader, writer, 1 << 22)  # streamed (epath's `copy` across filesystems loses the scheme)


def write_json(path: str | os.PathLike, value) -> None:
    write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + '\n').encode())


def temporaries(path: str | os.PathLike) -> list:
    """The temporary files that `replacing(path)` leaves beside `path` when its process is killed."""
    path = paths.as_path(path)
    prefix = f'.{path.name}.'
    return [entry for entry in path.parent.glob('.*.tmp')
            if entry.name.startswith(prefix) and entry.is_file()]


def temporary_beside(path: pathlib.Path, folder: bool = False) -> pathlib.Path:
    """A new temporary file (with `path`'s suffix, which tells encoders the format) or, where
    `folder`, a new temporary folder beside the local `path`, named for this process."""
    prefix = f'.{path.name}.tmp-{os.getpid()}-'
    if folder:
        return pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    os.close(fd)
    return pathlib.Path(tmp)


def remove_orphans(path: pathlib.Path) -> None:
    """Removes the temporaries of `path` (`temporary_beside`) whose process is gone."""
    pattern = re.compile(rf'^\.{re.escape(path.name)}\.tmp-(\d+)-')
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
