"""Readers of frames on disk: folders of images and video files. Frames are uint8 RGB
`[H, W, 3]`, streamed one at a time (`open_frames`) or stacked `[T, H, W, 3]`."""
import dataclasses
import fractions
import pathlib
import re
from collections.abc import Callable, Iterator

import av
import cv2
import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.data import decode_limits
from mmp_jax.io.paths import not_a_regular_file
from mmp_jax.data.decode_limits import DEFAULT_MAX_PIXELS

FRAME_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.avi', '.m4v', '.webm', '.mpg', '.mpeg', '.wmv')


class SourceError(UserError):
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


def _check_pixels(path: pathlib.Path, width: int, height: int, max_pixels: int) -> None:
    try:
        decode_limits.check_pixels(str(path), width, height, max_pixels)
    except decode_limits.FrameSizeError as error:
        raise SourceError(str(error)) from None


def check_regular_file(path: pathlib.Path) -> None:
    """SourceError unless `path` is (or links to) a regular file (`paths.not_a_regular_file`)."""
    problem = not_a_regular_file(path)
    if problem:
        raise SourceError(f'{path}: {problem}')


def _quiet_imread(path: pathlib.Path):
    """cv2.imread without OpenCV's own warnings on stderr (a failure is reported once, by us)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _check_image(path: pathlib.Path, max_pixels: int) -> None:
    check_regular_file(path)
    try:
        decode_limits.check_image(path, max_pixels)
    except decode_limits.FrameSizeError as error:
        raise SourceError(str(error)) from None


def read_frame(path: pathlib.Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One image as uint8 RGB `[H, W, 3]`; SourceError if it cannot be decoded, or if its header
    states more than `max_pixels` pixels (checked before decoding, see `decode_limits`)."""
    _check_image(path, max_pixels)
    image = _quiet_imread(path)
    if image is None:
        raise SourceError(f'{path}: cannot be read as an image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _iter_folder(paths: list[pathlib.Path], max_pixels: int) -> Iterator[np.ndarray]:
    first = None
    for path in paths:
        frame = read_frame(path, max_pixels)
        if first is None:
            first = frame.shape
        elif frame.shape != first:
            raise SourceError(f'{path}: size {frame.shape[1]}x{frame.shape[0]} differs from '
                              f'{paths[0].name} ({first[1]}x{first[0]})')
        yield frame


@dataclasses.dataclass
class FrameSource:
    """Frames of a folder or video, read lazily: `frames` yields uint8 RGB `[H, W, 3]`.

    Videos only: `times` holds, as the frames are read, each frame's presentation time in
    seconds after the first frame's (exact fractions of the stream's time base), so that a
    variable frame rate can be kept; None for folders.

    A video's file stays open until its frames are read to the end or the source is closed
    (`close()`, or leaving `with open_frames(...) as source:`)."""
    path: pathlib.Path
    frames: Iterator[np.ndarray]
    count: int | None         # None where neither the container nor its packets say
    fps: float                # the video's average rate; `folder_fps` for folders
    names: list[str] | None   # file names of a folder's frames, in order; None for videos
    times: list[fractions.Fraction] | None = None
    release: Callable[[], None] = lambda: None  # closes what the source holds open (a video's container)

    def close(self) -> None:
        self.release()

    def __enter__(self) -> 'FrameSource':
        return self

    def __exit__(self, *exception) -> None:
        self.close()


def _packet_count(path: pathlib.Path) -> int | None:
    """Video packets of the first video stream, counted without decoding (Matroska and WebM
    state no frame count); None if the file cannot be demuxed to its end. A file cut short
    shows as packets of every stream ending before the duration its header states: then the
    frames that duration holds at the stream's rate (so that reading it is an error naming the
    frame where it ends, unless truncation is allowed)."""
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            count, end = 0, 0.0
            for packet in container.demux():
                if packet.size and packet.pts is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    count += packet.stream.index == video.index
            start = (container.start_time or 0) / av.time_base
            stated = (container.duration or 0) / av.time_base
    except av.FFmpegError:
        return None
    rate = float(frame_rate(video))
    if rate > 0 and end - start < stated - 2 / rate - 0.1:  # two frames' and 0.1 s of slack
        return max(count + 1, int(stated * rate))
    return count


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as shown: `rotation` (degrees counterclockwise, the display matrix a phone
    writes; -90 for a portrait video stored landscape) applied."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _iter_video(path: pathlib.Path, container, stated: int | None, allow_truncated: bool,
                max_pixels: int, times: list) -> Iterator[np.ndarray]:
    try:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        count, first, start = 0, None, None
        try:
            for frame in container.decode(stream):
                _check_pixels(path, frame.width, frame.height, max_pixels)  # a size changed mid-stream
                rgb = _upright(frame.to_ndarray(format='rgb24'), frame.rotation)
                if first is None:
                    first = rgb.shape
                elif rgb.shape != first:
                    raise SourceError(f'{path}: frame {count} is {rgb.shape[1]}x{rgb.shape[0]}, the first '
                                      f'{first[1]}x{first[0]}')
                exact = None if frame.pts is None else frame.pts * stream.time_base
                start = exact if start is None else start
                times.append(exact - start if exact is not None and start is not None
                             else fractions.Fraction(count) / frame_rate(stream))
                count += 1
                yield rgb
        except av.FFmpegError:
            stated = max(stated or 0, count + 1)  # the frame that failed
        if count == 0:
            raise SourceError(f'{path}: no frames could be decoded')
        if stated is not None and count < stated and not allow_truncated:
            raise SourceError(f'{path}: frame {count} cannot be decoded (the video states {stated} frames; '
                              f'it is damaged or truncated; --allow-truncated keeps the {count} frames before it)')
    finally:
        container.close()


