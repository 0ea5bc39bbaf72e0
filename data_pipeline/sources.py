"""Readers of frames on disk: folders of images and video files. Frames are uint8 RGB
`[H, W, 3]`, streamed one at a time (`iter_frames`) or stacked `[T, H, W, 3]`."""
import dataclasses
import pathlib
import re
from collections.abc import Iterator

import cv2
import numpy as np

FRAME_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


class SourceError(ValueError):
    """A missing, unreadable or inconsistent input, with the path and the problem."""


def natural_key(path: pathlib.Path) -> list:
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', path.name)]


def list_frames(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Image files of a folder in natural order; SourceError if there is none."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise SourceError(f'{folder}: not a folder')
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=natural_key)
    if not paths:
        raise SourceError(f'{folder}: no frames ({", ".join(FRAME_SUFFIXES)})')
    return paths


def read_frame(path: pathlib.Path) -> np.ndarray:
    """One image as uint8 RGB `[H, W, 3]`; SourceError if it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f'{path}: cannot be read as an image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _iter_folder(paths: list[pathlib.Path]) -> Iterator[np.ndarray]:
    first = None
    for path in paths:
        frame = read_frame(path)
        if first is None:
            first = frame.shape
        elif frame.shape != first:
            raise SourceError(f'{path}: size {frame.shape[1]}x{frame.shape[0]} differs from '
                              f'{paths[0].name} ({first[1]}x{first[0]})')
        yield frame


def _iter_video(path: pathlib.Path, capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise SourceError(f'{path}: no frames could be decoded')
    finally:
        capture.release()


@dataclasses.dataclass
class FrameSource:
    """Frames of a folder or video, read lazily: `frames` yields uint8 RGB `[H, W, 3]`."""
    path: pathlib.Path
    frames: Iterator[np.ndarray]
    count: int | None   # None where the container does not say
    fps: float          # of the video; 25 for folders


def open_frames(path: str | pathlib.Path, folder_fps: float = 25.0) -> FrameSource:
    """A folder of images or a video file OpenCV can read; SourceError names the problem."""
    path = pathlib.Path(path)
    if path.is_dir():
        paths = list_frames(path)
        return FrameSource(path, _iter_folder(paths), len(paths), folder_fps)
    if not path.exists():
        raise SourceError(f'{path}: no such file or folder')
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f'{path}: not a video OpenCV can open')
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    return FrameSource(path, _iter_video(path, capture), count if count > 0 else None,
                       fps if fps > 0 else folder_fps)


def read_frame_folder(folder: str | pathlib.Path) -> np.ndarray:
    """All frames of a folder, uint8 `[T, H, W, 3]`; every frame must have the first's size."""
    return np.stack(list(_iter_folder(list_frames(folder))))
