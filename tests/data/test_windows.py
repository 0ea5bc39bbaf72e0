"""mmp_jax.data.build: the notebook's sliding windows and the random ones, streamed."""
import numpy as np
import pytest

from mmp_jax.data import build
from mmp_jax.data.blur import gamma_response, synthesize_blur
from mmp_jax.data.motion import window_mmp


def _frames(count, height=6, width=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


class _Recorder:
    """Frames handed out one at a time, and a flow backend (flow of pair t: t + 1 pixels
    in x, its negative back) that counts the pairs it computes."""

    def __init__(self, frames):
        self.frames, self.read, self.pairs = frames, 0, []

    def __iter__(self):
        for frame in self.frames:
            self.read += 1
            yield frame

    def flows(self, window):
        first = next(t for t in range(len(self.frames)) if np.array_equal(self.frames[t], window[0]))
        self.pairs += range(first, first + len(window) - 1)
        forward = np.zeros((len(window) - 1,) + window.shape[1:3] + (2,), np.float32)
        forward[..., 0] = np.arange(first + 1, first + len(window), dtype=np.float32)[:, None, None]
        return forward, -forward


def _notebook_starts(num_images, frames):
    """The window starts of `PrepareGTMMP/MMP-generate.ipynb`'s training loop."""
    return list(range(0, num_images - frames))


@pytest.mark.parametrize('length,n', [(20, 7), (24, 11), (15, 13)])
def test_sliding_windows_are_the_notebooks(length, n):
    frames = _frames(length)
    source = _Recorder(frames)
    made = []
    for frame in build.sliding_sequence(source, n, source.flows, gamma_response(), with_flows=True):
        assert source.read == frame.index + n + 1  # the window and the frame after it, no more
        made.append(frame)
    starts = _notebook_starts(length, n)
    assert len(made) == len(starts) == build.sliding_window_count(length, n)
    assert sorted(source.pairs) == list(range(length - 2))  # every pair once; pair T-2 in no window
    for frame, start in zip(made, starts):
        assert frame.index == start and frame.window == n
        np.testing.assert_array_equal(frame.blurry, synthesize_blur(frames[start:start + n], gamma_response()))
        np.testing.assert_array_equal(frame.sharp, frames[start + n // 2])
        expected = np.arange(start + 1, start + n, dtype=np.float32)
        np.testing.assert_array_equal(frame.forward[:, 0, 0, 0], expected)
        np.testing.assert_array_equal(frame.mmp, window_mmp(frame.forward, frame.backward))


def test_random_windows_stream_what_draw_windows_draws():
    frames = _frames(40)
    source = _Recorder(frames)
    windows = build.draw_windows(40, np.random.default_rng([0, 3]))
    made = []
    for frame in build.random_sequence(source, source.flows, gamma_response(), np.random.default_rng([0, 3])):
        start, n = windows[frame.index]
        assert source.read == start + n and frame.window == n
        np.testing.assert_array_equal(frame.blurry, synthesize_blur(frames[start:start + n], gamma_response()))
        made.append(frame)
    assert len(made) == len(windows) >= 3
    assert sorted(source.pairs) == [t for s, n in windows for t in range(s, s + n - 1)]


def test_a_sequence_shorter_than_one_window_is_an_error():
    source = _Recorder(_frames(7))
    with pytest.raises(ValueError, match='7 sharp frames are fewer than one window'):
        list(build.sliding_sequence(source, 7, source.flows, gamma_response()))
