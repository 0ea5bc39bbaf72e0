"""Streaming inference against the scanned model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.infer import StreamingDeblurrer
from mmp_jax.models.mmp_rnn import MMPRNN

MODEL = MMPRNN(n_features=4, n_blocks_a=1, n_blocks_b=1)


@pytest.fixture(scope='module')
def variables():
    return jax.jit(MODEL.init)(jax.random.key(0), jnp.zeros((1, 5, 20, 24, 3)))


def _frames(count, height=18, width=22):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_streaming_equals_the_scanned_model(variables):
    frames = _frames(9)  # 18 x 22: padded to 20 x 24 and cropped back
    padded = np.pad(frames, ((0, 0), (0, 2), (0, 2), (0, 0)), mode='edge').astype(np.float32) / 255
    scanned = np.asarray(jax.jit(MODEL.apply)(variables, jnp.asarray(padded[None])))[0, :, :18, :22]
    for ends, first in (('drop', 2), ('replicate', 0)):
        streamed = list(StreamingDeblurrer(MODEL, variables, ends)(iter(frames)))
        indices = [f.index for f in streamed]
        assert indices == list(range(first, 9 - first))
        interior = np.stack([f.output for f in streamed if 2 <= f.index < 7])
        np.testing.assert_allclose(interior, scanned, atol=1e-5)
        assert streamed[0].sharp.shape == (18, 22, 3) and streamed[0].prior.shape == (18, 22, 1)


@pytest.mark.parametrize('count', [1, 2, 3])
def test_short_videos_get_every_frame(variables, count):
    assert [f.index for f in StreamingDeblurrer(MODEL, variables)(iter(_frames(count)))] == list(range(count))


def test_bfloat16_is_close_to_float32(variables):
    frames = _frames(5)
    f32 = [f.output for f in StreamingDeblurrer(MODEL, variables)(iter(frames))]
    bf16 = [f.output for f in StreamingDeblurrer(MODEL, variables, dtype='bfloat16')(iter(frames))]
    assert np.abs(np.stack(f32) - np.stack(bf16)).mean() < 0.05


def test_a_frame_of_another_size_is_refused(variables):
    frames = [*_frames(2), _frames(1, 18, 26)[0]]
    with pytest.raises(ValueError, match=r'frame 2: shape \(18, 26, 3\) differs'):
        list(StreamingDeblurrer(MODEL, variables)(iter(frames)))
