"""Video outputs through PyAV: H.264 quality, lossless, frame rate, audio copy, odd sizes, safety."""
import fractions
import pathlib

import av
import cv2
import numpy as np
import pytest

from mmp_jax import video_encoding
from mmp_jax.frame_writers import FrameWriter, OutputError

FPS = 12.0
FRAMES = 24
_I = av.video.reformatter.Interpolation
# YUV -> RGB as a good player does (swscale's default repeats chroma samples: ~37 dB on saturated
# gradients in a 4:2:0 round trip with no encoding at all)
_TO_RGB = _I.BICUBIC | _I.FULL_CHR_H_INT | _I.ACCURATE_RND


def _scene(height: int, width: int, frames: int = FRAMES) -> np.ndarray:
    """Natural-ish frames, float `[T, H, W, 3]` in [0, 255]: moving grey texture under a smooth
    colour tint (chroma mostly low frequency, as in photographs): a stand-in ground truth."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(frames)[:, None, None]
    luma = 120 + 50 * np.sin((x + 2 * t) / 6) + 35 * np.cos((y - t) / 5) + 15 * np.sin(x * y / 200 + t / 3)
    tint = np.stack([1 + 0.25 * np.sin(x / 23), np.ones_like(x), 1 + 0.25 * np.cos(y / 19)], -1)
    return np.clip(luma[..., None] * tint, 0, 255)


def _output_like(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """A deblurred-output stand-in: `truth` blurred plus mild noise, uint8 (~35 dB from it)."""
    blurred = np.stack([cv2.GaussianBlur(frame, (0, 0), 2.0) for frame in truth])
    noise = np.random.default_rng(seed).normal(0, 2, truth.shape)
    return np.clip(blurred + noise, 0, 255).round().astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse)) if mse else float('inf')


def _write(path: pathlib.Path, frames: np.ndarray, **options) -> None:
    with FrameWriter(path, FPS, **options) as out:
        for frame in frames:
            out.write(frame)


def _decode(path: pathlib.Path) -> np.ndarray:
    """All frames of `path`, rgb uint8 `[T, H, W, 3]`."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format='rgb24', interpolation=_TO_RGB)
                         for frame in container.decode(video=0)])


def _make_input(path: pathlib.Path, frames: np.ndarray, audio: str | None) -> None:
    """A video of `frames` at FPS with, when `audio` names a codec, a 440 Hz tone as long."""
    with av.open(str(path), 'w') as container:
        video = container.add_stream('libx264', rate=fractions.Fraction(FPS))
        video.height, video.width = frames.shape[1:3]
        sound = container.add_stream(audio, rate=48000, layout='mono') if audio else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24').reformat(format='yuv420p')
            frame.pts = index
            container.mux(video.encode(frame))
        if sound is not None:
            size = sound.codec_context.frame_size or 1024
            samples = np.sin(2 * np.pi * 440 * np.arange(int(48000 * len(frames) / FPS)) / 48000)
            layout = 's16' if audio.startswith('pcm') else 'fltp'
            for start in range(0, len(samples) - size + 1, size):
                chunk = samples[start:start + size][None]
                chunk = (chunk * 20000).astype(np.int16) if layout == 's16' else chunk.astype(np.float32)
                piece = av.AudioFrame.from_ndarray(chunk, format=layout, layout='mono')
                piece.sample_rate, piece.pts = 48000, start
                container.mux(sound.encode(piece))
            container.mux(sound.encode(None))
        container.mux(video.encode(None))


