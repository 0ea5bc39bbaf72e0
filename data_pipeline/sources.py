"""Readers of frames on disk. Frames come out as uint8 RGB `[T, H, W, 3]`."""
import pathlib
import re

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


def read_frame_folder(folder: str | pathlib.Path) -> np.ndarray:
    """All frames of a folder, uint8 `[T, H, W, 3]`; every frame must have the first's size."""
    paths = list_frames(folder)
    frames = [read_frame(paths[0])]
    for path in paths[1:]:
        frame = read_frame(path)
        if frame.shape != frames[0].shape:
            raise SourceError(f'{path}: size {frame.shape[1]}x{frame.shape[0]} differs from '
                              f'{paths[0].name} ({frames[0].shape[1]}x{frames[0].shape[0]})')
        frames.append(frame)
    return np.stack(frames)
