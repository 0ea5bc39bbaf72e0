"""Local stand-ins for URLs, the one mechanism for every writer or reader that cannot work on a
URL itself: orbax's checkpoints and model folders on every epath scheme but gs:// (s3://, az://,
the tests' in-memory ram://: TensorStore writes local files and gs:// only, `is_staged`),
`tools.deblur`'s inputs and outputs (PyAV and OpenCV read and write local files) and the
exporter's shards (written by worker processes; a ram:// filesystem is one process's own).

Such a caller works in a local temporary folder (`scratch`: one place makes and removes it, named
`mmp_jax_staging.*` in the system's temporary folder): a URL to read is first copied into it
(`download`), a URL to write is written there and copied to the URL once finished (`upload`);
`writing` and `reading` do both for a folder that `is_staged`. Every file is copied whole
(`atomic.copy_file`: a temporary object, then a rename), so a reader of the URL never sees part of
a file.

What holds for a staged checkpoint or model folder (`marker=True`): it counts as written only once
its marker file `COMPLETE`, uploaded last, is there: a step without it is not listed, a model
folder without it is refused by `checkpoint.model_folder`. Folders are not renamed (object stores,
and gfile's ram://, rename files only): a folder is moved file by file (`move`), its marker removed
first and written last, so an interrupted move leaves two incomplete folders, neither taken for a
checkpoint. Staging is per host: `checkpoint` refuses a staged URL when several processes train.
Without a marker (a deblur output, a shard) a folder uploaded onto one there keeps its files but
those the caller names stale, and a new folder not copied to the end is removed.
"""
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

from etils import epath

from mmp_jax.io import atomic, paths

ORBAX_SCHEMES = ('gs',)  # TensorStore's kvstore drivers as orbax picks them: gs:// -> gcs, else file
MARKER = 'COMPLETE'
PREFIX = 'mmp_jax_staging.'


def is_staged(directory: str | os.PathLike) -> bool:
    """Whether checkpoints in `directory` go through a local staging folder (a URL orbax cannot write)."""
    return paths.is_url(directory) and paths.scheme(directory) not in ORBAX_SCHEMES


@contextlib.contextmanager
def scratch() -> Iterator[epath.Path]:
    """A new local temporary folder (`PREFIX*`) for stand-ins, removed with everything in it when
    the block ends (an error or Ctrl-C included)."""
    with tempfile.TemporaryDirectory(prefix=PREFIX) as folder:
        yield epath.Path(folder)


def _files(folder: epath.Path, nested: bool = True) -> list[epath.Path]:
    """The files under `folder` by name, those in its nested folders too where `nested` (gfile's
    glob has no `**`)."""
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            files.extend(_files(entry) if nested else ())
        else:
            files.append(entry)
    return files


def _copy_files(files: list[epath.Path], source: epath.Path, target: epath.Path) -> None:
    """Copies `files` (under the folder `source`) to the same places under `target`, each whole."""
    for file in files:
        atomic.copy_file(file, target / os.fspath(file.relative_to(source)))


def is_complete(folder: epath.Path) -> bool:
    """Whether the staged folder `folder` was written to the end (its marker is there)."""
    return (folder / MARKER).exists()


def upload(local: str | os.PathLike, url: str | os.PathLike, *, marker: bool,
           stale: Callable[[str], bool] = lambda name: False) -> None:
    """Copies the finished local file or folder `local` (a stand-in) to `url`, each file whole. A
    file replaces the one there. A folder, nested folders included: with `marker` (a staged
    checkpoint or model folder) one at `url` (an incomplete one, of an interrupted upload) is
    removed first and the marker written last; without, one at `url` keeps its files but those
    directly in it that `stale` picks by name and that were not copied again (removed once all
    are copied), and a folder new at `url` that is not copied to the end is removed."""
    local, url = paths.as_path(local), paths.as_path(url)
    if not local.is_dir():
        atomic.copy_file(local, url)
        return
    files = _files(local)
    if marker:
        if url.exists():
            url.rmtree()
        _copy_files(files, local, url)
        atomic.write_bytes(url / MARKER, b'')
        return
    existed = url.exists()
    try:
        _copy_files(files, local, url)
    except BaseException:
        if not existed and url.exists():
            url.rmtree()
        raise
    copied = {os.fspath(file.relative_to(local)) for file in files}
    for old in url.iterdir():
        if not old.is_dir() and stale(old.name) and old.name not in copied:
            old.unlink()


def download(url: str | os.PathLike, local: str | os.PathLike, *, marker: bool, nested: bool = True) -> None:
    """Copies the file or folder `url` to the local path `local`, each file whole: a folder's files
    (those of its nested folders too where `nested`), its marker left out where `marker` (a
    staged checkpoint or model folder)."""
    url, local = paths.as_path(url), paths.as_path(local)
    if not url.is_dir():
        atomic.copy_file(url, local)
        return
    local.mkdir(parents=True, exist_ok=True)
    _copy_files([file for file in _files(url, nested) if not (marker and file == url / MARKER)], url, local)


