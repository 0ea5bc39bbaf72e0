"""Does the carried hidden state drift over long videos? Carried state vs `--reset-every 20`.

    python -m benchmarks.state_drift --checkpoint demo_out/model [--frames 3000] [--block 100]

A long synthetic video, made frame by frame in constant memory: a camera pans over a photo of
scikit-image along a slow Lissajous path (at most `--max-speed` px per sharp frame, so it never
leaves the photo and never stops); each blurry frame averages `--window` sharp frames through a
gamma 2.2 response (Eq. 1), its target the centre one. The model deblurs it twice, with the
state carried through all frames and reset every `--reset-every` frames as the original's test
does (`mmp_jax.infer.deblur_in_chunks`), both with replicated ends. The table: PSNR (8 bits,
truncated as the protocol) per block of `--block` frames for both, and the blurry input's.
Give a trained model (`make demo` writes `demo_out/model`, trained on scenes like these);
random weights say nothing about drift.
"""
import argparse
from collections.abc import Iterator

import cv2
import numpy as np
import skimage.data

from benchmarks.report import report
from mmp_jax.data.blur import gamma_response, synthesize_blur
from mmp_jax import metrics
from mmp_jax.checkpoint import load_model
from mmp_jax.infer import StreamingDeblurrer, deblur_in_chunks
from mmp_jax.pixels import to_uint8


def long_video(frames: int, height: int, width: int, window: int, max_speed: float,
               photo: str = 'coffee') -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(blurry, sharp) uint8 `[H, W, 3]` pairs, one at a time (see the module doc)."""
    image = getattr(skimage.data, photo)()[..., :3].astype(np.float32)
    span = np.array([image.shape[1] - width - 2, image.shape[0] - height - 2], np.float64) / 2
    # x(t) = span (1 + sin(a t)), speed <= span * a: a chosen so that the speed stays <= max_speed
    rates = max_speed / span / np.array([1.0, 1.3])
    response = gamma_response()

    def sharp(t: int) -> np.ndarray:
        x, y = span * (1 + np.sin(rates * t))
        matrix = np.float32([[1, 0, -x], [0, 1, -y]])
        view = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
        return np.clip(np.round(view), 0, 255).astype(np.uint8)

    for index in range(frames):
        shots = np.stack([sharp(index * window + k) for k in range(window)])
        yield synthesize_blur(shots, response), shots[window // 2]


def block_psnr(outputs: Iterator, targets: dict[int, np.ndarray], block: int) -> list[float]:
    """Mean PSNR per block of `block` frames of the deblurred `outputs` against `targets`."""
    scores: dict[int, list[float]] = {}
    for frame in outputs:
        scores.setdefault(frame.index // block, []).append(
            metrics.psnr(to_uint8(frame.output, 'truncate'), targets[frame.index]))
    return [float(np.mean(scores[b])) for b in sorted(scores)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='a model folder (demo_out/model after make demo)')
    parser.add_argument('--frames', type=int, default=3000)
    parser.add_argument('--block', type=int, default=100)
    parser.add_argument('--reset-every', type=int, default=20)
    parser.add_argument('--size', default='96x64', help='WIDTHxHEIGHT')
    parser.add_argument('--window', type=int, default=9, help='sharp frames per blurry frame')
    parser.add_argument('--max-speed', type=float, default=1.0, help='px per sharp frame')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    model, variables, config = load_model(args.checkpoint)
    video = lambda: long_video(args.frames, height, width, args.window, args.max_speed)
    targets = {t: sharp for t, (_, sharp) in enumerate(video())}
    blurry = lambda: (b for b, _ in video())
    deblurrer = StreamingDeblurrer(model, variables)
    carried = block_psnr(deblurrer(blurry()), targets, args.block)
    reset = block_psnr(deblur_in_chunks(deblurrer, blurry(), args.reset_every), targets, args.block)
    inputs = [float(np.mean([metrics.psnr(b, targets[t]) for t, b in enumerate(blurry())
                             if t // args.block == k])) for k in range(len(carried))]
    rows = [{'frames': f'{k * args.block}..{min((k + 1) * args.block, args.frames) - 1}',
             'psnr_carried': c, f'psnr_reset_{args.reset_every}': r, 'carried_minus_reset': c - r,
             'psnr_blurry': b} for k, (c, r, b) in enumerate(zip(carried, reset, inputs))]
    report('state_drift', rows, args.json, checkpoint=args.checkpoint, variant=config['variant'],
           frames=args.frames, size=args.size, window=args.window, max_speed=args.max_speed)


if __name__ == '__main__':
    main()
