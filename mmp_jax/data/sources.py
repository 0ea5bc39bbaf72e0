"""Readers of frames on disk: folders of images and video files. Frames are uint8 RGB
`[H, W, 3]`, streamed one at a time (`iter_frames`) or stacked `[T, H, W, 3]`."""
import dataclasses
import pathlib
import re
from collections.abc import Iterator

import cv2
import numpy as np

FRAME_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.avi', '.m4v', '.webm', '.mpg', '.mpeg', '.wmv')


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


def list_videos(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Video files (by suffix) directly in a folder, in natural order (possibly none)."""
    return sorted((p for p in pathlib.Path(folder).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                  key=natural_key)


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


def _iter_video(path: pathlib.Path, capture: cv2.VideoCapture, stated: int | None,
                allow_truncated: bool) -> Iterator[np.ndarray]:
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
        if stated is not None and count < stated and not allow_truncated:
            raise SourceError(f'{path}: frame {count} cannot be decoded (the video states {stated} frames; '
                              f'it is damaged or truncated; --allow-truncated keeps the {count} frames before it)')
    finally:
        capture.release()


@dataclasses.dataclass
class FrameSource:
    """Frames of a folder or video, read lazily: `frames` yields uint8 RGB `[H, W, 3]`."""
    path: pathlib.Path
    frames: Iterator[np.ndarray]
    count: int | None         # None where the container does not say
    fps: float                # of the video; `folder_fps` for folders
    names: list[str] | None   # file names of a folder's frames, in order; None for videos


def open_frames(path: str | pathlib.Path, folder_fps: float = 25.0,
                allow_truncated: bool = False) -> FrameSource:
    """A folder of images or a video file OpenCV can read; SourceError names the problem. A
    video that ends before the frame count it states is an error when its frames are read
    (after the frames that decoded), unless `allow_truncated`."""
    path = pathlib.Path(path)
    if path.is_dir():
        paths = list_frames(path)
        return FrameSource(path, _iter_folder(paths), len(paths), folder_fps, [p.name for p in paths])
    if not path.exists():
        raise SourceError(f'{path}: no such file or folder')
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f'{path}: not a video OpenCV can open')
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    stated = count if count > 0 else None
    return FrameSource(path, _iter_video(path, capture, stated, allow_truncated), stated,
                       fps if fps > 0 else folder_fps, None)


# --- data set layouts -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SequenceRef:
    """A sequence on disk: `sharp` frames (high-fps sources) or `blurry` + `sharp` pairs."""
    name: str
    sharp: pathlib.Path
    blurry: pathlib.Path | None = None


def _split_folder(root: pathlib.Path, split: str) -> pathlib.Path:
    folder = root / split
    if not folder.is_dir():
        raise SourceError(f'{root}: no {split!r} split (expected {folder})')
    sequences = sorted((p for p in folder.iterdir() if p.is_dir()), key=natural_key)
    if not sequences:
        raise SourceError(f'{folder}: no sequence folders')
    return folder


def _require(path: pathlib.Path) -> pathlib.Path:
    list_frames(path)  # raises SourceError naming the folder when absent or empty
    return path


# GOPRO_Large_all names a sequence `GOPR<take>_<N>_<part>`: N sharp frames make each of its
# blurry frames in the GOPRO benchmark (`GOPR0372_07_00`: 7), the N the original's notebook uses.
_BLUR_FRAMES_IN_NAME = re.compile(r'^GOPR\d+_(\d+)_\d+$')


def blur_frames_in_name(name: str) -> int | None:
    """N (sharp frames per blurry frame) a GOPRO_Large_all sequence name gives, else None."""
    match = _BLUR_FRAMES_IN_NAME.match(name)
    return int(match.group(1)) if match else None


def gopro_raw_sequences(root: str | pathlib.Path, split: str) -> list[SequenceRef]:
    """Raw high-fps GOPRO (`GOPRO_Large_all/<split>/<seq>/*.png`): sharp frames only."""
    folder = _split_folder(pathlib.Path(root), split)
    return [SequenceRef(p.name, _require(p)) for p in sorted(folder.iterdir(), key=natural_key) if p.is_dir()]


# Blurry frames of the GOPRO benchmark: `blur_gamma` (averaged through a gamma curve) is what the
# paper's figures use: the original's data/make_dataset_lmdb.ipynb (and ESTRNN's) read it.
GOPRO_BLURRY = ('blur_gamma', 'blur')


def gopro_sequences(root: str | pathlib.Path, split: str, blurry: str = 'blur_gamma') -> list[SequenceRef]:
    """GOPRO benchmark (`<split>/<seq>/blur_gamma` or `<seq>/blur`, and `<seq>/sharp`)."""
    if blurry not in GOPRO_BLURRY:
        raise SourceError(f'unknown GOPRO blurry folder {blurry!r}; accepted: {", ".join(GOPRO_BLURRY)}')
    folder = _split_folder(pathlib.Path(root), split)
    return [SequenceRef(p.name, _require(p / 'sharp'), _require(p / blurry))
            for p in sorted(folder.iterdir(), key=natural_key) if p.is_dir()]


def bsd_sequences(root: str | pathlib.Path, split: str) -> list[SequenceRef]:
    """BSD (`<split>/<seq>/Blur/RGB`, `<seq>/Sharp/RGB`)."""
    folder = _split_folder(pathlib.Path(root), split)
    return [SequenceRef(p.name, _require(p / 'Sharp' / 'RGB'), _require(p / 'Blur' / 'RGB'))
            for p in sorted(folder.iterdir(), key=natural_key) if p.is_dir()]


def read_all(path: str | pathlib.Path) -> np.ndarray:
    """Every frame of a folder or video, uint8 `[T, H, W, 3]` (SourceError as `open_frames`)."""
    return np.stack(list(open_frames(path).frames))
