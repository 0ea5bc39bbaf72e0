"""Seconds per frame of streaming inference, ours against the original PyTorch code doing the same work.

    python -m benchmarks.infer_speed [--variant A9B10C18F8] [--sizes 640x480,1280x720] \\
        [--dtypes float32,bfloat16] [--frames 4] [--repeats 2] [--original PATH/MMP-RNN]

One frame is one cell step (MMP-Net included) on frame t plus one reconstruction: the
features of the last `window` frames fused, reconstructed, and the skip of the centre frame
added. Both sides step through the same random 8-bit frames in the same driver
(`time_sides`), so they run the same number of cell steps and reconstructions (`work`).
After a warm-up frame (compilation, caches) every frame of `--repeats` passes over
`--frames` frames is timed whole, then part by part: MMP-Net, the rest of the cell (given
MMP-Net's prior), fusion + reconstruction + skip. Figures are medians over the timed frames.
GMAC/s uses the exact per-frame MAC count of `mmp_jax.models.macs`.

With `--original` (the outer MMP-RNN/ folder of sollynoay/MMP-RNN; needs torch, thop, cv2,
PIL) the original runs in a process of its own (`time_original_apart`) with
`torch.set_num_threads(2)`, in eval mode under `torch.no_grad()`, float32, beside our float32
run, on the same frames and through the same driver. `original_side` also runs it on a GPU, in
the modes of `OriginalMode` (`benchmarks.gpu_suite`).
"""
import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report
from mmp_jax.models.macs import network_stats
from mmp_jax.models.mmp_rnn import mmpnet_prior, prior_variables
from mmp_jax.models.variants import model_from_variant, parse_variant

PARTS = ('mmp_net', 'rest_of_cell', 'fusion_recons_skip')
TORCH_THREADS = 2
Step = Callable[[int], None]  # runs its work on frame t and blocks until done


@dataclasses.dataclass(frozen=True)
class Side:
    """One implementation's work on frame t: `cell` a whole cell step, `reconstruct` fusion +
    reconstruction + skip of the current window, `parts` the keys of PARTS (MMP-Net; the
    rest of the cell given that prior; fusion + reconstruction + skip), or none (whole frames
    only)."""
    cell: Step
    reconstruct: Step
    parts: dict[str, Step]


def work(frames: int, repeats: int, parts: tuple[str, ...] = PARTS) -> dict[str, int]:
    """Calls of each step of a `Side` that `time_sides` makes, the same for every side: a
    warm-up frame, then `repeats` passes over `frames` frames, each frame whole (`cell` +
    `reconstruct`) and part by part (`rest_of_cell` is a cell step given MMP-Net's prior,
    `fusion_recons_skip` a reconstruction) where the sides have `parts`."""
    calls = 1 + repeats * frames
    return {'cell': calls, 'reconstruct': calls, **dict.fromkeys(parts, calls)}


def _timed(step: Step, t: int) -> float:
    start = time.perf_counter()
    step(t)
    return time.perf_counter() - start


