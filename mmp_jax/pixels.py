"""The pixel contract shared by inference and evaluation.

The network downsamples by `DOWNSAMPLE` (4): frames are edge-padded to a multiple of it and
cropped back. Outputs in [0, 1] become 8-bit frames in one of two ways:
- 'truncate': `np.clip(x * 255, 0, 255).astype(np.uint8)`, as the original's test
  (`train/test.py`, `_test_torch` and `_test_lmdb`) writes and scores its outputs;
- 'round': to the nearest level, the better picture, used for what people look at.
"""
import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.models.mmp_rnn import DOWNSAMPLE

QUANTIZATIONS = ('truncate', 'round')


def pad_to_multiple(frames: np.ndarray, multiple: int = DOWNSAMPLE) -> np.ndarray:
    """`[..., H, W, C]` edge-padded (bottom, right) to multiples of `multiple`."""
    height, width = frames.shape[-3:-1]
    pad = [(0, 0)] * (frames.ndim - 3) + [(0, -height % multiple), (0, -width % multiple), (0, 0)]
    return np.pad(frames, pad, mode='edge')


def to_uint8(image: np.ndarray, quantization: str = 'round') -> np.ndarray:
    """`[..., C]` in [0, 1] (clipped) -> uint8, rounded or truncated (see the module doc)."""
    if quantization not in QUANTIZATIONS:
        raise UserError(f'unknown quantization {quantization!r}; accepted: {", ".join(QUANTIZATIONS)}')
    levels = np.clip(np.asarray(image) * 255.0, 0.0, 255.0)
    return (np.round(levels) if quantization == 'round' else levels).astype(np.uint8)
