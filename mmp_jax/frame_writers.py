"""Writers of frame streams: a video file (by suffix) or a folder of PNGs, committed atomically.

Nothing the user did not name is deleted or replaced:
- Frames are written under a temporary name beside the target (`io.atomic.temporary_beside`) and moved
  onto it only when the stream ends without error; on error (or SIGTERM / Ctrl-C turned into an
  exception, see `interrupts`) the temporary output is removed, and so are the parent folders the
  writer created; a signal arriving while it commits or removes waits until that is done.
  Temporaries of runs that were killed are removed by the next writer of the same output
  (`io.atomic.remove_orphans`).
- An existing output is refused unless `overwrite`: a video file is then replaced in one rename;
  an existing folder keeps everything but its frames (image files directly in it), which are
  replaced by the new ones, each in one rename.
- Outputs get the permissions of the user's umask.

Videos (see `video_encoding`): .mp4/.mov/.mkv are H.264 (`codec='h264'`, CRF `quality`) or
lossless RGB H.264 (`codec='lossless'`) through PyAV, with the audio of `audio_from` copied;
.avi is MJPG through OpenCV unless a codec is named. OpenCV (mp4v, no audio) also stands in when
PyAV has no H.264 encoder, with a warning.
"""
import contextlib
import fractions
import os
import pathlib
import shutil
import warnings

import av
import cv2
import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.io import atomic
from mmp_jax.io.paths import is_url
from mmp_jax.data.sources import FRAME_SUFFIXES
from mmp_jax import interrupts, video_encoding

# OpenCV's codecs: .avi by default, the others when PyAV has no H.264 encoder
VIDEO_CODECS = {'.mp4': 'mp4v', '.mov': 'mp4v', '.mkv': 'mp4v', '.avi': 'MJPG'}


class OutputError(UserError):
    """An output that cannot be written, with its path and the problem."""


