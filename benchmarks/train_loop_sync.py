"""Seconds per stage-2 training step when the host waits for every step's metrics (the old loop's
`jax.device_get` each step) against waiting only at the log cadence (`mmp_jax/train.py` today).

    python -m benchmarks.train_loop_sync [--variant A1B1C4F5] [--batch 2] [--frames 6] [--patch 32] \\
        [--steps 20] [--log-every 10] [--repeats 5]

The training loop's jitted step (`train_step.checked`: metrics and the soundness flag, the old
state donated) of a random-weight model on random frames already on the device, so only the host's
waits differ. Each repeat runs `--steps` steps per mode, the modes interleaved; per mode the median
over repeats of the seconds per step (dispatch to the final `block_until_ready`).
"""
import argparse
import statistics
import time

import jax

from benchmarks.report import report
from benchmarks.train_step_speed import jitted_step, random_batch
from mmp_jax.models.variants import model_from_variant


def loop_seconds(step, state, batch: dict, steps: int, sync_every: int):
    """(seconds per step, final state) of `steps` steps, the metrics fetched every `sync_every` steps."""
    start = time.perf_counter()
    for i in range(1, steps + 1):
        state, (metrics, sound) = step(state, batch)
        if i % sync_every == 0:
            jax.device_get((metrics, sound))
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps, state


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A1B1C4F5')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--patch', type=int, default=32)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--log-every', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    shape = (args.batch, args.frames, args.patch, args.patch, 3)
    batch = random_batch(shape)
    step, state, batch = jitted_step(model_from_variant(args.variant), batch, checked=True)
    _, state = loop_seconds(step, state, batch, 2, 1)  # compiles
    modes = {'every step': 1, f'every {args.log_every} steps': args.log_every}
    times = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode, every in modes.items():
            seconds, state = loop_seconds(step, state, batch, args.steps, every)
            times[mode].append(seconds)
    per_step = {mode: statistics.median(values) for mode, values in times.items()}
    base = per_step['every step']
    rows = [{'sync': mode, 's_per_step': s, 'steps_per_s': 1 / s, 'vs_every_step': base / s}
            for mode, s in per_step.items()]
    report('train_loop_sync', rows, args.json, variant=args.variant, batch='x'.join(map(str, shape[:4])),
           steps=args.steps, repeats=args.repeats, statistic='median over repeats of seconds per step')


if __name__ == '__main__':
    main()
