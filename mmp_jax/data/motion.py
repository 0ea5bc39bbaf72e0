"""Eq. 2-3: the motion magnitude prior (MMP) of a blurry frame from the flows of its window.

For a window of N sharp frames s_0 .. s_{N-1}, with forward flows F_j = flow(s_j -> s_{j+1})
and backward flows B_j = flow(s_{j+1} -> s_j), j = 0 .. N-2, the original
(`PrepareGTMMP/MMP-generate.ipynb`) accumulates per pixel, without warping:

    sum = 2 |F_0| + |F_1| + ... + |F_{N-2}|  +  2 |B_{N-2}| + |B_{N-3}| + ... + |B_0|
    MMP = min(sum / (2 N) / K, 1),   K = 15

i.e. each frame's motion is the mean of its forward and backward flow magnitudes, the end
frames (which have one of the two) counting that one twice, averaged over the N frames and
divided by K. The paper's Eq. 2-3 say the same in words; the notebook is the authority for
the end frames' weights and for the absence of warping.
"""
from collections.abc import Sequence

import numpy as np

K = 15.0


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """`[..., H, W, 2]` flow (dx, dy) in pixels -> `[..., H, W]` magnitude."""
    return np.sqrt(np.sum(np.square(flow, dtype=np.float64), axis=-1))


def window_mmp(forward: np.ndarray, backward: np.ndarray, k: float = K) -> np.ndarray:
    """Forward and backward flows `[N-1, H, W, 2]` of a window of N frames -> MMP
    `[H, W, 1]` float32 in [0, 1]."""
    if forward.shape != backward.shape or forward.ndim != 4 or forward.shape[-1] != 2:
        raise ValueError(f'flows must both be [N-1, H, W, 2]; got {forward.shape} and {backward.shape}')
    return magnitudes_mmp(flow_magnitude(forward), flow_magnitude(backward), k)


def magnitudes_mmp(forward: Sequence[np.ndarray], backward: Sequence[np.ndarray], k: float = K) -> np.ndarray:
    """The N-1 forward and backward flow magnitudes (each `[H, W]`, from `flow_magnitude`) of
    a window of N frames -> MMP `[H, W, 1]` float32 in [0, 1]; summed in order, as a stacked
    array's sum over its first axis."""
    n = len(forward) + 1
    total = sum(forward) + forward[0] + sum(backward) + backward[-1]
    return np.minimum(total / (2 * n) / k, 1.0).astype(np.float32)[..., None]
