"""Sharp high-frame-rate sequences -> blurry frames with their sharp target and MMP.

Consecutive, non-overlapping windows of N sharp frames (N drawn from 7..13, seeded, as the
GOPRO benchmark was made) become one blurry frame each (Eq. 1), its target the window's
centre sharp frame and its MMP from the flows inside the window (Eq. 2-3). Flows are
computed once per sequence, for all neighbouring pairs, and sliced per window.
"""
import dataclasses
from collections.abc import Iterator

import numpy as np

from mmp_jax.data.blur import N_RANGE, CameraResponse, synthesize_blur
from mmp_jax.data.flow import FlowBackend
from mmp_jax.data.motion import window_mmp


@dataclasses.dataclass
class BlurryFrame:
    index: int
    window: int                 # sharp frames averaged; 0 where the data set came blurred
    blurry: np.ndarray          # uint8 [H, W, 3]
    sharp: np.ndarray           # uint8 [H, W, 3]
    mmp: np.ndarray | None      # float32 [H, W, 1] in [0, 1]
    forward: np.ndarray | None = None   # float32 [N-1, H, W, 2]: the window's flows
    backward: np.ndarray | None = None


def draw_windows(num_sharp: int, rng: np.random.Generator,
                 n_range: tuple[int, int] = N_RANGE) -> list[tuple[int, int]]:
    """(start, N) of consecutive windows covering as much of the sequence as fits."""
    windows, start = [], 0
    while True:
        n = int(rng.integers(n_range[0], n_range[1] + 1))
        if start + n > num_sharp:
            return windows
        windows.append((start, n))
        start += n


def blur_sequence(sharp: np.ndarray, flows: FlowBackend, response: CameraResponse,
                  rng: np.random.Generator, n_range: tuple[int, int] = N_RANGE) -> Iterator[BlurryFrame]:
    """Sharp frames uint8 `[T, H, W, 3]` -> blurry frames with targets and MMP."""
    windows = draw_windows(len(sharp), rng, n_range)
    if not windows:
        raise ValueError(f'{len(sharp)} sharp frames are fewer than one window ({n_range[0]})')
    forward, backward = flows(sharp[:windows[-1][0] + windows[-1][1]])
    for index, (start, n) in enumerate(windows):
        stop = start + n
        fwd, bwd = forward[start:stop - 1], backward[start:stop - 1]
        yield BlurryFrame(index, n, synthesize_blur(sharp[start:stop], response), sharp[start + n // 2],
                          window_mmp(fwd, bwd), fwd, bwd)


def paired_sequence(blurry: np.ndarray, sharp: np.ndarray) -> Iterator[BlurryFrame]:
    """A data set that came blurred (GOPRO benchmark, BSD): pairs, no MMP."""
    for index, (b, s) in enumerate(zip(blurry, sharp)):
        yield BlurryFrame(index, 0, b, s, None)
