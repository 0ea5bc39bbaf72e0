"""Deblurs a video or a folder of frames with a converted or trained checkpoint.

    python -m tools.deblur --checkpoint CKPT --input IN --output OUT [--overwrite] \\
        [--prior PRIOR_OUT] [--side-by-side] [--dtype bfloat16] [--ends replicate|drop] \\
        [--reset-every 20] [--tile 512 512 --tile-overlap 32] [--fps 30] [--allow-truncated]

CKPT: a folder from `tools.convert_checkpoint`, or a training workdir (its `model/`). IN: a
video file OpenCV reads, or a folder of frames. OUT (and PRIOR_OUT): a video file (.mp4, .mov,
.mkv, .avi; the fps of IN, or `--fps` for a frame folder) or, for any other name, a folder of
PNGs named as the input frames (a video's frames by their index). Frames stream through the
network one at a time, so memory does not grow with the video. See `mmp_jax.infer` for how the
first and last two frames are handled (`--ends`).

Nothing but OUT and PRIOR_OUT is written: they must differ from IN and from each other, an
existing one is refused unless `--overwrite` (a folder then keeps everything but its frames),
missing parent folders are created, and an interrupted run (an error, Ctrl-C, SIGTERM) leaves
nothing behind. A video that cannot be decoded to the end is an error unless `--allow-truncated`.
"""
import argparse
import signal
import sys

from data_pipeline.sources import SourceError, open_frames
from mmp_jax.checkpoint import CheckpointError, load_model
from mmp_jax.frame_writers import OutputError
from mmp_jax.infer import DTYPES, ENDS, deblur_file


class Terminated(Exception):
    """SIGTERM arrived: unwinds the writers so that they remove their temporaries."""


def _raise_terminated(*_):
    raise Terminated()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True,
                        help='folder from tools.convert_checkpoint, or a training workdir')
    parser.add_argument('--input', required=True, help='video file or folder of frames')
    parser.add_argument('--output', required=True, help='video file (.mp4, ...) or folder of PNGs')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output (a folder: only its frames)')
    parser.add_argument('--prior', help='also write the motion magnitude prior as a heat map here')
    parser.add_argument('--side-by-side', action='store_true', help='write input | output')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='float32')
    parser.add_argument('--ends', choices=ENDS, default='replicate',
                        help='replicate: every frame gets an output; drop: frames 2..T-3 only, as the original')
    parser.add_argument('--reset-every', type=int, default=0, metavar='N',
                        help="reset the hidden state as the original's test: chunks of N frames overlapping "
                             'by 4 (its default: 20); 0 (default) carries the state through the whole video')
    parser.add_argument('--tile', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'),
                        help='deblur in tiles of this size (each with its own state), blended over the '
                             'overlap: memory follows the tile, not the frame (for 4K on small devices)')
    parser.add_argument('--tile-overlap', type=int, default=32, metavar='PIXELS',
                        help='pixels neighbouring tiles share (default 32)')
    parser.add_argument('--fps', type=float, default=25.0, help='frame rate of a frame folder (video out)')
    parser.add_argument('--allow-truncated', action='store_true',
                        help='a video that ends before its stated frame count: keep the frames that decoded')
    parser.add_argument('--variant', help='refuse a checkpoint of another variant')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.fps <= 0:
        parser.error(f'--fps must be positive, got {args.fps}')
    if args.tile is not None and (min(args.tile) < 16 or not 0 <= args.tile_overlap < min(args.tile)):
        parser.error(f'--tile {args.tile[0]} {args.tile[1]}: tiles need at least 16 pixels a side and an '
                     f'overlap of 0 .. {min(args.tile) - 1} (got --tile-overlap {args.tile_overlap})')
    if args.reset_every < 0:
        parser.error(f'--reset-every must be 0 or positive, got {args.reset_every}')
    return args


def run(args: argparse.Namespace) -> int:
    """Deblurs as `args` say; returns the number of frames written."""
    model, variables, config = load_model(args.checkpoint)
    if args.variant and args.variant != config['variant']:
        raise CheckpointError(f'{args.checkpoint}: holds {config["variant"]}, --variant says {args.variant}')
    source = open_frames(args.input, folder_fps=args.fps, allow_truncated=args.allow_truncated)
    return deblur_file(model, variables, source, args.output, args.prior, args.side_by_side,
                       args.ends, args.dtype, progress=not args.quiet, overwrite=args.overwrite,
                       reset_every=args.reset_every, tile=tuple(args.tile) if args.tile else None,
                       tile_overlap=args.tile_overlap)


def main(argv=None) -> int:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        written = run(args)
    except (SourceError, CheckpointError, OutputError, ValueError) as error:
        print(f'deblur: {error}', file=sys.stderr)
        return 2
    except OSError as error:  # permissions, a full disk: one line, the path and the problem
        print(f'deblur: {error.filename or args.output}: {error.strerror or error}', file=sys.stderr)
        return 2
    except Terminated:
        print('deblur: stopped by SIGTERM; nothing was written', file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print('deblur: stopped by Ctrl-C; nothing was written', file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f'wrote {written} frames to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