def move(source: epath.Path, target: epath.Path) -> None:
    """Renames the folder `source` to `target` (not there yet): in one rename where it is not
    staged, else file by file, the marker of `source` removed first and that of `target` written last."""
    if not is_staged(source):
        source.rename(target)
        return
    (source / MARKER).unlink(missing_ok=True)
    for file in _files(source):
        destination = target / os.fspath(file.relative_to(source))
        destination.parent.mkdir(parents=True, exist_ok=True)
        file.replace(destination)
    atomic.write_bytes(target / MARKER, b'')
    if source.exists():  # the empty folders (gone with their files on some stores)
        source.rmtree()


def remove(folder: epath.Path) -> None:
    """Deletes a staged folder, its marker first (a deletion cut short leaves no complete folder)."""
    (folder / MARKER).unlink(missing_ok=True)
    folder.rmtree()


@contextlib.contextmanager
def writing(directory: epath.Path) -> Iterator[epath.Path]:
    """The folder to write the folder `directory` in: itself unless staged; for a staged URL a
    stand-in in a `scratch` folder, uploaded there (`upload`, marked) when the block ends without
    an error, and removed."""
    if not is_staged(directory):
        yield directory
        return
    with scratch() as folder:
        local = folder / directory.name
        yield local
        upload(local, directory, marker=True)


@contextlib.contextmanager
def reading(directory: epath.Path) -> Iterator[epath.Path]:
    """The folder to read the folder `directory` from: itself unless staged; for a staged URL a
    copy in a `scratch` folder (`download`), removed when the block ends."""
    if not is_staged(directory):
        yield directory
        return
    with scratch() as folder:
        local = folder / directory.name
        download(directory, local, marker=True)
        yield local


class StagedManager:
    """What training uses of an orbax `CheckpointManager` (save, restore, item_metadata, all_steps,
    latest_step, reload, wait_until_finished, reached_preemption, close, directory: the URL), for the
    steps in the staged URL `directory`: `open_manager(staging folder)` is orbax's manager of a
    `scratch` folder. A step saved (asynchronously, as orbax does) is uploaded when the
    next save starts, at `wait_until_finished` and at `close`; then the URL keeps the latest
    `keep` steps (all where None), as orbax's `max_to_keep` does locally. A step is downloaded
    when first restored or its metadata read. The staging folder goes at `close`."""

    def __init__(self, directory: epath.Path, keep: int | None, open_manager: Callable):
        self.directory = directory
        self._keep = keep
        self._scratch = contextlib.ExitStack()
        self._local = self._scratch.enter_context(scratch())
        self._manager = open_manager(self._local)
        self._on_url = set()
        self._list_url()
        self._copied = set()  # steps staged from the URL or uploaded to it (the others: saved here, not uploaded yet)

    def _list_url(self) -> None:
        """The steps written whole to the URL."""
        self._on_url = ({int(entry.name) for entry in self.directory.iterdir()
                         if entry.name.isdigit() and is_complete(entry)} if self.directory.is_dir() else set())

    def all_steps(self) -> list[int]:
        return sorted(self._on_url | set(self._manager.all_steps()))

    def latest_step(self) -> int | None:
        return max(self.all_steps(), default=None)

    def _stage(self, step: int) -> None:
        """Downloads step `step` into the staging folder, unless it is there."""
        if step not in self._manager.all_steps():
            download(self.directory / str(step), self._local / str(step), marker=True)
            self._copied.add(step)
            self._manager.reload()

    def restore(self, step: int, *args, **kwargs):
        self._stage(step)
        return self._manager.restore(step, *args, **kwargs)

    def item_metadata(self, step: int):
        self._stage(step)
        return self._manager.item_metadata(step)

    def _sync(self) -> None:
        """Waits for orbax's save, uploads the steps the URL lacks, and prunes the URL."""
        self._manager.wait_until_finished()
        for step in sorted(set(self._manager.all_steps()) - self._copied):
            upload(self._local / str(step), self.directory / str(step), marker=True)
            self._on_url.add(step)
            self._copied.add(step)
        if self._keep is not None:
            for step in sorted(self._on_url)[:-self._keep]:
                remove(self.directory / str(step))
                self._on_url.discard(step)

    def save(self, step: int, *args, **kwargs):
        self._sync()
        return self._manager.save(step, *args, **kwargs)

    def wait_until_finished(self) -> None:
        self._sync()

    def reached_preemption(self, step: int) -> bool:
        return self._manager.reached_preemption(step)

    def reload(self) -> None:
        """Lists the URL's steps again; the staged copies of steps gone from it (set aside) go too."""
        self._list_url()
        for step in self._copied - self._on_url:
            if (self._local / str(step)).exists():
                (self._local / str(step)).rmtree()
        self._copied &= self._on_url
        self._manager.reload()

    def close(self) -> None:
        try:
            self._sync()
        finally:
            self._manager.close()
            self._scratch.close()

    def __enter__(self) -> 'StagedManager':
        return self

    def __exit__(self, *_) -> None:
        self.close()
