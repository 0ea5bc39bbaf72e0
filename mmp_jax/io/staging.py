"""Orbax checkpoints on URLs that TensorStore cannot write: every epath scheme but gs:// (s3://,
az://, the tests' in-memory ram://). Orbax works in a local temporary folder (the staging
folder); a finished folder (a training step, a model folder) is uploaded to the URL, and a
restore first downloads the step it reads. gs:// and local paths are not staged: orbax writes
them itself (`is_staged`).

What holds on a staged URL: every file is written whole (`atomic.copy_file`: a temporary object,
then a rename), and a folder counts as written only once its marker file `COMPLETE`, uploaded
last, is there: a step without it is not listed, a model folder without it is refused by
`checkpoint.model_folder`. Folders are not renamed (object stores, and gfile's ram://, rename files
only): a folder is moved file by file (`move`), its marker removed first and written last, so an
interrupted move leaves two incomplete folders, neither taken for a checkpoint. Staging is per
host: `checkpoint` refuses a staged URL when several processes train.
"""
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

from etils import epath

from mmp_jax.io import atomic, paths

ORBAX_SCHEMES = ('gs',)  # TensorStore's kvstore drivers as orbax picks them: gs:// -> gcs, else file
MARKER = 'COMPLETE'


def is_staged(directory: str | os.PathLike) -> bool:
    """Whether checkpoints in `directory` go through a local staging folder (a URL orbax cannot write)."""
    return paths.is_url(directory) and paths.scheme(directory) not in ORBAX_SCHEMES


def _files(folder: epath.Path) -> Iterator[epath.Path]:
    """Every file under `folder` (gfile's glob has no `**`)."""
    for entry in folder.iterdir():
        yield from _files(entry) if entry.is_dir() else (entry,)


def is_complete(folder: epath.Path) -> bool:
    """Whether the staged folder `folder` was written to the end (its marker is there)."""
    return (folder / MARKER).exists()


def upload(local: epath.Path, url: epath.Path) -> None:
    """Copies the finished local folder `local` to `url` (an incomplete one there, of an
    interrupted upload, removed first), file by file, the marker last."""
    if url.exists():
        url.rmtree()
    for file in _files(local):
        atomic.copy_file(file, url / os.fspath(file.relative_to(local)))
    atomic.write_bytes(url / MARKER, b'')


def download(url: epath.Path, local: epath.Path) -> None:
    """Copies the staged folder `url` (but its marker) into the local folder `local`."""
    for file in _files(url):
        if file != url / MARKER:
            atomic.copy_file(file, local / os.fspath(file.relative_to(url)))


def move(source: epath.Path, target: epath.Path) -> None:
    """Renames the folder `source` to `target` (not there yet): in one rename where it is not
    staged, else file by file, the marker of `source` removed first and that of `target` written last."""
    if not is_staged(source):
        source.rename(target)
        return
    (source / MARKER).unlink(missing_ok=True)
    for file in list(_files(source)):
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
    local temporary one, uploaded there (`upload`) when the block ends without an error, and removed."""
    if not is_staged(directory):
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix='mmp_jax_staging.') as staging:
        local = epath.Path(staging) / directory.name
        yield local
        upload(local, directory)


@contextlib.contextmanager
def reading(directory: epath.Path) -> Iterator[epath.Path]:
    """The folder to read the folder `directory` from: itself unless staged; for a staged URL a
    local temporary copy (`download`), removed when the block ends."""
    if not is_staged(directory):
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix='mmp_jax_staging.') as staging:
        local = epath.Path(staging) / directory.name
        download(directory, local)
        yield local


class StagedManager:
    """What training uses of an orbax `CheckpointManager` (save, restore, item_metadata, all_steps,
    latest_step, reload, wait_until_finished, reached_preemption, close, directory: the URL), for the
    steps in the staged URL `directory`: `open_manager(staging folder)` is orbax's manager of a
    local temporary folder. A step saved (asynchronously, as orbax does) is uploaded when the
    next save starts, at `wait_until_finished` and at `close`; then the URL keeps the latest
    `keep` steps (all where None), as orbax's `max_to_keep` does locally. A step is downloaded
    when first restored or its metadata read. The staging folder goes at `close`."""

    def __init__(self, directory: epath.Path, keep: int | None, open_manager: Callable):
        self.directory = directory
        self._keep = keep
        self._staging = tempfile.TemporaryDirectory(prefix='mmp_jax_staging.')
        self._local = epath.Path(self._staging.name)
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
            download(self.directory / str(step), self._local / str(step))
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
            upload(self._local / str(step), self.directory / str(step))
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
            self._staging.cleanup()

    def __enter__(self) -> 'StagedManager':
        return self

    def __exit__(self, *_) -> None:
        self.close()
