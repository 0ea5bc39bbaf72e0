"""Frames per second of streaming inference (`mmp_jax.infer.StreamingDeblurrer`).

    python -m benchmarks.infer_speed [--variant A9B10C18F8] [--sizes 640x480,1280x720] \\
        [--dtypes float32,bfloat16] [--frames 6] [--repeats 3] [--original PATH/MMP-RNN]

Random weights, random 8-bit frames. For each size and dtype: one warm-up pass (compilation),
then `--repeats` passes over `--frames` frames; fps is frames / median pass time, every
frame through one cell step and one reconstruction. With `--original` (the outer MMP-RNN/
folder of sollynoay/MMP-RNN; needs torch, thop, cv2, PIL) the original PyTorch model is timed
in the same run on the same frames: its forward over frames + 4 frames gives `frames` outputs.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import median_seconds, report
from mmp_jax.infer import StreamingDeblurrer
from mmp_jax.models.variants import model_from_variant, parse_variant


def time_ours(variant: str, frames: np.ndarray, dtype: str, repeats: int) -> float:
    model = model_from_variant(variant)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    deblurrer = StreamingDeblurrer(model, variables, dtype=dtype)
    return median_seconds(lambda: [f.output for f in deblurrer(iter(frames))], repeats)


def time_original(path: str, variant: str, frames: np.ndarray, repeats: int) -> float:
    import torch  # noqa: PLC0415 (only with --original)

    from tests.original_reference import build_original, import_original  # noqa: PLC0415
    fields = parse_variant(variant)
    model = build_original(*import_original(path), n_features=fields.n_features,
                           n_blocks_a=fields.n_blocks_a, n_blocks_b=fields.n_blocks_b)
    padded = np.concatenate([frames[:2], frames, frames[-2:]])  # T + 4 frames -> T outputs
    x = (torch.from_numpy(padded).float() - 127.5) / 255.0
    x = x.permute(0, 3, 1, 2)[None].contiguous()

    def run():
        with torch.no_grad():
            model(x)
    return median_seconds(run, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--sizes', default='640x480,1280x720')
    parser.add_argument('--dtypes', default='float32')
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--original', help='outer MMP-RNN/ folder of the original, to time it too')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(','):
        width, height = (int(v) for v in size.split('x'))
        frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), np.uint8)
        original_s = (time_original(args.original, args.variant, frames, args.repeats)
                      if args.original else None)
        for dtype in args.dtypes.split(','):
            seconds = time_ours(args.variant, frames, dtype, args.repeats)
            row = {'size': size, 'dtype': dtype, 'fps': args.frames / seconds,
                   's_per_frame': seconds / args.frames}
            if original_s is not None:
                row.update(original_fps=args.frames / original_s, speedup=original_s / seconds)
            rows.append(row)
    report('infer_speed', rows, args.json, variant=args.variant, frames=args.frames,
           repeats=args.repeats, statistic='median of repeats')


if __name__ == '__main__':
    main()
