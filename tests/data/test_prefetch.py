"""`prefetched`: the same batches in the same order at every depth, never more than `depth`
pulled ahead of the loop, the thread's errors raised in the loop, the thread stopped on exit."""
import threading
import time

import numpy as np
import pytest

from mmp_jax.data.prefetch import prefetched


class _Counted:
    """Seeded host batches `{'blurry': [2, 3]}` of steps 0 .. `length` - 1, counting the pulls."""

    def __init__(self, length: int):
        self.length, self.pulled = length, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.pulled == self.length:
            raise StopIteration
        self.pulled += 1
        return {'blurry': np.random.default_rng([0, self.pulled - 1]).random((2, 3), np.float32)}


def _placed(batch: dict) -> dict:
    return {k: v * 2 for k, v in batch.items()}


def _wait_for(condition, seconds=5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.parametrize('depth', [0, 1, 2, 3])
@pytest.mark.parametrize('length', [2, 7])  # 2: shorter than depth 3
def test_the_same_batches_in_the_same_order(depth, length):
    expected = [_placed(b) for b in _Counted(length)]
    with prefetched(_Counted(length), _placed, depth) as batches:
        got = list(batches)
    assert len(got) == length
    assert all(np.array_equal(a['blurry'], b['blurry']) for a, b in zip(got, expected))


@pytest.mark.parametrize('depth', [1, 2, 3])
def test_at_most_depth_batches_pulled_ahead(depth):
    source = _Counted(10)
    with prefetched(source, _placed, depth) as batches:
        _wait_for(lambda: source.pulled == depth)
        time.sleep(0.02)  # time to pull more, were it allowed
        assert source.pulled == depth
        for taken in range(1, 5):
            next(batches)
            _wait_for(lambda: source.pulled == taken + depth)
            time.sleep(0.02)
            assert source.pulled == taken + depth
    assert source.pulled == 4 + depth  # leaving stopped the thread: nothing more pulled
    time.sleep(0.02)
    assert source.pulled == 4 + depth


def test_depth_zero_pulls_only_when_asked():
    source = _Counted(5)
    with prefetched(source, _placed, 0) as batches:
        assert source.pulled == 0
        next(batches)
        assert source.pulled == 1


def test_an_error_of_the_input_is_raised_in_the_loop():
    def failing():
        yield {'blurry': np.zeros(2)}
        raise OSError('record damaged')

    with prefetched(failing(), _placed, 2) as batches:
        next(batches)
        with pytest.raises(OSError, match='record damaged'):
            next(batches)
        with pytest.raises(OSError, match='record damaged'):
            next(batches)


def test_leaving_stops_the_thread():
    before = threading.active_count()
    with prefetched(_Counted(100), _placed, 2) as batches:
        next(batches)
    assert threading.active_count() == before
    with pytest.raises(ValueError, match='must be >= 0'):
        with prefetched(_Counted(1), _placed, -1):
            pass
