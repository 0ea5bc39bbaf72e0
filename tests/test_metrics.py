import numpy as np
import pytest
from skimage.metrics import structural_similarity

from mmp_jax.metrics import psnr, ssim


def test_psnr_of_a_known_error():
    target = np.full((4, 6, 3), 100, np.uint8)
    assert psnr(target + 5, target) == pytest.approx(10 * np.log10(255 ** 2 / 25))
    assert psnr(target, target) == float('inf')


def test_ssim_uses_the_gaussian_protocol():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    noisy = np.clip(target.astype(int) + rng.integers(-20, 21, target.shape), 0, 255).astype(np.uint8)
    value = ssim(noisy, target)
    assert ssim(target, target) == pytest.approx(1.0)
    assert value == structural_similarity(target, noisy, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=255)
    uniform = structural_similarity(target, noisy, channel_axis=-1, data_range=255)
    assert abs(value - uniform) > 1e-5  # not skimage's default 7x7 uniform window