def time_sides(sides: dict[str, Side], frames: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per frame (`s_per_frame`) and per part (`<part>_s`) of each side, the
    sides one after another. Per frame index a side runs `cell` and `reconstruct` once, then
    each of its parts once (`work`)."""
    return {name: _time_side(side, frames, repeats) for name, side in sides.items()}


def _time_side(side: Side, frames: int, repeats: int) -> dict[str, float]:
    samples = collections.defaultdict(list)
    for index in range(1 + repeats * frames):
        t = max(index - 1, 0) % frames
        whole = _timed(side.cell, t) + _timed(side.reconstruct, t)
        parts = {f'{part}_s': _timed(step, t) for part, step in side.parts.items()}
        if index:  # index 0 is the warm-up
            for key, seconds in {'s_per_frame': whole, **parts}.items():
                samples[key].append(seconds)
    return {key: statistics.median(values) for key, values in samples.items()}


def our_side(variant: str, frames: np.ndarray, dtype: str) -> Side:
    """`MMPRNN.encode` / `decode` jitted as `StreamingDeblurrer` runs them; MMP-Net alone and
    the cell with a given prior (the same weights) for the parts. `dtype`: the compute dtype
    (`MMPRNN.dtype`), parameters float32."""
    model = model_from_variant(variant, dtype=dtype)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    given = model.clone(prior_source='given')
    prior_vars = prior_variables(variables)
    encode = jax.jit(lambda v, c, x: model.apply(v, c, x, method=model.encode))
    encode_given = jax.jit(lambda v, c, x, p: given.apply(v, c, x, p, method=given.encode))
    mmp_net = jax.jit(lambda v, x: mmpnet_prior(v, x, model.scaling, model.compute_dtype))
    decode = jax.jit(lambda v, f, x: model.apply(v, f, x, method=model.decode))
    xs = [jnp.asarray(f[None] / 255.0, jnp.float32) for f in frames]
    carry = model.init_carry(1, *frames.shape[1:3])
    state = {'carry': carry, 'prior': None,
             'feats': collections.deque([jnp.zeros(carry[0].shape[:3] + (5 * model.n_features,), carry[0].dtype)]
                                        * model.window, maxlen=model.window)}

    def cell(t):
        state['carry'], f, _ = encode(variables, state['carry'], xs[t])
        state['feats'].append(f.block_until_ready())

    def reconstruct(t):
        decode(variables, list(state['feats']), xs[max(t - model.past_frames, 0)]).block_until_ready()

    def prior(t):
        state['prior'] = mmp_net(prior_vars, xs[t]).block_until_ready()

    def rest_of_cell(t):
        state['carry'], f, _ = encode_given(variables, state['carry'], xs[t], state['prior'])
        state['feats'].append(f.block_until_ready())

    return Side(cell, reconstruct, dict(zip(PARTS, (prior, rest_of_cell, reconstruct))))


@dataclasses.dataclass(frozen=True)
class OriginalMode:
    """How the original runs: float32, or its forward under `torch.autocast` to `autocast`
    ('float16', 'bfloat16'); weights and maps channels-last (`channels_last`); its cell, fusion,
    reconstructor and skip through `torch.compile` (`compile`, compiled at their first call)."""
    autocast: str | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        words = [f'autocast {self.autocast}' if self.autocast else 'float32']
        return ' + '.join(words + ['channels_last'] * self.channels_last + ['torch.compile'] * self.compile)

    def autocast_context(self, device):
        """A fresh `torch.autocast` for `device` (a torch.device), or a null context in float32."""
        import torch  # noqa: PLC0415 (only where the original runs)
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=getattr(torch, self.autocast))

    def memory_format(self):
        import torch  # noqa: PLC0415
        return torch.channels_last if self.channels_last else torch.contiguous_format


def original_model(path: str, variant: str, device: str = 'cpu', mode: OriginalMode = OriginalMode()):
    """The original `Model` of `variant` (random weights, `tests/original_reference.build_original`)
    on `device` ('cpu', 'cuda'), in eval mode, its weights in `mode`'s memory format; on the CPU
    with `torch.set_num_threads(TORCH_THREADS)`."""
    import torch  # noqa: PLC0415 (only with --original)

    from tests.original_reference import build_original, import_original  # noqa: PLC0415
    device = torch.device(device)
    if device.type == 'cpu':
        torch.set_num_threads(TORCH_THREADS)
    else:
        torch.backends.cudnn.benchmark = True  # as the original's trainer sets it
    fields = parse_variant(variant)
    model = build_original(*import_original(path), n_features=fields.n_features,
                           n_blocks_a=fields.n_blocks_a, n_blocks_b=fields.n_blocks_b)
    model = model.to(device, memory_format=mode.memory_format())
    model.device = device  # its zero states' device
    return model


def original_side(path: str, variant: str, frames: np.ndarray, device: str = 'cpu',
                  mode: OriginalMode = OriginalMode()) -> Side:
    """The original `Model`'s cell, fusion, reconstructor and skip called as its forward calls
    them, a frame at a time (its data loader's normalisation, (x - 127.5) / 255), on `device`
    in `mode`; every step waits for the device. The frames are on the device before timing.
    With `mode.compile` the parts recompile (the cell's prior is swapped): time whole frames."""
    import torch  # noqa: PLC0415 (only with --original)

    model = original_model(path, variant, device, mode)
    device, memory = model.device, mode.memory_format()
    xs = [((torch.from_numpy(f).float() - 127.5) / 255.0).permute(2, 0, 1)[None].to(device, memory_format=memory)
          for f in frames]
    c, window, past = model.n_feats, model.num_fb + model.num_ff + 1, model.num_fb
    h, w = (n // model.ds_ratio for n in frames.shape[1:3])
    dtype = getattr(torch, mode.autocast or 'float32')  # the states' dtype as the cell gives them
    zeros = lambda channels: torch.zeros(1, channels, h, w, device=device, dtype=dtype).to(memory_format=memory)
    state = {'s': zeros(c), 'mid': zeros(2 * c), 'prior': None,
             'hs': collections.deque([zeros(5 * c)] * window, maxlen=window)}
    real_prior = model.cell.prior
    run = {name: torch.compile(getattr(model, name)) if mode.compile else getattr(model, name)
           for name in ('cell', 'fusion', 'recons', 'skip')}
    wait = torch.cuda.synchronize if device.type == 'cuda' else lambda: None

    class GivenPrior(torch.nn.Module):
        def forward(self, x):
            return state['prior']

    @torch.no_grad()
    def cell(t):
        with mode.autocast_context(device):
            out, state['s'], state['mid'] = run['cell'](xs[t], state['s'], state['mid'])
        state['hs'].append(out)
        wait()

    @torch.no_grad()
    def reconstruct(t):
        with mode.autocast_context(device):
            out = run['recons'](run['fusion'](list(state['hs'])))
            out + run['skip'](xs[max(t - past, 0)])
        wait()

    @torch.no_grad()
    def prior(t):
        with mode.autocast_context(device):
            state['prior'] = real_prior(xs[t])
        wait()

    def rest_of_cell(t):
        model.cell.prior = GivenPrior()
        try:
            cell(t)
        finally:
            model.cell.prior = real_prior

    return Side(cell, reconstruct, dict(zip(PARTS, (prior, rest_of_cell, reconstruct))))


def _time_original(path: str, variant: str, frames: np.ndarray, repeats: int) -> dict:
    return time_sides({'original': original_side(path, variant, frames)}, len(frames), repeats)


def time_original_apart(path: str, variant: str, frames: np.ndarray, repeats: int) -> dict:
    """`time_sides` of the original in a fresh process with no XLA client: beside one (without
    the project's XLA flags) the original ran ~5x slower on a 2-core CPU."""
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_time_original, path, variant, frames, repeats).result()


def _row(size: str, side: str, dtype: str, timings: dict, gmacs: float, threads: int) -> dict:
    return {'size': size, 'side': side, 'dtype': dtype, 's_per_frame': timings['s_per_frame'],
            'fps': 1.0 / timings['s_per_frame'], 'gmac_per_s': gmacs / timings['s_per_frame'],
            **{k: v for k, v in timings.items() if k != 's_per_frame'}, 'threads': threads}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--sizes', default='640x480,1280x720')
    parser.add_argument('--dtypes', default='float32')
    parser.add_argument('--frames', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--original', help='outer MMP-RNN/ folder of the original, to time it too')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(','):
        width, height = (int(v) for v in size.split('x'))
        frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), np.uint8)
        gmacs = network_stats(args.variant, height, width)['gmacs']
        for dtype in args.dtypes.split(','):
            timings = time_sides({'ours': our_side(args.variant, frames, dtype)}, args.frames, args.repeats)
            if args.original and dtype == 'float32':
                timings |= time_original_apart(args.original, args.variant, frames, args.repeats)
            rows.append(_row(size, 'ours', dtype, timings['ours'], gmacs, os.cpu_count()))
            if 'original' in timings:
                original = _row(size, 'original', 'float32', timings['original'], gmacs, TORCH_THREADS)
                rows[-1]['speedup'] = original['s_per_frame'] / rows[-1]['s_per_frame']
                rows.append(original)
    report('infer_speed', rows, args.json, variant=args.variant, frames=args.frames,
           repeats=args.repeats, work_per_side=work(args.frames, args.repeats),
           xla_flags=os.environ.get('XLA_FLAGS', ''), statistic='median over timed frames')


if __name__ == '__main__':
    main()
