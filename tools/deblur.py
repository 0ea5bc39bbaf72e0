"""Deblurs a video or a folder of frames with a converted or trained checkpoint.

    python -m tools.deblur --checkpoint CKPT --input IN --output OUT \\
        [--prior PRIOR_OUT] [--side-by-side] [--dtype bfloat16] [--ends replicate|drop]

IN: a video file OpenCV reads, or a folder of frames. OUT (and PRIOR_OUT): a video file
(.mp4, .mov, .mkv, .avi; same fps as IN) or, for any other name, a folder of PNGs. Frames
stream through the network one at a time, so memory does not grow with the video. See
`mmp_jax.infer` for how the first and last two frames are handled (`--ends`).
"""
import argparse
import sys

from data_pipeline.sources import SourceError, open_frames
from mmp_jax.checkpoint import CheckpointError, load_model
from mmp_jax.frame_writers import OutputError
from mmp_jax.infer import DTYPES, ENDS, deblur_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='folder from tools.convert_checkpoint or training')
    parser.add_argument('--input', required=True, help='video file or folder of frames')
    parser.add_argument('--output', required=True, help='video file (.mp4, ...) or folder of PNGs')
    parser.add_argument('--prior', help='also write the motion magnitude prior as a heat map here')
    parser.add_argument('--side-by-side', action='store_true', help='write input | output')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='float32')
    parser.add_argument('--ends', choices=ENDS, default='replicate',
                        help='replicate: every frame gets an output; drop: frames 2..T-3 only, as the original')
    parser.add_argument('--variant', help='refuse a checkpoint of another variant')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    try:
        model, variables, config = load_model(args.checkpoint)
        if args.variant and args.variant != config['variant']:
            raise CheckpointError(f'{args.checkpoint}: holds {config["variant"]}, --variant says '
                                  f'{args.variant}')
        source = open_frames(args.input)
        written = deblur_file(model, variables, source, args.output, args.prior, args.side_by_side,
                              args.ends, args.dtype, progress=not args.quiet)
    except (SourceError, CheckpointError, OutputError, ValueError) as error:
        print(f'deblur: {error}', file=sys.stderr)
        return 2
    print(f'wrote {written} frames to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
