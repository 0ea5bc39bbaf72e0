"""A SIGTERM or Ctrl-C at any line of `deblur_file` leaves no temporary behind: signals
sent from inside the writers, at the lines where an exception used to strand one."""
import os
import pathlib
import signal
import types

import numpy as np
import pytest

from mmp_jax import deblur_files, frame_writers, infer, interrupts
from mmp_jax.data.sources import FrameSource
from mmp_jax.io import atomic

FRAMES = 4


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)


def test_a_signal_inside_held_is_raised_when_the_outermost_block_ends():
    steps = []
    with interrupts.stop_on_signals(), pytest.raises(interrupts.Terminated):
        with interrupts.held():
            with interrupts.held():
                _send(signal.SIGTERM)
                steps.append('inner')
            steps.append('outer')
        steps.append('after')  # not reached
    assert steps == ['inner', 'outer']
    with interrupts.stop_on_signals(), pytest.raises(KeyboardInterrupt):
        _send(signal.SIGINT)
        steps.append('unheld')  # not reached
    assert steps == ['inner', 'outer']
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers put back


class _FakeDeblurrer:
    """Yields the input frames as outputs; `signal_after` frames in, sends SIGTERM. Its model has
    no MMP-Net (so no frame size is too small for it)."""
    model = types.SimpleNamespace(use_mmam=False, needs_prior=False, min_frame_side=0)

    def __init__(self, signal_after: int | None = None):
        self.signal_after = signal_after

    def __call__(self, frames):
        for index, frame in enumerate(frames):
            if index == self.signal_after:
                _send(signal.SIGTERM)
            yield infer.DeblurredFrame(index, frame, frame.astype(np.float32) / 255, None)


def _source(tmp_path: pathlib.Path) -> FrameSource:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (FRAMES, 16, 24, 3), dtype=np.uint8)
    return FrameSource(tmp_path / 'input.avi', iter(frames), FRAMES, 12.0, None)


def _deblur(tmp_path, output: pathlib.Path, deblurrer=None) -> int:
    return deblur_files.deblur_file(deblurrer or _FakeDeblurrer(), _source(tmp_path), str(output), progress=False,
                             audio=False)


@pytest.mark.parametrize('name', ['out.avi', 'frames'])
def test_sigterm_right_after_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch, name):
    real = atomic.temporary_beside

    def temporary_then_signal(*args, **kwargs):
        temporary = real(*args, **kwargs)
        _send(signal.SIGTERM)
        return temporary

    monkeypatch.setattr(atomic, 'temporary_beside', temporary_then_signal)
    outputs = tmp_path / 'outputs'
    with interrupts.stop_on_signals(), pytest.raises(interrupts.Terminated):
        _deblur(tmp_path, outputs / name)
    assert not outputs.exists()  # the temporary and the folder the writer made, both gone


def test_sigterm_while_frames_are_written_leaves_nothing(tmp_path):
    outputs = tmp_path / 'outputs'
    with interrupts.stop_on_signals(), pytest.raises(interrupts.Terminated):
        _deblur(tmp_path, outputs / 'out.avi', _FakeDeblurrer(signal_after=2))
    assert not outputs.exists()


class _SignalWhenCollected:
    """Sends SIGTERM from its finalizer: the handler's exception is printed and dropped there."""

    def __del__(self):
        _send(signal.SIGTERM)


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')  # the swallowed one
def test_a_sigterm_whose_exception_a_finalizer_swallowed_still_commits_nothing(tmp_path):
    class Deblurrer(_FakeDeblurrer):
        def __call__(self, frames):
            for frame in super().__call__(frames):
                _SignalWhenCollected()  # collected at once: Terminated raised and ignored in __del__
                yield frame

    outputs = tmp_path / 'outputs'
    with interrupts.stop_on_signals(), pytest.raises(interrupts.Terminated):
        _deblur(tmp_path, outputs / 'out.avi', Deblurrer())
    assert not outputs.exists()


def test_sigterm_while_committing_waits_for_the_output(tmp_path, monkeypatch):
    real_commit = frame_writers.FrameWriter.commit

    def signal_then_commit(writer):
        _send(signal.SIGTERM)
        real_commit(writer)

    monkeypatch.setattr(frame_writers.FrameWriter, 'commit', signal_then_commit)
    outputs = tmp_path / 'outputs'
    with interrupts.stop_on_signals(), pytest.raises(interrupts.Terminated):
        _deblur(tmp_path, outputs / 'frames')
    assert sorted(p.name for p in outputs.iterdir()) == ['frames']  # whole, no temporary beside it
    assert len(list((outputs / 'frames').iterdir())) == FRAMES
