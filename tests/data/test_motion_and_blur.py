import numpy as np
import pytest

from mmp_jax.data.blur import gamma_response, load_crf_npy, synthesize_blur
from mmp_jax.data.motion import K, window_mmp


def _flows(n, h=4, w=5, value=(0.0, 0.0)):
    return np.broadcast_to(np.float32(value), (n - 1, h, w, 2)).copy()


def test_constant_motion_gives_its_magnitude_over_k():
    mmp = window_mmp(_flows(11, value=(3, 4)), _flows(11, value=(-3, -4)))
    assert mmp.shape == (4, 5, 1) and mmp.dtype == np.float32
    np.testing.assert_allclose(mmp, 5 / K, rtol=1e-6)
    assert window_mmp(_flows(7, value=(40, 0)), _flows(7, value=(40, 0))).max() == 1.0  # clipped


def test_end_frames_count_their_single_flow_twice():
    """As the original notebook: 2|F_0| + ... and 2|B_{N-2}| + ..., over 2N, over K."""
    n = 7
    forward, backward = _flows(n), _flows(n)
    forward[0] = (2.0, 0.0)
    backward[-1] = (0.0, 1.0)
    backward[0] = (0.0, 3.0)
    expected = (2 * 2.0 + 2 * 1.0 + 3.0) / (2 * n) / K
    np.testing.assert_allclose(window_mmp(forward, backward), expected, rtol=1e-6)


def test_flows_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match=r'\[N-1, H, W, 2\]'):
        window_mmp(_flows(5), _flows(6))


def test_blur_averages_in_irradiance():
    black, white = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    blurry = synthesize_blur(np.stack([black, white]), gamma_response(2.2))
    assert (blurry == int(255 * 0.5 ** (1 / 2.2))).all()  # 186, brighter than the pixel mean
    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    same = synthesize_blur(np.stack([frame] * 7), gamma_response())
    assert np.abs(same.astype(int) - frame).max() <= 1  # truncated to 8 bits, as the original


def test_crf_npy_in_the_original_format(tmp_path):
    levels = np.linspace(0, 1, 256)
    np.save(tmp_path / 'crf.npy', np.repeat((levels ** 2.2)[:, None, None], 3, axis=2))
    response = load_crf_npy(tmp_path / 'crf.npy')
    frames = np.random.default_rng(1).integers(0, 250, (9, 6, 6, 3), dtype=np.uint8)
    ours = synthesize_blur(frames, response).astype(int)
    reference = synthesize_blur(frames, gamma_response(2.2)).astype(int)
    assert np.abs(ours - reference).max() <= 1
    np.save(tmp_path / 'bad.npy', np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r'bad.npy: expected an inverse CRF of shape \[256, 1, 3\]'):
        load_crf_npy(tmp_path / 'bad.npy')
