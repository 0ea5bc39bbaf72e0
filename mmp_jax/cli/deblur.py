"""Deblurs a video or a folder of frames with a converted or trained checkpoint.

`mmp-deblur` once installed (the same arguments), or from a checkout:
    python -m tools.deblur --checkpoint CKPT --input IN --output OUT [--overwrite] \\
        [--prior PRIOR_OUT] [--side-by-side] [--dtype bfloat16] [--ends replicate|drop] \\
        [--reset-every 20] [--tile 512 512 --tile-overlap 32] [--chunk-frames 4] [--fps 30] \\
        [--allow-truncated] [--max-pixels N] [--codec h264|lossless] [--crf 18] [--no-audio]

CKPT: a folder from `tools.convert_checkpoint`, or a training workdir (its `model/`). IN: a
video file FFmpeg reads (through PyAV: turned upright as its rotation metadata says, its frame
times kept), or a folder of frames; frames over `--max-pixels` are refused before decoding.
OUT (and PRIOR_OUT): a video file (.mp4, .mov, .mkv: H.264 through PyAV, CRF 18 unless
`--crf`, or `--codec lossless`; .avi: MJPG; the fps of IN, or `--fps` for a frame folder; IN's
audio copied unless `--no-audio`) or, for any other name, a folder of PNGs named as the input
frames (a video's frames by their index). Frames stream through the
network one at a time (`--chunk-frames K`: K at a time, the same outputs), so memory does not grow with the
video. See `mmp_jax.infer` for how the first and last two frames are handled (`--ends`).

Batches: several inputs (`--input a.mp4 b.mp4 frames/`), or a folder holding videos and no
frames, go into the folder OUT: a video to `OUT/<name>` (.mp4 unless its own suffix is one we
write), a frame folder to `OUT/<folder name>/`. All inputs are opened and all outputs checked
before anything is written, and they share one compiled program per frame size.

Nothing but OUT and PRIOR_OUT is written: they must differ from IN and from each other, an
existing one is refused unless `--overwrite` (a folder then keeps everything but its frames),
missing parent folders are created, and an interrupted run (an error, Ctrl-C, SIGTERM) leaves
nothing behind. A video that cannot be decoded to the end is an error unless `--allow-truncated`.

Any of IN, OUT, PRIOR_OUT (and CKPT) may be a URL (`gs://bucket/x`, see `mmp_jax.io.paths`): an
input is copied into a local temporary folder first (a folder: the files directly in it), an
output is written there and then copied to the URL, each file whole (`atomic.copy_file`), with
the same rules as a local output: refused if it exists unless `--overwrite` (a folder then keeps
everything but its frames, which are replaced one by one), a new folder that cannot be copied to
the end removed. The temporary folder goes when the run ends.
"""
import argparse
import dataclasses
import signal
import sys

from mmp_jax import deblur_run, interrupts
from mmp_jax.cli.arguments import add_max_pixels, number
from mmp_jax.errors import run_command
from mmp_jax.infer import DTYPES, ENDS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True,
                        help='folder from tools.convert_checkpoint, or a training workdir')
    parser.add_argument('--input', required=True, nargs='+',
                        help='video file or folder of frames; several, or a folder of videos, for a batch')
    parser.add_argument('--output', required=True,
                        help='video file (.mp4, ...) or folder of PNGs; for several inputs, the folder for '
                             'their outputs')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output (a folder: only its frames)')
    parser.add_argument('--prior', help='also write the motion magnitude prior as a heat map here')
    parser.add_argument('--side-by-side', action='store_true', help='write input | output')
    parser.add_argument('--dtype', choices=DTYPES, help="compute dtype (default: the model's, float32 "
                        'unless it was exported otherwise); parameters stay float32')
    parser.add_argument('--ends', choices=ENDS, default='replicate',
                        help='replicate: every frame gets an output; drop: frames 2..T-3 only, as the original')
    parser.add_argument('--reset-every', type=int, default=0, metavar='N',
                        help="reset the hidden state as the original's test: chunks of N frames overlapping "
                             'by 4 (its default: 20); 0 (default) carries the state through the whole video')
    parser.add_argument('--codec', choices=('h264', 'lossless'),
                        help='video out: h264 (default for .mp4/.mov/.mkv; .avi: MJPG) or lossless (RGB H.264); '
                             'frames of an odd width or height are stored as H.264 4:4:4, which many players '
                             '(browsers, phones, QuickTime) do not play: crop the input to even sizes for a video '
                             'to share')
    parser.add_argument('--crf', type=number(int, at_least=0, at_most=51),
                        help='H.264 quality, 0-51, lower is better (default 18)')
    parser.add_argument('--no-audio', action='store_true', help="do not copy the input video's audio")
    parser.add_argument('--tile', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'),
                        help='deblur in tiles of this size (each with its own state), blended over the '
                             'overlap: memory follows the tile, not the frame (for 4K on small devices)')
    parser.add_argument('--tile-overlap', type=int, default=32, metavar='PIXELS',
                        help='pixels neighbouring tiles share (default 32)')
    parser.add_argument('--chunk-frames', type=int, default=1, metavar='K',
                        help='run the non-recurrent parts on K frames at once (the same outputs; '
                             'memory grows with K; default 1)')
    parser.add_argument('--fps', type=number(float, above=0), default=25.0,
                        help='frame rate of a frame folder (video out)')
    parser.add_argument('--allow-truncated', action='store_true',
                        help='a video that ends before its stated frame count: keep the frames that decoded')
    add_max_pixels(parser)
    parser.add_argument('--variant', help='refuse a checkpoint of another variant')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> deblur_run.DeblurSettings:
    """The settings the flags say (a UserError where they contradict one another)."""
    return deblur_run.DeblurSettings(**{field.name: getattr(args, field.name)
                                        for field in dataclasses.fields(deblur_run.DeblurSettings)})


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command('deblur', lambda: _deblur_and_report(args), args.output)


def _deblur_and_report(args: argparse.Namespace) -> int:
    try:
        with interrupts.stop_on_signals():
            written = deblur_run.deblur(settings_of(args))
    except interrupts.Terminated:
        print('deblur: stopped by SIGTERM; nothing was written', file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print('deblur: stopped by Ctrl-C; nothing was written', file=sys.stderr)
        return 128 + signal.SIGINT
    for output, count in written:
        print(f'wrote {count} frames to {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
