"""Writers of frame streams: a video file (by suffix) or a folder of PNGs, committed atomically.

Frames are written under a temporary name beside the target and renamed onto it only when
the stream ends without error; on error the temporary output is removed.
"""
import pathlib
import shutil
import tempfile

import cv2
import numpy as np

VIDEO_CODECS = {'.mp4': 'mp4v', '.mov': 'mp4v', '.mkv': 'mp4v', '.avi': 'MJPG'}


class OutputError(ValueError):
    """An output that cannot be written, with its path and the problem."""


class FrameWriter:
    """`with FrameWriter(path, fps) as out: out.write(rgb)`; rgb uint8 `[H, W, 3]`."""

    def __init__(self, path: str | pathlib.Path, fps: float):
        self.path = pathlib.Path(path).absolute()
        self.fps = fps
        self.is_video = self.path.suffix.lower() in VIDEO_CODECS
        if not self.path.parent.is_dir():
            raise OutputError(f'{self.path}: its folder {self.path.parent} does not exist')
        self._video = None
        self._count = 0
        if self.is_video:
            handle = tempfile.NamedTemporaryFile(dir=self.path.parent, suffix=self.path.suffix,
                                                 prefix=f'.{self.path.stem}.tmp-', delete=False)
            handle.close()
            self._tmp = pathlib.Path(handle.name)
        else:
            self._tmp = pathlib.Path(tempfile.mkdtemp(dir=self.path.parent,
                                                      prefix=f'.{self.path.name}.tmp-'))

    def write(self, rgb: np.ndarray) -> None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if not self.is_video:
            if not cv2.imwrite(str(self._tmp / f'{self._count:06d}.png'), bgr):
                raise OutputError(f'{self.path}: writing frame {self._count} failed')
        else:
            if self._video is None:
                fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
                self._video = cv2.VideoWriter(str(self._tmp), fourcc, self.fps,
                                              (rgb.shape[1], rgb.shape[0]))
                if not self._video.isOpened():
                    raise OutputError(f'{self.path}: OpenCV cannot write this video format')
            self._video.write(bgr)
        self._count += 1

    def _close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def abort(self) -> None:
        """Removes what was written."""
        self._close()
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)

    def commit(self) -> None:
        """Moves the finished output onto its name (replacing an older one)."""
        self._close()
        if self._count == 0:
            self.abort()
            raise OutputError(f'{self.path}: no frames to write')
        if self.path.is_dir() and not self.is_video:
            old = self.path.with_name(f'.{self.path.name}.old')
            self.path.rename(old)
            self._tmp.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self._tmp.replace(self.path)

    def __enter__(self) -> 'FrameWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
