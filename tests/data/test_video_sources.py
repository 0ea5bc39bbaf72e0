"""Videos read through PyAV (`sources.open_frames`): the exact frame count of containers that
state none (Matroska with audio, WebM), rotation metadata, variable frame rates."""
import fractions
import pathlib
import struct

import av
import numpy as np
import pytest

from mmp_jax.data import sources
from tests.test_video_encoding import _make_input


def _frames(count: int = 10, height: int = 16, width: int = 24) -> np.ndarray:
    """Frames told apart by their level, with a bright top-left corner (so a turn shows)."""
    frames = np.repeat(np.arange(count, dtype=np.uint8)[:, None, None, None] * 20 + 10, height * width * 3
                       ).reshape(count, height, width, 3)
    frames[:, :4, :6] = 250
    return frames


def _decoded_levels(frames: list[np.ndarray]) -> list[int]:
    return [int(round(float(np.median(frame)))) for frame in frames]


def _with_longer_audio(path: pathlib.Path, frames: np.ndarray, fps: int = 12) -> pathlib.Path:
    """A video of `frames` whose audio (PCM) lasts two frames longer, as a camera's often does."""
    with av.open(str(path), 'w') as container:
        video = container.add_stream('libx264', rate=fps)
        video.height, video.width = frames.shape[1:3]
        sound = container.add_stream('pcm_s16le', rate=8000, layout='mono')
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24').reformat(format='yuv420p')
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = 8000 * (len(frames) + 2) // fps
        piece = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.int16), format='s16', layout='mono')
        piece.sample_rate, piece.pts = 8000, 0
        container.mux(sound.encode(piece))
        container.mux(sound.encode(None))
    return path


def test_matroska_with_longer_audio_counts_and_decodes_every_frame(tmp_path):
    video = _with_longer_audio(tmp_path / 'talk.mkv', _frames())  # Matroska states no frame count
    source = sources.open_frames(video)
    frames = list(source.frames)
    assert source.count == len(frames) == 10
    assert _decoded_levels(frames) == pytest.approx(list(range(10, 210, 20)), abs=2)


def test_webm_is_read(tmp_path):
    video = tmp_path / 'clip.webm'
    with av.open(str(video), 'w') as container:
        stream = container.add_stream('libvpx-vp9', rate=12)
        stream.height, stream.width, stream.pix_fmt = 16, 24, 'yuv420p'
        for index, rgb in enumerate(_frames(6)):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24').reformat(format='yuv420p')
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = sources.open_frames(video)
    frames = list(source.frames)
    assert source.count == len(frames) == 6 and source.fps == pytest.approx(12)
    assert _decoded_levels(frames) == pytest.approx(list(range(10, 130, 20)), abs=3)


def _rotated(path: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """`path` (an MP4) with the display matrix a phone writes for a portrait video stored
    landscape (shown turned 90 degrees clockwise), in its track header."""
    data = bytearray(path.read_bytes())
    header = data.find(b'tkhd')
    assert data[header + 4] == 0  # version 0: 4-byte times
    matrix = header + 4 + 4 + 4 * 5 + 8 + 8  # version/flags, 5 fields, reserved, layer..volume
    assert struct.unpack('>9i', data[matrix:matrix + 36]) == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    data[matrix:matrix + 36] = struct.pack('>9i', 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    target.write_bytes(bytes(data))
    return target


def test_a_phone_video_is_turned_upright(tmp_path):
    _make_input(tmp_path / 'stored.mp4', _frames(4), None)
    stored = list(sources.open_frames(tmp_path / 'stored.mp4').frames)
    shown = list(sources.open_frames(_rotated(tmp_path / 'stored.mp4', tmp_path / 'phone.mp4')).frames)
    assert stored[0].shape == (16, 24, 3) and shown[0].shape == (24, 16, 3)
    for plain, turned in zip(stored, shown):
        np.testing.assert_array_equal(turned, np.rot90(plain, -1))  # clockwise: the corner goes top-right
    assert shown[0][:6, -4:].min() > 200


def test_variable_frame_rate_times_are_kept(tmp_path):
    video, times = tmp_path / 'vfr.mp4', [0, 50, 100, 300, 310, 500]  # milliseconds
    with av.open(str(video), 'w') as container:
        stream = container.add_stream('libx264', rate=12)
        stream.height, stream.width = 16, 24
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for ms, rgb in zip(times, _frames(6)):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24').reformat(format='yuv420p')
            frame.pts, frame.time_base = ms, fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = sources.open_frames(video)
    assert len(list(source.frames)) == 6
    assert source.times == [fractions.Fraction(ms, 1000) for ms in times]


def test_a_file_without_video_names_the_problem(tmp_path):
    (tmp_path / 'notes.mp4').write_text('not a video')
    with pytest.raises(sources.SourceError, match='notes.mp4: not a video FFmpeg can open'):
        sources.open_frames(tmp_path / 'notes.mp4')
    sound = tmp_path / 'sound.mkv'
    with av.open(str(sound), 'w') as container:
        stream = container.add_stream('pcm_s16le', rate=8000, layout='mono')
        piece = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16', layout='mono')
        piece.sample_rate, piece.pts = 8000, 0
        container.mux(stream.encode(piece))
        container.mux(stream.encode(None))
    with pytest.raises(sources.SourceError, match='sound.mkv: holds no video stream'):
        sources.open_frames(sound)


def _open_files() -> int:
    return len(list(pathlib.Path('/proc/self/fd').iterdir()))


@pytest.mark.skipif(not pathlib.Path('/proc/self/fd').is_dir(), reason='counts open files through /proc')
def test_a_closed_source_and_a_checked_input_hold_no_file_open(tmp_path):
    """A folder of many videos is checked (the exporter) and opened (deblur) one at a time: an
    unread source closed, a source read to its end, and `check_input` leave no file open."""
    video = _with_longer_audio(tmp_path / 'talk.mkv', _frames(4))
    before = _open_files()
    held = sources.open_frames(video)
    assert _open_files() > before  # the container is open while the source is
    held.close()
    for _ in range(20):
        with sources.open_frames(video) as source:
            assert source.count == 4
        sources.check_input(video)
    with sources.open_frames(video) as source:
        assert len(list(source.frames)) == 4
    assert _open_files() == before


def test_a_matroska_file_cut_short_is_an_error_naming_where_it_ends(tmp_path):
    """Matroska states no frame count, but its header states the duration: a file cut at 60%
    (every stream's packets ending early) is damaged, unless truncation is allowed."""
    whole = _with_longer_audio(tmp_path / 'talk.mkv', _frames(30)).read_bytes()
    cut = tmp_path / 'cut.mkv'
    cut.write_bytes(whole[:len(whole) * 6 // 10])
    source = sources.open_frames(cut)
    with pytest.raises(sources.SourceError, match=r'cut.mkv: frame \d+ cannot be decoded .*damaged or truncated'):
        list(source.frames)
    kept = list(sources.open_frames(cut, allow_truncated=True).frames)
    assert 0 < len(kept) < 30
    assert sources.open_frames(tmp_path / 'talk.mkv').count == 30  # the whole file: its audio runs longer
