"""Deblurs a video or a folder of frames with a converted or trained checkpoint.

`mmp-deblur` once installed (the same arguments), or from a checkout:
    python -m tools.deblur --checkpoint CKPT --input IN --output OUT [--overwrite] \\
        [--prior PRIOR_OUT] [--side-by-side] [--dtype bfloat16] [--ends replicate|drop] \\
        [--reset-every 20] [--tile 512 512 --tile-overlap 32] [--chunk-frames 4] [--fps 30] \\
        [--allow-truncated] [--codec h264|lossless] [--crf 18] [--no-audio]

CKPT: a folder from `tools.convert_checkpoint`, or a training workdir (its `model/`). IN: a
video file OpenCV reads, or a folder of frames. OUT (and PRIOR_OUT): a video file (.mp4, .mov,
.mkv: H.264 through PyAV, CRF 18 unless `--crf`, or `--codec lossless`; .avi: MJPG; the fps of
IN, or `--fps` for a frame folder; IN's audio copied unless `--no-audio`) or, for any other
name, a folder of PNGs named as the input frames (a video's frames by their index). Frames stream through the
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
"""
import argparse
import pathlib
import signal
import sys

from mmp_jax.data.paths import is_url
from mmp_jax.data.sources import FRAME_SUFFIXES, SourceError, list_videos, open_frames
from mmp_jax.checkpoint import CheckpointError, load_model
from mmp_jax.frame_writers import OutputError, check_distinct, check_output, is_video_path
from mmp_jax.infer import DTYPES, ENDS, deblur_file, make_deblurrer


class Terminated(Exception):
    """SIGTERM arrived: unwinds the writers so that they remove their temporaries."""


def _raise_terminated(*_):
    raise Terminated()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True,
                        help='folder from tools.convert_checkpoint, or a training workdir')
    parser.add_argument('--input', required=True, nargs='+',
                        help='video file or folder of frames; several, or a folder of videos, for a batch')
    parser.add_argument('--output', required=True,
                        help='video file (.mp4, ...) or folder of PNGs; for several inputs, the folder for their outputs')
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
                        help='video out: h264 (default for .mp4/.mov/.mkv; .avi: MJPG) or lossless (RGB H.264)')
    parser.add_argument('--crf', type=int, help='H.264 quality, 0-51, lower is better (default 18)')
    parser.add_argument('--no-audio', action='store_true', help="do not copy the input video's audio")
    parser.add_argument('--tile', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'),
                        help='deblur in tiles of this size (each with its own state), blended over the '
                             'overlap: memory follows the tile, not the frame (for 4K on small devices)')
    parser.add_argument('--tile-overlap', type=int, default=32, metavar='PIXELS',
                        help='pixels neighbouring tiles share (default 32)')
    parser.add_argument('--chunk-frames', type=int, default=1, metavar='K',
                        help='run the non-recurrent parts on K frames at once (the same outputs; '
                             'memory grows with K; default 1)')
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
    if args.chunk_frames < 1:
        parser.error(f'--chunk-frames must be at least 1, got {args.chunk_frames}')
    if args.reset_every < 0:
        parser.error(f'--reset-every must be 0 or positive, got {args.reset_every}')
    return args


def expand_inputs(inputs: list[str]) -> list[pathlib.Path]:
    """The videos and frame folders to deblur: the paths given, a folder holding videos but no
    frames standing for its videos."""
    paths = []
    for given in map(pathlib.Path, inputs):
        if given.is_dir() and not any(p.suffix.lower() in FRAME_SUFFIXES for p in given.iterdir()):
            videos = list_videos(given)
            if videos:
                paths.extend(videos)
                continue
        paths.append(given)
    return paths


def plan_outputs(inputs: list[pathlib.Path], output: str, prior: str | None) -> list[tuple]:
    """(input, output, prior output) per input: one input goes to `output` itself; several go
    into the folder `output`, a video to `<stem>.mp4` (or its own suffix where we write it), a
    frame folder to `<name>/` (priors likewise under `prior`)."""
    if len(inputs) == 1:
        return [(inputs[0], output, prior)]
    if is_video_path(output) or (prior is not None and is_video_path(prior)):
        raise OutputError(f'{output}: {len(inputs)} inputs need an output folder, not a video name')
    plans, names = [], {}
    for path in inputs:
        name = (path.stem + (path.suffix.lower() if is_video_path(path) else '.mp4')
                if path.is_file() else path.name)
        if name in names:
            raise OutputError(f'{path} and {names[name]} would both be written to {name}; deblur them separately')
        names[name] = path
        plans.append((path, str(pathlib.Path(output) / name), None if prior is None else str(pathlib.Path(prior) / name)))
    return plans


def run(args: argparse.Namespace) -> list[tuple[str, int]]:
    """Deblurs as `args` say; returns (output, frames written) per input. Every input is
    opened and every output checked before the first is written; one program per frame size."""
    for given in (*args.input, args.output, args.prior):
        if given is not None and is_url(given):
            raise OutputError(f'{given}: deblur reads and writes local videos and frame folders (OpenCV, PyAV); '
                              f'copy it here (the --checkpoint may be a gs:// URL)')
    model, variables, config = load_model(args.checkpoint)
    if args.variant and args.variant != config['variant']:
        raise CheckpointError(f'{args.checkpoint}: holds {config["variant"]}, --variant says {args.variant}')
    plans = plan_outputs(expand_inputs(args.input), args.output, args.prior)
    for path, output, prior in plans:
        check_distinct(path, {'--output': output, '--prior': prior})
        for target in (output, prior):
            if target is not None:
                check_output(pathlib.Path(target).absolute(), args.overwrite)
    sources = [open_frames(path, folder_fps=args.fps, allow_truncated=args.allow_truncated)
               for path, _, _ in plans]
    deblurrer = make_deblurrer(model, variables, args.ends, args.dtype,
                               tuple(args.tile) if args.tile else None, args.tile_overlap, args.chunk_frames)
    return [(output, deblur_file(deblurrer, source, output, prior, args.side_by_side, progress=not args.quiet,
                                 overwrite=args.overwrite, reset_every=args.reset_every,
                                 audio=not args.no_audio, codec=args.codec, quality=args.crf))
            for source, (_, output, prior) in zip(sources, plans)]


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
    for output, count in written:
        print(f'wrote {count} frames to {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
