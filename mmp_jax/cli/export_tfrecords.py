"""Builds a data set once: frames -> blurry frames, targets and MMP (flows computed once) ->
TFRecord shards; the flags say the `mmp_jax.data.export.ExportSettings` (whose module says how
sources are blurred, windows placed and shards resumed).

`mmp-export` once installed, or `python -m tools.export_tfrecords` from a checkout (`--help` lists
the flags, e.g. `--source synthetic --flow exact --out DIR`).

Run the same command again after an interruption and it finishes the missing shards (the same
bytes as an uninterrupted export). Bad input ends with one line naming the path and the problem
(exit 2) and nothing written to --out; so do a worker process that dies (killed, out of memory:
the finished shards are kept, run the command again) and a folder that cannot be written.
"""
import argparse
import dataclasses
import multiprocessing
import sys

from mmp_jax.errors import run_command
from mmp_jax.cli.arguments import add_max_pixels, number
from mmp_jax.data import export, sources, synthetic
from mmp_jax.raft_backend import raft_backend


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source', choices=export.SOURCES, required=True)
    parser.add_argument('--input', help='data set root, frame folder or video (not for synthetic)')
    parser.add_argument('--split', default='train', help='train / test / valid (gopro_raw, gopro, bsd)')
    add_max_pixels(parser)
    parser.add_argument('--gopro-blurry', choices=sources.GOPRO_BLURRY, default='blur_gamma',
                        help="gopro: the blurry frames' folder (blur_gamma: the paper's and the original's)")
    parser.add_argument('--flow', choices=export.FLOWS, default='dis')
    parser.add_argument('--raft-checkpoint', help='official RAFT weights (raft-things.pth) for --flow raft')
    parser.add_argument('--raft-size', choices=('large', 'small'), default='large')
    parser.add_argument('--out', required=True)
    parser.add_argument('--name', default='mmp', help='shard file prefix')
    parser.add_argument('--num-shards', type=number(int, at_least=1), default=8)
    parser.add_argument('--workers', type=number(int, at_least=1), default=multiprocessing.cpu_count())
    parser.add_argument('--seed', type=number(int, at_least=0), default=0)
    # dest 'crf': the key of the settings in the manifests of earlier exports
    parser.add_argument('--camera-response', dest='crf', metavar='CRF_NPY',
                        help="the original's camera response file crf.npy (default: a gamma 2.2 curve)")
    parser.add_argument('--windows', choices=export.WINDOWS, help="sliding: stride 1, the sequence's own N, as the "
                        'original notebook (default for gopro_raw and with --blur-frames); random: non-overlapping, '
                        'N from 7..13 (default for the other high-fps sources)')
    parser.add_argument('--blur-frames', type=number(int, at_least=2), help='N sharp frames per blurry frame of '
                        'sliding windows, for every sequence (default: from the sequence name, GOPR0374_11_00 -> 11)')
    parser.add_argument('--num-sequences', type=number(int, at_least=1), default=8, help='synthetic scenes')
    parser.add_argument('--frames-per-sequence', type=number(int, at_least=1), default=120, help='synthetic: frames')
    parser.add_argument('--height', type=number(int, at_least=16), default=128, help='synthetic frame height')
    parser.add_argument('--width', type=number(int, at_least=16), default=192, help='synthetic frame width')
    parser.add_argument('--max-speed', type=number(float, at_least=0), default=3.0,
                        help='synthetic: largest motion in pixels per sharp frame (blur of up to 13x it)')
    parser.add_argument('--photos', choices=tuple(synthetic.PHOTOS), default='train', help='synthetic: the photos '
                        'of the scenes; held_out ones no train scene shows (to score a model on pictures it never saw)')
    parser.add_argument('--store-flows', action='store_true', help='also store each window\'s flows (float16)')
    parser.add_argument('--quiet', action='store_true')
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> export.ExportSettings:
    """The settings the flags say (a UserError where they contradict one another)."""
    return export.ExportSettings(**{field.name: getattr(args, field.name)
                                    for field in dataclasses.fields(export.ExportSettings)})


def main(argv=None) -> int:
    args = parse_args(argv)
    warn = lambda message: args.quiet or print(f'export_tfrecords: {message}', file=sys.stderr)

    def run() -> int:
        print(export.summary_line(export.export(settings_of(args), warn, raft_backend)))
        return 0
    return run_command('export_tfrecords', run, args.out)


if __name__ == '__main__':
    sys.exit(main())
