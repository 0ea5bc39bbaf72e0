"""Files written whole or not at all: a temporary file in the same folder, then a rename."""
import contextlib
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def replacing(path: str | pathlib.Path) -> Iterator[str]:
    """Yields a temporary path beside `path` to write; renamed to `path` when the block ends
    without an error, removed otherwise."""
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


def write_bytes(path: str | pathlib.Path, data: bytes) -> None:
    with replacing(path) as tmp:
        pathlib.Path(tmp).write_bytes(data)


def write_json(path: str | pathlib.Path, value) -> None:
    write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + '\n').encode())


def temporaries(path: str | pathlib.Path) -> list[pathlib.Path]:
    """The temporary files that `replacing(path)` leaves beside `path` when its process is killed."""
    path = pathlib.Path(path)
    prefix = f'.{path.name}.'
    return [entry for entry in path.parent.glob('.*.tmp')
            if entry.name.startswith(prefix) and entry.is_file()]