def is_video_path(path: str | pathlib.Path) -> bool:
    """True for names that get a video file (by suffix); other names get a folder of PNGs."""
    return pathlib.Path(path).suffix.lower() in VIDEO_CODECS


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_parents(folder: pathlib.Path) -> list[pathlib.Path]:
    """Creates `folder` and its missing parents; returns those it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f'{folder}: not a folder, so the output cannot be written under it')
    for path in reversed(missing):
        try:
            path.mkdir()
        except OSError as error:
            raise OutputError(f'{path}: cannot create the folder: {error.strerror}') from None
    return missing


def check_output(path: pathlib.Path, overwrite: bool) -> None:
    """OutputError if `path` (a local path, or an `epath.Path` URL) exists and may not be
    replaced, or is of the wrong kind."""
    if not path.exists() and (is_url(path) or not path.is_symlink()):
        return
    if not overwrite:
        what = 'folder' if path.is_dir() else 'file'
        raise OutputError(f'{path}: already exists ({what}); choose a new name, or pass --overwrite to replace '
                          f'it{" (only the frames in the folder)" if path.is_dir() else ""}')
    if is_video_path(path) and path.is_dir():
        raise OutputError(f'{path}: is a folder; the output named is a video file')
    if not is_video_path(path) and not path.is_dir():
        raise OutputError(f'{path}: is a file; the output named is a folder of PNGs')


def check_distinct(input_path: str | pathlib.Path, outputs: dict[str, str | pathlib.Path | None]) -> None:
    """OutputError unless the input and every output (`{label: path}`, None skipped) are
    different paths (symlinks resolved; URLs as written), no output holds the input, and no output
    holds another."""
    source = _place(input_path)
    targets = {label: _place(path) for label, path in outputs.items() if path is not None}
    for label, target in targets.items():
        if source == target:
            raise OutputError(f'{target}: given as --input and as {label}; the input is never written over')
        if source.is_relative_to(target):
            raise OutputError(f'{target}: {label} would hold the input ({source}); choose another place')
    labels = list(targets)
    for i, first in enumerate(labels):
        for second in labels[i + 1:]:
            a, b = targets[first], targets[second]
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise OutputError(f'{b}: {second} and {first} ({a}) must be separate places')


def _place(path: str | pathlib.Path) -> pathlib.PurePath:
    """`path` as `check_distinct` compares it: a local path resolved, a URL as written."""
    return pathlib.PurePosixPath(os.fspath(path)) if is_url(path) else pathlib.Path(path).resolve()


def choose_encoding(path: pathlib.Path, codec: str | None, quality: int | None,
                    audio_from: str | pathlib.Path | None) -> tuple[str, int | None] | None:
    """(codec, CRF) for `video_encoding.VideoEncoder` writing the video `path`, or None for
    OpenCV; OutputError for a bad codec or CRF, a missing lossless encoder, or audio of
    `audio_from` that the output cannot hold."""
    suffix = path.suffix.lower()
    try:
        audio = video_encoding.has_audio(audio_from)
        if codec is None and suffix == '.avi':
            if audio:
                raise video_encoding.EncodingError(
                    f'.avi is written as MJPG by OpenCV, without the audio of {audio_from}; name the '
                    'codec h264 or lossless, or choose another suffix')
            return None
        codec = codec or 'h264'
        quality = video_encoding.check_quality(codec, quality)
        video_encoding.check_encoding(suffix, codec, quality, audio_from)
    except video_encoding.NoEncoderError as error:
        if codec == 'lossless' or audio:
            raise OutputError(f'{path}: {error}') from None
        warnings.warn(f'{path}: {error}; writing {VIDEO_CODECS[suffix]} through OpenCV instead')
        return None
    except UserError as error:   # a bad codec or CRF, EncodingError (a bug keeps its traceback)
        raise OutputError(f'{path}: {error}') from None
    return codec, quality


class FrameWriter:
    """`with FrameWriter(path, fps) as out: out.write(rgb, name)`; rgb uint8 `[H, W, 3]`; `name`
    (folder outputs) the frame's file name, `NNNNNN.png` by count when None.

    Video outputs only: `codec` 'h264' (the default, except .avi: MJPG) or 'lossless';
    `quality` the H.264 CRF (0-51, lower is better; `video_encoding.DEFAULT_QUALITY` when None);
    `audio_from` a video whose audio streams are copied (none when it has none, or is None or a
    folder); frames are shown at `fps`, the first at time 0, as the input's, or at the times
    `write` is given (PyAV outputs: a variable frame rate kept). See `video_encoding`
    for odd frame sizes and what players can show."""

    def __init__(self, path: str | pathlib.Path, fps: float, overwrite: bool = False,
                 codec: str | None = None, quality: int | None = None,
                 audio_from: str | pathlib.Path | None = None):
        self.path = pathlib.Path(path).absolute()
        self.fps = fps
        self.is_video = is_video_path(self.path)
        check_output(self.path, overwrite)
        self._encoding = choose_encoding(self.path, codec, quality, audio_from) if self.is_video else None
        self._audio_from = audio_from
        self._created = _make_parents(self.path.parent)
        atomic.remove_orphans(self.path)
        self._video = None
        self._names: list[str | None] = []   # written, in order (None: a video frame)
        self._taken: set[str | None] = set()
        try:
            self._tmp = atomic.temporary_beside(self.path, folder=not self.is_video)
        except OSError as error:
            self._remove_created()
            raise OutputError(f'{self.path}: cannot write beside it: {error.strerror}') from None

    def _encode(self, rgb: np.ndarray, time: fractions.Fraction | None) -> None:
        """Writes one frame through PyAV; OutputError if FFmpeg fails."""
        try:
            if self._video is None:
                self._video = video_encoding.VideoEncoder(self._tmp, self.path.suffix.lower(), self.fps,
                                                          *self._encoding, self._audio_from)
            self._video.write(rgb, time)
        except (av.FFmpegError, video_encoding.EncodingError) as error:
            raise OutputError(f'{self.path}: encoding the video failed: {error}') from None

    def write(self, rgb: np.ndarray, name: str | None = None, time: fractions.Fraction | None = None) -> None:
        """Writes the next frame; `time` (seconds, PyAV video outputs only) shows it then, as
        `video_encoding.VideoEncoder.write`."""
        if not self.is_video:
            name = name or f'{len(self._names):06d}.png'
            if name in self._taken:
                raise OutputError(f'{self.path}: two frames would both be named {name}')
            if not cv2.imwrite(str(self._tmp / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OutputError(f'{self.path}: writing frame {name} failed')
        elif self._encoding is not None:
            self._encode(rgb, time)
        else:
            if self._video is None:
                fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
                self._video = cv2.VideoWriter(str(self._tmp), fourcc, self.fps,
                                              (rgb.shape[1], rgb.shape[0]))
                if not self._video.isOpened():
                    raise OutputError(f'{self.path}: OpenCV cannot write this video format')
            self._video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self._names.append(name)
        self._taken.add(name)

    def _close(self, finish: bool = True) -> None:
        """Closes the video file; `finish` flushes the encoder first (PyAV)."""
        if self._video is None:
            return
        video, self._video = self._video, None
        if isinstance(video, cv2.VideoWriter):
            video.release()
        elif not finish:
            video.abandon()
        else:
            try:
                video.close()
            except av.FFmpegError as error:
                video.abandon()
                raise OutputError(f'{self.path}: finishing the video failed: {error}') from None

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()

    def abort(self) -> None:
        """Removes what was written, and the parent folders this writer created."""
        self._close(finish=False)
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)
        self._remove_created()

    def commit(self) -> None:
        """Moves the finished output onto its name (see the module doc for an existing one)."""
        try:
            self._close(finish=bool(self._names))
        except OutputError:
            self.abort()
            raise
        if not self._names:
            self.abort()
            raise OutputError(f'{self.path}: no frames to write')
        mask = _umask()
        if self.is_video or not self.path.is_dir():
            self._tmp.chmod((0o777 if self._tmp.is_dir() else 0o666) & ~mask)
            self._tmp.replace(self.path)
            return
        for name in self._names:
            (self._tmp / name).replace(self.path / name)
        for old in self.path.iterdir():
            if old.is_file() and old.suffix.lower() in FRAME_SUFFIXES and old.name not in self._taken:
                old.unlink()
        self._tmp.rmdir()

    def __enter__(self) -> 'FrameWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with interrupts.held():  # a signal waits until the temporary is moved or removed
            if exc_type is None:
                self.commit()
            else:
                self.abort()
