"""Paths as URLs: every file the project reads or writes goes through `etils.epath` (the file
layer orbax already uses), so a workdir, records, checkpoints or exports may be `gs://bucket/x`
(or any scheme epath routes: `s3://`, `az://`, through TensorFlow's gfile or fsspec) as well as a
local folder. URLs are kept as given (a URL has no current folder to resolve against); an
unknown scheme is a ValueError naming the path."""
import os
import pathlib
import stat

from etils import epath

from mmp_jax.errors import UserError


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` names a file on a non-local filesystem (`scheme://...`)."""
    return '://' in os.fspath(path)


def scheme(name: str | os.PathLike) -> str | None:
    """The scheme of a URL (`'gs'` of `gs://bucket/x`); None for a local path."""
    return os.fspath(name).split('://')[0] if is_url(name) else None


def path(name: str | os.PathLike) -> epath.Path:
    """`name` as an `epath.Path`, a local path as given (relative or not)."""
    try:
        return epath.Path(os.fspath(name))
    except KeyError:  # epath's table of schemes
        raise UserError(f'{os.fspath(name)}: no filesystem for the scheme {scheme(name)}:// '
                        f'(etils.epath knows gs://, s3://, az://, hf:// and local paths)') from None


def as_path(name: str | os.PathLike) -> epath.Path:
    """`path(name)`, a local path made absolute as `pathlib.Path.absolute` does (not resolved:
    `..` and symbolic links kept as named)."""
    return path(name) if is_url(name) else epath.Path(pathlib.Path(name).absolute())


def size(name: str | os.PathLike) -> int:
    """Bytes of the file `name` (local or a URL)."""
    return path(name).stat().length if is_url(name) else os.path.getsize(name)


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """Why the local `path` cannot be read as a file ('is a FIFO, not a file': a FIFO or a device
    would block a reader or never end; a folder; 'cannot be read (<reason>)'), None where it is a
    regular file or links to one."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f'cannot be read ({error.strerror})'
    if stat.S_ISREG(mode):
        return None
    kind = ('a folder' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode)
            else 'a device' if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else 'a socket' if stat.S_ISSOCK(mode)
            else None)
    return f'is {kind}, not a file' if kind else 'not a regular file'
