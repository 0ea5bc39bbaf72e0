"""Eq. 1: a blurry frame as the mean of N sharp frames in irradiance, through a camera
response function (CRF) and its inverse.

Two CRFs: a gamma curve (default, no data needed) and the GOPRO `crf.npy` that the original
uses (sollynoay/MMP-RNN `PrepareGTMMP/crf.npy`, from the REDS/GOPRO authors), read the way
its notebook reads it: the inverse CRF of channel 0 for all channels, values above 250
extrapolated linearly, cubic splines both ways. As the original, the blurry frame is
truncated (not rounded) to 8 bits.
"""
import dataclasses
import pathlib
from collections.abc import Callable

import numpy as np
from scipy.interpolate import InterpolatedUnivariateSpline

from mmp_jax.errors import UserError

N_RANGE = (7, 13)  # sharp frames per blurry frame in the GOPRO benchmark (paper Sec. 3.1)


@dataclasses.dataclass(frozen=True)
class CameraResponse:
    """`to_irradiance`: 8-bit values (any shape) -> irradiance; `to_pixels` the inverse."""
    to_irradiance: Callable[[np.ndarray], np.ndarray]
    to_pixels: Callable[[np.ndarray], np.ndarray]


def gamma_response(gamma: float = 2.2) -> CameraResponse:
    """x = 255 (I / 255)^(1/gamma)."""
    return CameraResponse(lambda x: (np.asarray(x, np.float64) / 255.0) ** gamma * 255.0,
                          lambda i: (np.clip(i, 0, None) / 255.0) ** (1.0 / gamma) * 255.0)


def load_crf_npy(path: str | pathlib.Path) -> CameraResponse:
    """The original's `crf.npy` (inverse CRF, `[256, 1, 3]`), as its notebook uses it."""
    path = pathlib.Path(path)
    try:
        inverse = np.load(path, allow_pickle=False).squeeze().astype(np.float64)
    except (OSError, ValueError) as error:
        raise UserError(f'{path}: cannot be read as .npy: {error}') from None
    if inverse.shape != (256, 3):
        raise UserError(f'{path}: expected an inverse CRF of shape [256, 1, 3], got {inverse.shape}')
    step = (inverse[251] - inverse[249]) / 2  # first-order extension above 250, as the original
    for value in range(251, 256):
        inverse[value] = inverse[value - 1] + step
    levels = np.linspace(0, 255, 256)
    forward = InterpolatedUnivariateSpline(levels, inverse[:, 0])
    backward = InterpolatedUnivariateSpline(inverse[:, 0], levels)
    return CameraResponse(lambda x: forward(np.asarray(x, np.float64).reshape(-1)).reshape(np.shape(x)),
                          lambda i: backward(np.asarray(i, np.float64).reshape(-1)).reshape(np.shape(i)))


def synthesize_blur(sharp: np.ndarray, response: CameraResponse) -> np.ndarray:
    """Sharp frames uint8 `[N, H, W, 3]` -> blurry frame uint8 `[H, W, 3]` (Eq. 1)."""
    return blur_irradiance([response.to_irradiance(frame) for frame in sharp], response)


def blur_irradiance(irradiance: list[np.ndarray], response: CameraResponse) -> np.ndarray:
    """The N sharp frames' irradiance (each `[H, W, 3]`, `response.to_irradiance` of uint8)
    -> blurry frame uint8 `[H, W, 3]` (Eq. 1). Summed in order, in place: the values of
    `np.mean(irradiance, axis=0)` without stacking the N frames."""
    total = np.array(irradiance[0], np.float64)
    for frame in irradiance[1:]:
        total += frame
    total /= len(irradiance)
    return np.clip(response.to_pixels(total), 0, 255).astype(np.uint8)
