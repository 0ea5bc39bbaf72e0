"""Seconds per stage-2 training step, the recurrence as a loop (`scan_unroll=False`) and unrolled
(`scan_unroll=True`, the default).

    python -m benchmarks.train_step_speed [--variants A2B2C8F5,A9B10C18F8] [--batch 4] \\
        [--frames 10] [--patch 32] [--repeats 5]

Random weights and frames; the project's jitted step (`mmp_jax.train_step`, Charbonnier + 0.5
gradient loss, Adam with cosine annealing) on one device. Per variant: median seconds of
`--repeats` steps after the compiling one, for each unroll setting, and their ratio.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import median_seconds, report
from mmp_jax import sharding, stages, train_step
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_variant

LOSS = {'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 0.0}


def jitted_step(model: MMPRNN, batch: dict[str, np.ndarray], checked: bool = False, clip_norm: float = 0.0):
    """(step, state, batch on the devices): the project's jitted stage-2 step of `model` (with the
    training loop's soundness check where `checked`, `train_step.checked`; gradients clipped at
    global norm `clip_norm` where positive), its fresh state and `batch` (`blurry`, `sharp`
    [B, T, P, P, 3]) placed as the step wants them."""
    mesh = sharding.make_mesh()
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 16, 16, 3)))
    optimizer = stages.get('mmprnn').make_optimizer(5e-4, 1000, clip_norm)
    state = sharding.replicate(stages.get('mmprnn').create_state(variables, optimizer), mesh)
    step = stages.get('mmprnn').make_step(model, optimizer, LOSS)
    step = train_step.jit_step(train_step.checked(step) if checked else step,
                               sharding.replicated(mesh), sharding.batch_sharding(mesh))
    return step, state, sharding.shard_batch(batch, mesh)


def random_batch(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Seeded uniform `blurry` and `sharp` frames `[B, T, P, P, 3]`."""
    rng = np.random.default_rng(0)
    return {'blurry': rng.random(shape, np.float32), 'sharp': rng.random(shape, np.float32)}


def step_seconds(model: MMPRNN, batch: dict[str, np.ndarray], repeats: int, clip_norm: float = 0.0) -> float:
    """Median seconds of one training step of `model` on `batch` (`blurry`, `sharp` [B, T, P, P, 3]),
    gradients clipped as `jitted_step` clips them."""
    step, state, batch = jitted_step(model, batch, clip_norm=clip_norm)
    state = [state]

    def run():
        state[0], metrics = step(state[0], batch)
        jax.block_until_ready(metrics)
    return median_seconds(run, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='A2B2C8F5,A9B10C18F8')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--patch', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    shape = (args.batch, args.frames, args.patch, args.patch, 3)
    batch = random_batch(shape)
    rows = []
    for variant in args.variants.split(','):
        looped = step_seconds(model_from_variant(variant, scan_unroll=False), batch, args.repeats)
        unrolled = step_seconds(model_from_variant(variant, scan_unroll=True), batch, args.repeats)
        rows.append({'variant': variant, 'batch': 'x'.join(map(str, shape[:4])), 'loop_s': looped,
                     'unrolled_s': unrolled, 'speedup': looped / unrolled})
    report('train_step_speed', rows, args.json, repeats=args.repeats, statistic='median of repeats')


if __name__ == '__main__':
    main()
