"""PSNR / SSIM of any method's output frames against sharp frames, by the original's test protocol
(the numbers `python -m mmp_jax.main --mode=eval` reports for our own outputs).

`mmp-score` once installed (the same arguments), or from a checkout:
    python -m tools.score --outputs OUTPUTS --sharp SHARP [--sharp-subfolder Sharp/RGB] \\
        [--json scores.json] [--lpips]

OUTPUTS and SHARP hold one folder per sequence (the same names in both; SHARP's frames in
`<sequence>/<--sharp-subfolder>` when given: `sharp` for GOPRO, `Sharp/RGB` for BSD). Frames are
matched by their order (names sorted naturally: 'f2' before 'f10'). A sequence of T sharp frames
is scored on frames 2..T-3, as the original's test and `mmp_jax.evaluate` do; its outputs are
either all T frames (the first and last two are then not scored) or only those T-4 (as the
original's test and our evaluation write them). Frames are 8-bit RGB as written (the original
truncates its outputs to 8 bits before it writes and scores them); PSNR and SSIM are
`mmp_jax.metrics`' (scikit-image's SSIM, as the original's test). Means are over all scored
frames (each frame counts once), and per sequence.

Prints a table; `--json PATH` also writes the scores there (replacing that file; a score that is
not finite, the PSNR of identical frames, is `inf` in the table and null in the JSON). `--lpips`
adds LPIPS (AlexNet) where the `lpips` package is installed (it is not a dependency; without it,
a note and the other scores). A missing or mismatched sequence, frame count or frame size ends
with one line naming it (exit 2) before anything is scored or written.
"""
import argparse
import pathlib
import sys
from collections.abc import Callable

from mmp_jax.errors import run_command
from mmp_jax.cli.arguments import add_max_pixels
from mmp_jax.io import atomic
from mmp_jax.scoring import finite_or_null, lpips_distance, match_sequences, score, table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--outputs', required=True, type=pathlib.Path,
                        help="a method's outputs: one folder of frames per sequence")
    parser.add_argument('--sharp', required=True, type=pathlib.Path,
                        help='the sharp frames: one folder per sequence, named as in --outputs')
    parser.add_argument('--sharp-subfolder', default='', metavar='PATH',
                        help="the sharp frames' folder inside each sequence's (GOPRO: sharp; BSD: Sharp/RGB)")
    parser.add_argument('--json', type=pathlib.Path, metavar='PATH', help='also write the scores here as JSON')
    parser.add_argument('--lpips', action='store_true',
                        help='also LPIPS (AlexNet), where the lpips package is installed (not a dependency)')
    add_max_pixels(parser)
    args = parser.parse_args(argv)
    if args.json is not None and args.json.is_dir():
        parser.error(f'--json {args.json}: a folder; name a file')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    lpips = lpips_distance() if args.lpips else None
    if args.lpips and lpips is None:
        print('score: LPIPS skipped: the lpips package is not installed (pip install lpips)', file=sys.stderr)
    return run_command('score', lambda: _score_and_report(args, lpips), args.json and str(args.json))


def _score_and_report(args: argparse.Namespace, lpips: Callable | None) -> int:
    report = score(match_sequences(args.outputs, args.sharp, args.sharp_subfolder), lpips, args.max_pixels)
    report.update(outputs=str(args.outputs), sharp=str(args.sharp))
    if args.json is not None:
        atomic.write_json(args.json, finite_or_null(report))
    print(table(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
