"""PSNR and SSIM by the benchmark protocol, as ESTRNN and MMP-RNN score their results.

Frames are uint8 RGB `[H, W, 3]` (outputs clipped and truncated to 8 bits first, as the
original's test does: `mmp_jax.pixels.to_uint8`). PSNR over the whole frame in float64; SSIM from scikit-image
with a Gaussian window (sigma 1.5), population covariance, over the RGB channels.
"""
import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    mse = np.mean(np.square(output.astype(np.float64) - target.astype(np.float64)))
    return float('inf') if mse == 0 else float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    return float(structural_similarity(target, output, channel_axis=-1, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, data_range=DATA_RANGE))
