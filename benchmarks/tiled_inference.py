"""Tiled inference (`tools.deblur --tile`): how close to the untiled output, and how much memory.

    python -m benchmarks.tiled_inference [--variant A3B4C16F5] [--size 3840x2160] [--tile 512]
        [--overlap 32] [--frames 2] [--fidelity-size 640x480] [--fidelity-frames 7]

Fidelity: random-weight `--variant` on `--fidelity-frames` synthetic frames (a textured image
panning) of `--fidelity-size`, untiled vs tiles of `--tile` px with `--overlap`: the largest
and mean absolute difference of the outputs (in [0, 1] units) over the whole frame and away
from the seams (pixels more than `--overlap` from every tile border inside the frame).
Memory: `python -m tools.deblur` on `--frames` frames of `--size`, tiled and untiled, each in
a fresh process, its peak RSS (VmHWM, `infer_memory.peak_rss_mb`); `--size 3840x2160` is 4K.
"""
import argparse
import pathlib
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.infer_memory import peak_rss_mb, write_clip
from benchmarks.report import report
from mmp_jax.data.sources import read_all
from mmp_jax.checkpoint import save_model
from mmp_jax.infer import StreamingDeblurrer, TiledDeblurrer, tile_starts
from mmp_jax.models.variants import model_from_variant


def away_from_seams(height: int, width: int, tile: int, overlap: int) -> np.ndarray:
    """bool `[H, W]`: pixels more than `overlap` from every tile border inside the frame."""
    mask = np.ones((height, width), bool)
    for axis, length in ((0, height), (1, width)):
        size = min(tile, length)
        for start in tile_starts(length, size, overlap):
            for border in (start, start + size):
                if 0 < border < length:
                    index = [slice(None), slice(None)]
                    index[axis] = slice(max(border - overlap, 0), border + overlap)
                    mask[tuple(index)] = False
    return mask


def fidelity(model, variables, frames: np.ndarray, tile: int, overlap: int) -> dict:
    deblurrer = StreamingDeblurrer(model, variables, 'drop')
    whole = np.stack([f.output for f in deblurrer(iter(frames))])
    tiled = np.stack([f.output for f in TiledDeblurrer(deblurrer, (tile, tile), overlap)(iter(frames))])
    difference = np.abs(tiled - whole)
    interior = difference[:, away_from_seams(*frames.shape[1:3], tile, overlap)]
    return {'max_diff': float(difference.max()), 'mean_diff': float(difference.mean()),
            'max_diff_away_from_seams': float(interior.max()) if interior.size else None,
            'mean_diff_away_from_seams': float(interior.mean()) if interior.size else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A3B4C16F5')
    parser.add_argument('--size', default='3840x2160')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--frames', type=int, default=2)
    parser.add_argument('--fidelity-size', default='640x480')
    parser.add_argument('--fidelity-frames', type=int, default=7)
    parser.add_argument('--skip-untiled', action='store_true', help='measure the tiled memory only')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    model = model_from_variant(args.variant)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        width, height = (int(v) for v in args.fidelity_size.split('x'))
        write_clip(tmp / 'fidelity', args.fidelity_frames, width, height)
        rows.append({'measure': 'fidelity', 'size': args.fidelity_size, 'frames': args.fidelity_frames,
                     **fidelity(model, variables, read_all(tmp / 'fidelity'), args.tile, args.overlap)})
        save_model(tmp / 'ckpt', variables, {'variant': args.variant})
        width, height = (int(v) for v in args.size.split('x'))
        write_clip(tmp / 'big', args.frames, width, height)
        runs = [('tiled', ['--tile', str(args.tile), str(args.tile), '--tile-overlap', str(args.overlap)])]
        if not args.skip_untiled:
            runs.append(('untiled', []))
        for label, options in runs:
            rss, seconds = peak_rss_mb([sys.executable, '-m', 'tools.deblur', '--quiet', '--checkpoint',
                                        str(tmp / 'ckpt'), '--input', str(tmp / 'big'),
                                        '--output', str(tmp / f'{label}.mp4'), *options])
            rows.append({'measure': f'memory {label}', 'size': args.size, 'frames': args.frames,
                         'peak_rss_mb': rss, 'seconds': seconds})
    report('tiled_inference', rows, args.json, variant=args.variant, tile=args.tile, overlap=args.overlap)


if __name__ == '__main__':
    main()
