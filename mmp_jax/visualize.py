"""Pictures people look at: image strips and the prior as a heat map, written atomically."""
import pathlib

import cv2
import numpy as np

from mmp_jax.io import atomic
from mmp_jax.pixels import to_uint8


def heat_map(prior: np.ndarray) -> np.ndarray:
    """Prior `[H, W, 1]` or `[H, W]` in [0, 1] -> uint8 RGB `[H, W, 3]` (inferno colours)."""
    gray = to_uint8(np.asarray(prior).reshape(prior.shape[:2] + (1,)))
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def write_png(path: str | pathlib.Path, rgb: np.ndarray) -> None:
    """Writes uint8 RGB `[H, W, 3]` to `path` atomically (a temporary file, then a rename)."""
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f'{path}: PNG encoding failed for an image of shape {rgb.shape}')
    atomic.write_bytes(path, encoded.tobytes())
