"""Seconds per stage-2 training step: the host waiting for every step's metrics (the old loop's
`jax.device_get` each step) against waiting only at the log cadence (`mmp_jax/train.py` today),
and, at the log cadence, batches read from records each step with `--prefetch` depths of them
placed on the devices ahead by a thread (`config.data.device_prefetch`, 0 = off).

    python -m benchmarks.train_loop_sync [--variant A1B1C4F5] [--batch 2] [--frames 6] [--patch 32] \\
        [--steps 20] [--log-every 10] [--repeats 5] [--prefetch 0,2] [--frame 128]

The training loop's jitted step (`train_step.checked`: metrics and the soundness flag, the old
state donated) of a random-weight model. Sync rows: random frames already on the device, so only
the host's waits differ. Prefetch rows: the numpy reader (`input_pipeline.numpy_train_batches`,
seed 0, steps 0 .. `--steps` - 1 every repeat) of records of random `--frame` x `--frame` frames
(one sequence of 24, written to a temporary folder first), each batch `[B, T, P, P, 3]` placed with
`sharding.shard_batch` through `prefetch.prefetched` (the thread's head start inside the timing).
Each repeat runs `--steps` steps per mode, the modes interleaved; per mode the median over
repeats of the seconds per step (first batch pulled to the final `block_until_ready`).
"""
import argparse
import os
import contextlib
import itertools
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable

import jax

from benchmarks.records_reader import write_records
from benchmarks.report import report
from benchmarks.train_step_speed import jitted_step, random_batch
from mmp_jax import sharding
from mmp_jax.data import input_pipeline, prefetch
from mmp_jax.models.variants import model_from_variant


def loop_seconds(step, state, batches: Callable, steps: int, sync_every: int):
    """(seconds per step, final state) of `steps` steps on the device batches of the context
    `batches()`, the metrics fetched every `sync_every` steps."""
    start = time.perf_counter()
    with batches() as feed:
        for i in range(1, steps + 1):
            state, (metrics, sound) = step(state, next(feed))
            if i % sync_every == 0:
                jax.device_get((metrics, sound))
        jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps, state


def read_batches(windows: input_pipeline.Windows, patch: int, batch: int, steps: int, depth: int) -> Callable:
    """The context of `steps` batches (`blurry`, `sharp` `[B, T, P, P, 3]`, steps 0 ..) of the
    numpy reader on the devices, `depth` of them prefetched."""
    mesh = sharding.make_mesh()
    place = lambda host: sharding.shard_batch({k: host[k] for k in ('blurry', 'sharp')}, mesh)
    return lambda: prefetch.prefetched(
        itertools.islice(input_pipeline.numpy_train_batches(windows, patch, batch, seed=0), steps), place, depth)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A1B1C4F5')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--patch', type=int, default=32)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--log-every', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--prefetch', default='0,2', help="depths for the rows reading records ('' = no such rows)")
    parser.add_argument('--frame', type=int, default=128, help='side of the records\' frames, pixels')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    shape = (args.batch, args.frames, args.patch, args.patch, 3)
    step, state, batch = jitted_step(model_from_variant(args.variant), random_batch(shape), checked=True)
    on_device = lambda: contextlib.nullcontext(itertools.repeat(batch))
    _, state = loop_seconds(step, state, on_device, 2, 1)  # compiles
    modes = {('every step', 'on the device'): (on_device, 1),
             (f'every {args.log_every} steps', 'on the device'): (on_device, args.log_every)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.prefetch:
            write_records(pathlib.Path(tmp), 1e-9, args.frame)  # one sequence of 24 frames
            windows = input_pipeline.load_windows(input_pipeline.record_files(tmp), args.frames)
            for depth in map(int, args.prefetch.split(',')):
                modes[(f'every {args.log_every} steps', f'read, prefetch {depth}')] = (
                    read_batches(windows, args.patch, args.batch, args.steps, depth), args.log_every)
        times = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, (batches, every) in modes.items():
                seconds, state = loop_seconds(step, state, batches, args.steps, every)
                times[mode].append(seconds)
    per_step = {mode: statistics.median(values) for mode, values in times.items()}
    base = per_step[('every step', 'on the device')]
    unprefetched = next((s for (_, b), s in per_step.items() if b == 'read, prefetch 0'), None)
    rows = [{'sync': sync, 'batches': batches, 's_per_step': s, 'steps_per_s': 1 / s, 'vs_every_step': base / s,
             **({'vs_prefetch_0': unprefetched / s} if unprefetched and batches.startswith('read') else {})}
            for (sync, batches), s in per_step.items()]
    report('train_loop_sync', rows, args.json, variant=args.variant, batch='x'.join(map(str, shape[:4])),
           steps=args.steps, repeats=args.repeats, frame=args.frame, load_average=list(os.getloadavg()),
           statistic='median over repeats of seconds per step')


if __name__ == '__main__':
    main()
