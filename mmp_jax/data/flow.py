"""Optical flow backends behind one signature: sharp frames uint8 `[T, H, W, 3]` ->
(forward `[T-1, H, W, 2]`, backward `[T-1, H, W, 2]`) float32, where forward[t] is the
flow from frame t to t+1 and backward[t] from frame t+1 to t, as (dx, dy) in pixels.

- 'exact': the true flow of a synthetic scene (`mmp_jax.data.synthetic`).
- 'dis': OpenCV's DIS optical flow; no weights needed, the default for real footage.
"""
from collections.abc import Callable

import cv2
import numpy as np

FlowBackend = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
DIS_PRESETS = {'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
               'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def dis_backend(preset: str = 'medium') -> FlowBackend:
    """DIS flow (Kroeger et al. 2016) on the grey frames, both directions."""
    if preset not in DIS_PRESETS:
        raise ValueError(f'unknown DIS preset {preset!r}; accepted: {tuple(DIS_PRESETS)}')

    def flows(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        forward = [dis.calc(a, b, None) for a, b in zip(grey[:-1], grey[1:])]
        backward = [dis.calc(b, a, None) for a, b in zip(grey[:-1], grey[1:])]
        return np.stack(forward).astype(np.float32), np.stack(backward).astype(np.float32)
    return flows


def exact_backend(frames: np.ndarray, forward: np.ndarray, backward: np.ndarray) -> FlowBackend:
    """The known flows of `frames` (a synthetic scene); any window of those frames works."""
    def flows(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for start in range(len(frames) - len(window) + 1):
            if np.array_equal(frames[start:start + len(window)], window):
                stop = start + len(window) - 1
                return forward[start:stop], backward[start:stop]
        raise ValueError('exact flow: these frames are not part of the scene')
    return flows
