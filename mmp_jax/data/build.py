"""Sharp high-frame-rate sequences -> blurry frames with their sharp target and MMP.

A window of N sharp frames becomes one blurry frame (Eq. 1), its target the window's centre
sharp frame and its MMP from the flows inside the window (Eq. 2-3). Two ways to place the
windows:

- `sliding_windows`: the original's stage-1 data (`PrepareGTMMP/MMP-generate.ipynb`): stride
  1 and the sequence's own N (GOPRO_Large_all `GOPR0374_11_00` -> 11), starts
  0 .. T - N - 1 (`range(0, len(images) - frames)`: T - N windows, the last full window left
  out as the notebook does). About 22,499 training pairs from GOPRO_Large_all.
- `random_windows`: consecutive, non-overlapping windows, N drawn from 7..13 (seeded), as
  the GOPRO benchmark was made: sequences of distinct blurry frames.

`blur_windows` streams: frames are read as the windows need them and dropped once no later
window does, and each neighbouring pair's flows are computed once, when a window first needs
them, and dropped with their first frame. A window of N holds at most N + 1 frames (the
frame after it, for sliding windows' end test), their irradiance, and N - 1 flow pairs with
their magnitudes, so memory does not grow with the sequence length.
"""
import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.data.blur import N_RANGE, CameraResponse, blur_irradiance
from mmp_jax.data.flow import FlowBackend
from mmp_jax.data.motion import flow_magnitude, magnitudes_mmp


@dataclasses.dataclass
class BlurryFrame:
    index: int
    window: int                 # sharp frames averaged; 0 where the data set came blurred
    blurry: np.ndarray          # uint8 [H, W, 3]
    sharp: np.ndarray           # uint8 [H, W, 3]
    mmp: np.ndarray | None      # float32 [H, W, 1] in [0, 1]
    forward: np.ndarray | None = None   # float32 [N-1, H, W, 2]: the window's flows (where asked)
    backward: np.ndarray | None = None


def sliding_windows(n: int) -> Iterator[tuple[int, int]]:
    """(start, N) of the notebook's windows: every start, the same N (endless; `blur_windows`
    stops them with `lookahead=1`)."""
    return ((start, n) for start in itertools.count())


def sliding_window_count(num_sharp: int, n: int) -> int:
    """Windows the notebook makes from `num_sharp` frames: `len(range(0, num_sharp - n))`."""
    return max(num_sharp - n, 0)


def random_windows(rng: np.random.Generator, n_range: tuple[int, int] = N_RANGE) -> Iterator[tuple[int, int]]:
    """(start, N) of consecutive windows, N drawn from `n_range` (endless)."""
    start = 0
    while True:
        n = int(rng.integers(n_range[0], n_range[1] + 1))
        yield start, n
        start += n


def draw_windows(num_sharp: int, rng: np.random.Generator,
                 n_range: tuple[int, int] = N_RANGE) -> list[tuple[int, int]]:
    """The `random_windows` that fit in `num_sharp` frames."""
    return list(itertools.takewhile(lambda w: w[0] + w[1] <= num_sharp, random_windows(rng, n_range)))


def blur_windows(frames: Iterable[np.ndarray], windows: Iterable[tuple[int, int]], flows: FlowBackend,
                 response: CameraResponse, lookahead: int = 0, with_flows: bool = False) -> Iterator[BlurryFrame]:
    """Sharp frames uint8 `[H, W, 3]` (read lazily, in order) -> a blurry frame per window
    (start, N), starts increasing, while frames `start .. start + N - 1 + lookahead` exist;
    its `forward` and `backward` flows only `with_flows`. ValueError if not even the first
    window fits."""
    frames = iter(frames)
    sharp, irradiance, pairs = {}, {}, {}   # by frame index; pair t: flows t -> t + 1 and back, magnitudes
    read = 0
    for index, (start, n) in enumerate(windows):
        stop = start + n
        while read < stop + lookahead:
            frame = next(frames, None)
            if frame is None:
                if index == 0:
                    raise UserError(f'{read} sharp frames are fewer than one window ({n + lookahead})')
                return
            sharp[read] = frame
            read += 1
        for cache in (sharp, irradiance, pairs):
            for old in [t for t in cache if t < start]:
                del cache[old]
        first_new = next((t for t in range(start, stop - 1) if t not in pairs), stop - 1)
        if first_new < stop - 1:
            forward, backward = flows(np.stack([sharp[t] for t in range(first_new, stop)]))
            pairs.update((first_new + k, (f, b, flow_magnitude(f), flow_magnitude(b)))
                         for k, (f, b) in enumerate(zip(forward, backward)))
        for t in range(start, stop):
            if t not in irradiance:
                irradiance[t] = response.to_irradiance(sharp[t])
        window = [pairs[t] for t in range(start, stop - 1)]
        mmp = magnitudes_mmp([p[2] for p in window], [p[3] for p in window])
        blurry = blur_irradiance([irradiance[t] for t in range(start, stop)], response)
        stacked = [np.stack([p[i] for p in window]) for i in (0, 1)] if with_flows else [None, None]
        yield BlurryFrame(index, n, blurry, sharp[start + n // 2], mmp, *stacked)


def sliding_sequence(frames: Iterable[np.ndarray], n: int, flows: FlowBackend, response: CameraResponse,
                     with_flows: bool = False) -> Iterator[BlurryFrame]:
    """The notebook's stage-1 windows of a sequence whose blurry frames average `n` sharp ones."""
    return blur_windows(frames, sliding_windows(n), flows, response, lookahead=1, with_flows=with_flows)


def random_sequence(frames: Iterable[np.ndarray], flows: FlowBackend, response: CameraResponse,
                    rng: np.random.Generator, n_range: tuple[int, int] = N_RANGE,
                    with_flows: bool = False) -> Iterator[BlurryFrame]:
    """Non-overlapping windows of N drawn from `n_range`."""
    return blur_windows(frames, random_windows(rng, n_range), flows, response, with_flows=with_flows)


def paired_sequence(blurry: Iterable[np.ndarray], sharp: Iterable[np.ndarray]) -> Iterator[BlurryFrame]:
    """A data set that came blurred (GOPRO benchmark, BSD): pairs, no MMP."""
    for index, (b, s) in enumerate(zip(blurry, sharp)):
        yield BlurryFrame(index, 0, b, s, None)