def _audio_seconds(path: pathlib.Path) -> float | None:
    """Seconds of audio decoded from `path`, None without an audio stream."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def test_h264_default_is_close_to_the_png_path(tmp_path):
    truth = _scene(48, 64)
    frames = _output_like(truth)
    _write(tmp_path / 'out.mp4', frames)
    decoded = _decode(tmp_path / 'out.mp4')
    assert decoded.shape == frames.shape
    assert _psnr(decoded, frames) >= 38            # fidelity to the frames written (~39.2 dB)
    png = _psnr(frames, truth.round())             # the lossless PNG path against the truth (~34.8)
    assert abs(_psnr(decoded, truth.round()) - png) <= 0.5   # H.264 at CRF 18: ~34.6 dB
    with av.open(str(tmp_path / 'out.mp4')) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.format.name) == ('h264', 'yuv420p')
        assert stream.average_rate == FPS and stream.frames == FRAMES
        assert not container.streams.audio
    capture = cv2.VideoCapture(str(tmp_path / 'out.mp4'))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES


def test_quality_sets_the_crf(tmp_path):
    frames = _output_like(_scene(48, 64))
    _write(tmp_path / 'fine.mp4', frames, quality=10)
    _write(tmp_path / 'coarse.mp4', frames, quality=35)
    assert _psnr(_decode(tmp_path / 'fine.mp4'), frames) > _psnr(_decode(tmp_path / 'coarse.mp4'), frames) + 3


@pytest.mark.parametrize('suffix', ['.mp4', '.mkv'])
def test_lossless_decodes_bit_exactly(tmp_path, suffix):
    frames = _output_like(_scene(36, 44))
    _write(tmp_path / f'out{suffix}', frames, codec='lossless')
    np.testing.assert_array_equal(_decode(tmp_path / f'out{suffix}'), frames)
    capture = cv2.VideoCapture(str(tmp_path / f'out{suffix}'))
    ok, bgr = capture.read()
    assert ok and np.array_equal(bgr[..., ::-1], frames[0])


@pytest.mark.parametrize('shape', [(37, 45), (36, 45), (37, 44)])
def test_odd_sizes_keep_their_size(tmp_path, shape):
    frames = _output_like(_scene(*shape, frames=6))
    _write(tmp_path / 'out.mp4', frames)
    decoded = _decode(tmp_path / 'out.mp4')
    assert decoded.shape == frames.shape and _psnr(decoded, frames) >= 35


@pytest.mark.parametrize('audio,suffix', [('aac', '.mp4'), ('pcm_s16le', '.mkv')])
def test_audio_is_copied(tmp_path, audio, suffix):
    source = tmp_path / f'in{suffix}'
    frames = _output_like(_scene(48, 64))
    _make_input(source, frames, audio)
    _write(tmp_path / f'out{suffix}', frames, audio_from=source)
    assert _audio_seconds(tmp_path / f'out{suffix}') == pytest.approx(_audio_seconds(source), abs=1 / FPS)
    with av.open(str(source)) as before, av.open(str(tmp_path / f'out{suffix}')) as after:
        assert after.streams.audio[0].codec_context.name == before.streams.audio[0].codec_context.name
        assert after.streams.video[0].index == 0 and after.streams.video[0].frames in (0, FRAMES)
    assert len(_decode(tmp_path / f'out{suffix}')) == FRAMES


def test_no_audio_in_no_audio_out(tmp_path):
    frames = _output_like(_scene(48, 64, frames=4))
    _make_input(tmp_path / 'in.mp4', frames, None)
    _write(tmp_path / 'out.mp4', frames, audio_from=tmp_path / 'in.mp4')
    _write(tmp_path / 'frames_in.mp4', frames, audio_from=tmp_path)   # a folder of frames
    assert _audio_seconds(tmp_path / 'out.mp4') is None
    assert _audio_seconds(tmp_path / 'frames_in.mp4') is None


def test_audio_the_container_cannot_hold_is_refused_before_writing(tmp_path):
    source = tmp_path / 'in.mkv'
    _make_input(source, _output_like(_scene(48, 64, frames=4)), 'libopus')
    with pytest.raises(OutputError, match=r'out\.mov: .*opus'):
        FrameWriter(tmp_path / 'new' / 'out.mov', FPS, audio_from=source)
    with pytest.raises(OutputError, match=r'out\.avi: .*MJPG'):
        FrameWriter(tmp_path / 'out.avi', FPS, audio_from=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mkv']


def test_bad_options_are_refused(tmp_path):
    for options, message in [({'codec': 'vp9'}, 'choose one of'), ({'quality': 60}, '0-51'),
                             ({'codec': 'lossless', 'quality': 18}, 'h264 codec only')]:
        with pytest.raises(OutputError, match=message):
            FrameWriter(tmp_path / 'out.mp4', FPS, **options)
    assert list(tmp_path.iterdir()) == []


def test_avi_stays_mjpg_and_takes_a_named_codec(tmp_path):
    frames = _output_like(_scene(48, 64, frames=4))
    _write(tmp_path / 'default.avi', frames)
    _write(tmp_path / 'lossless.avi', frames, codec='lossless')
    assert cv2.VideoCapture(str(tmp_path / 'default.avi')).get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*'MJPG')
    np.testing.assert_array_equal(_decode(tmp_path / 'lossless.avi'), frames)


def test_errors_leave_nothing_and_overwrite_replaces(tmp_path):
    frames = _output_like(_scene(48, 64, frames=4))
    source = tmp_path / 'in.mp4'
    _make_input(source, frames, 'aac')
    with pytest.raises(RuntimeError):
        with FrameWriter(tmp_path / 'a' / 'out.mp4', FPS, audio_from=source) as out:
            out.write(frames[0])
            raise RuntimeError('stopped')
    with pytest.raises(OutputError, match='encoding the video failed'):
        with FrameWriter(tmp_path / 'a' / 'out.mp4', FPS) as out:
            out.write(frames[0])
            out.write(frames[1][:20])   # another size
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4']
    _write(tmp_path / 'out.mp4', frames[:2])
    with pytest.raises(OutputError, match='already exists'):
        FrameWriter(tmp_path / 'out.mp4', FPS)
    _write(tmp_path / 'out.mp4', frames, overwrite=True, codec='lossless')
    assert len(_decode(tmp_path / 'out.mp4')) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4', 'out.mp4']


def test_frame_rate_is_exact():
    assert video_encoding.frame_rate(30000 / 1001) == fractions.Fraction(30000, 1001)
    assert video_encoding.frame_rate(12.5) == fractions.Fraction(25, 2)