def frame_rate(stream) -> fractions.Fraction:
    """A video stream's average frame rate (its guessed rate where the container has none)."""
    return stream.average_rate or stream.guessed_rate or fractions.Fraction(0)


def _open_video(path: pathlib.Path, max_pixels: int):
    """The PyAV container of the video file `path`, checked to hold a video stream of at most
    `max_pixels` (closed, and SourceError, where it does not)."""
    if not path.exists():
        raise SourceError(f'{path}: no such file or folder')
    check_regular_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise SourceError(f'{path}: not a video FFmpeg can open ({getattr(error, "strerror", None) or error})') \
            from None
    try:
        if not container.streams.video:
            raise SourceError(f'{path}: holds no video stream')
        context = container.streams.video[0].codec_context
        _check_pixels(path, context.width, context.height, max_pixels)
    except SourceError:
        container.close()
        raise
    return container


def check_input(path: str | pathlib.Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """What `open_frames` checks before any frame is decoded (a folder's frames or a video that
    opens, frame headers within `max_pixels`), with nothing left open and no frame counted."""
    path = pathlib.Path(path)
    if path.is_dir():
        _checked_folder(path, max_pixels)
    else:
        _open_video(path, max_pixels).close()


def _checked_folder(path: pathlib.Path, max_pixels: int) -> list[pathlib.Path]:
    """The frames of the folder `path` (`list_frames`), every header checked against `max_pixels`."""
    paths = list_frames(path)
    for frame in paths:
        _check_image(frame, max_pixels)
    return paths


def open_frames(path: str | pathlib.Path, folder_fps: float = 25.0, allow_truncated: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> FrameSource:
    """A folder of images or a video file FFmpeg (PyAV) can read; SourceError names the problem.
    The frame count of a video is the one its container states (MP4, AVI), else its packets
    counted without decoding (Matroska, WebM); a video whose frames end before it, or whose
    frame fails to decode, is an error when its frames are read (after the frames that decoded),
    unless `allow_truncated`. A video's frames are turned upright as its rotation metadata says.
    Frames larger than `max_pixels` (the header's size, see `decode_limits`: every frame's of a
    folder, the stream's of a video) are refused here, before any is decoded. A video stays open
    until its frames are read to the end or the source is closed (`FrameSource.close`)."""
    path = pathlib.Path(path)
    if path.is_dir():
        paths = _checked_folder(path, max_pixels)  # every header, before any frame is decoded
        return FrameSource(path, _iter_folder(paths, max_pixels), len(paths), folder_fps, [p.name for p in paths])
    container = _open_video(path, max_pixels)
    stream = container.streams.video[0]
    stated = stream.frames or _packet_count(path) or None
    rate = frame_rate(stream)
    times = []
    return FrameSource(path, _iter_video(path, container, stated, allow_truncated, max_pixels, times), stated,
                       float(rate) if rate > 0 else folder_fps, None, times, container.close)


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


def read_all(path: str | pathlib.Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Every frame of a folder or video, uint8 `[T, H, W, 3]` (SourceError as `open_frames`)."""
    return np.stack(list(open_frames(path, max_pixels=max_pixels).frames))
