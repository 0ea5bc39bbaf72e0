"""The pixel contract of inference and evaluation: padding and 8-bit quantisation."""
import numpy as np
import pytest

from mmp_jax.pixels import pad_to_multiple, to_uint8


def test_to_uint8_clips_and_rounds():
    assert to_uint8(np.array([-0.2, 0.5, 1.7, 0.1 / 255])).tolist() == [0, 128, 255, 0]


def test_to_uint8_truncates_as_the_original_test():
    """`np.clip(x, 0, 255).astype(np.uint8)` of the original's `_test_torch`: 127.5 -> 127, 254.9 -> 254."""
    values = np.array([-0.2, 0.5, 254.9 / 255, 1.7, 0.99 / 255], np.float32)
    assert to_uint8(values, 'truncate').tolist() == [0, 127, 254, 255, 0]
    with pytest.raises(ValueError, match='unknown quantization'):
        to_uint8(values, 'floor')


def test_pad_to_multiple_repeats_the_edge():
    frames = np.arange(2 * 5 * 6 * 1).reshape(2, 5, 6, 1)
    padded = pad_to_multiple(frames)
    assert padded.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(padded[:, :5, :6], frames)
    np.testing.assert_array_equal(padded[:, 7, :6], frames[:, 4])
    np.testing.assert_array_equal(padded[:, :5, 7], frames[:, :, 5])
