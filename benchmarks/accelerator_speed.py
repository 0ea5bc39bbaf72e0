"""Inference frames per second and training steps per second on the default device (an accelerator
where there is one): the issue's accelerator goals in one script.

    python -m benchmarks.accelerator_speed [--variant A9B10C18F8] [--size 1280x720] [--frames 24] \\
        [--dtypes float32,bfloat16] [--chunks 1,8] [--videos 1] \\
        [--train-batch 8x10x256x256] [--train-settings float32:none,bfloat16:full] [--steps 5]

Random weights. Inference: `mmp_jax.infer.StreamingDeblurrer` (one cell step and one reconstruction
per frame, outputs fetched to the host) over `--frames` random frames of `--size`, in chunks of K
frames (`chunk_frames`, each of `--chunks`), `--videos` videos in lockstep as one batch (`.batch`),
after a warm-up pass that compiles; fps = output frames (all videos) / seconds. Training: the
project's jitted stage-2 step at the paper's batch (`B x T x P x P`), median of `--steps` steps after
the compiling one, for each `dtype:remat` of `--train-settings` (`remat` 'full' runs the recurrence
as a loop, `scan_unroll` False, as it needs); frames/s counts the `B x T` input frames of a step.
The JSON is rewritten after every row, so a run cut short keeps what it measured. On CPU, tiny
sizes make it a smoke test (tests/test_benchmarks.py).
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report
from benchmarks.train_step_speed import random_batch, step_seconds
from mmp_jax.infer import StreamingDeblurrer
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_variant


def inference_fps(model: MMPRNN, frames: np.ndarray, chunk_frames: int) -> float:
    """Output frames per second of streaming `frames` (uint8 `[T, B, H, W, 3]`: B videos in
    lockstep) through `model` in chunks of `chunk_frames`, compiled first."""
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    deblurrer = StreamingDeblurrer(model, variables, chunk_frames=chunk_frames)
    list(deblurrer.batch(iter(frames[:chunk_frames])))  # compiles the chunk and the reconstruction
    start = time.perf_counter()
    count = sum(len(outputs) for outputs in deblurrer.batch(iter(frames)))
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='1280x720', help='inference frame size, W x H')
    parser.add_argument('--frames', type=int, default=24, help='frames per video per inference measurement')
    parser.add_argument('--dtypes', default='float32,bfloat16', help='inference compute dtypes (empty: no inference)')
    parser.add_argument('--chunks', default='1,8', help='inference chunk sizes K')
    parser.add_argument('--videos', type=int, default=1, help='videos deblurred in lockstep as one batch')
    parser.add_argument('--train-batch', default='8x10x256x256', help='B x T x P x P')
    parser.add_argument('--train-settings', default='float32:none,bfloat16:full',
                        help='dtype:remat, ... (empty: no training)')
    parser.add_argument('--steps', type=int, default=5, help='timed training steps')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split('x'))
    shape = (args.frames, args.videos, height, width, 3)
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    train_shape = tuple(int(n) for n in args.train_batch.split('x')) + (3,)
    meta = dict(variant=args.variant, device=str(jax.devices()[0]), frames=args.frames, videos=args.videos,
                steps=args.steps)
    rows = []
    for dtype in filter(None, args.dtypes.split(',')):
        for chunk in (int(k) for k in args.chunks.split(',')):
            fps = inference_fps(model_from_variant(args.variant, dtype=dtype), frames, chunk)
            rows.append({'measure': 'inference', 'dtype': dtype, 'chunk': chunk, 'videos': args.videos,
                         'shape': args.size, 'fps': fps, 's_per_frame': 1 / fps})
            report('accelerator_speed', rows, args.json, **meta)
    for setting in filter(None, args.train_settings.split(',')):
        dtype, remat = setting.split(':')
        model = model_from_variant(args.variant, dtype=dtype, remat=remat, scan_unroll=remat == 'none')
        start = time.perf_counter()
        seconds = step_seconds(model, random_batch(train_shape), args.steps)
        rows.append({'measure': 'training', 'dtype': dtype, 'remat': remat, 'shape': args.train_batch,
                     'steps_per_s': 1 / seconds, 'frames_per_s': train_shape[0] * train_shape[1] / seconds,
                     'total_s': time.perf_counter() - start})
        report('accelerator_speed', rows, args.json, **meta)


if __name__ == '__main__':
    main()
