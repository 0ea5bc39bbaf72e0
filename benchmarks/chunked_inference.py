"""Seconds per frame of streaming inference in chunks of K frames (`StreamingDeblurrer(chunk_frames=K)`).

    python -m benchmarks.chunked_inference [--variant A9B10C18F8] [--size 640x480] \\
        [--chunks 1,4,8] [--frames 16] [--repeats 2]

Every K deblurs the same `--frames` random 8-bit frames from first to last (`ends='replicate'`:
one cell step and one reconstruction per frame; with a frame count that every K divides no
chunk or group of outputs is filled up with repeats). After one warm-up pass per K
(compilation), the `--repeats` timed passes go round the Ks in turn, so that a change in the
machine's load touches every K alike. Seconds per frame: the median pass over the frame count.
The load average is recorded before and after the timed passes.
"""
import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report
from mmp_jax.infer import StreamingDeblurrer
from mmp_jax.models.variants import model_from_variant


def time_pass(deblurrer: StreamingDeblurrer, frames: np.ndarray) -> float:
    """Wall seconds of one pass over `frames`, every output fetched to the host."""
    start = time.perf_counter()
    count = sum(1 for _ in deblurrer(iter(frames)))
    assert count == len(frames)
    return time.perf_counter() - start


def time_chunks(deblurrers: dict[int, StreamingDeblurrer], frames: np.ndarray, repeats: int) -> dict[int, list[float]]:
    """Seconds of each timed pass per K: a warm-up pass each, then `repeats` rounds over the Ks."""
    for deblurrer in deblurrers.values():
        time_pass(deblurrer, frames[:deblurrer.chunk_frames])
    passes = {chunk: [] for chunk in deblurrers}
    for _ in range(repeats):
        for chunk, deblurrer in deblurrers.items():
            passes[chunk].append(time_pass(deblurrer, frames))
    return passes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='640x480')
    parser.add_argument('--chunks', default='1,4,8')
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    model = model_from_variant(args.variant)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), np.uint8)
    deblurrers = {int(k): StreamingDeblurrer(model, variables, chunk_frames=int(k)) for k in args.chunks.split(',')}
    load_before = os.getloadavg()
    passes = time_chunks(deblurrers, frames, args.repeats)
    load_after = os.getloadavg()
    rows = [{'chunk_frames': chunk, 's_per_frame': statistics.median(seconds) / args.frames,
             'fps': args.frames / statistics.median(seconds), 'pass_s': [round(s, 3) for s in seconds]}
            for chunk, seconds in passes.items()]
    for row in rows:
        row['vs_first'] = rows[0]['s_per_frame'] / row['s_per_frame']
    report('chunked_inference', rows, args.json, variant=args.variant, size=args.size, frames=args.frames,
           repeats=args.repeats, load_before=load_before, load_after=load_after,
           xla_flags=os.environ.get('XLA_FLAGS', ''), statistic='median pass / frames')


if __name__ == '__main__':
    main()
