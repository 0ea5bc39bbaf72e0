"""Inference frames per second and training steps per second on the default device (an accelerator
where there is one): the issue's accelerator goals in one script.

    python -m benchmarks.accelerator_speed [--variant A9B10C18F8] [--size 1280x720] [--frames 20] \\
        [--dtypes float32,bfloat16] [--train-batch 8x10x256x256] [--steps 5]

Random weights. Inference: `mmp_jax.infer.StreamingDeblurrer` (one cell step and one reconstruction
per frame, outputs fetched to the host) over `--frames` random frames of `--size` after a warm-up
pass that compiles; fps = frames / seconds. Training: the project's jitted stage-2 step at the
paper's batch (`B x T x P x P`), median of `--steps` steps after the compiling one; frames/s counts
the `B x T` input frames of a step. Each for every `--dtypes` entry (`MMPRNN.dtype`, float32
parameters). On CPU, tiny sizes make it a smoke test (tests/test_benchmarks.py).
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


def inference_fps(model: MMPRNN, frames: np.ndarray) -> float:
    """Frames per second of streaming `frames` (uint8 `[T, H, W, 3]`) through `model`, compiled first."""
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    deblurrer = StreamingDeblurrer(model, variables)
    list(deblurrer(iter(frames[:1])))  # compiles the cell and the reconstruction for this size
    start = time.perf_counter()
    count = sum(1 for _ in deblurrer(iter(frames)))
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='1280x720', help='inference frame size, W x H')
    parser.add_argument('--frames', type=int, default=20, help='frames streamed per inference measurement')
    parser.add_argument('--dtypes', default='float32,bfloat16')
    parser.add_argument('--train-batch', default='8x10x256x256', help='B x T x P x P')
    parser.add_argument('--steps', type=int, default=5, help='timed training steps')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split('x'))
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    train_shape = tuple(int(n) for n in args.train_batch.split('x')) + (3,)
    rows = []
    for dtype in args.dtypes.split(','):
        model = model_from_variant(args.variant, dtype=dtype)
        fps = inference_fps(model, frames)
        rows.append({'measure': 'inference', 'dtype': dtype, 'shape': args.size, 'fps': fps,
                     's_per_frame': 1 / fps})
        print(rows[-1], flush=True)
    for dtype in args.dtypes.split(','):
        seconds = step_seconds(model_from_variant(args.variant, dtype=dtype), random_batch(train_shape), args.steps)
        rows.append({'measure': 'training', 'dtype': dtype, 'shape': args.train_batch,
                     'steps_per_s': 1 / seconds, 'frames_per_s': train_shape[0] * train_shape[1] / seconds})
        print(rows[-1], flush=True)
    report('accelerator_speed', rows, args.json, variant=args.variant, device=str(jax.devices()[0]),
           frames=args.frames, steps=args.steps)


if __name__ == '__main__':
    main()
