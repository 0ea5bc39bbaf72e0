"""Builds a data set once: frames -> blurry frames, targets and MMP (flows computed once) ->
TFRecord shards (schema in `data_pipeline.tfrecords`).

    python -m tools.export_tfrecords --source {synthetic,gopro_raw,gopro,bsd,frames,video} \\
        --input PATH --flow {exact,dis,raft} [--raft-checkpoint P] --out DIR [--split train] [--num-shards 8] \\
        [--workers N] [--seed 0] [--crf crf.npy] [--num-sequences 8]

High-fps sources (synthetic, gopro_raw, frames, video) are blurred here (Eq. 1, N from 7..13)
with their MMP (Eq. 2-3); GOPRO benchmark and BSD come blurred and are stored as pairs.
Sequences are split over shards (whole sequences, in order); shards are written by all
cores, each atomically, and listed in `manifest.json` when done: run the same command again
after an interruption and it finishes the missing shards, giving the same bytes as an
uninterrupted export. Bad input ends with one line naming the path and the problem (exit 2)
and nothing written to --out.
"""
import argparse
import dataclasses
import functools
import multiprocessing
import os
import pathlib
import sys
import time

import numpy as np
import tqdm

from data_pipeline import build, flow, sources, synthetic, tfrecords
from data_pipeline.blur import gamma_response, load_crf_npy
from mmp_jax.raft_backend import raft_backend

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow only writes records here
SOURCES = ('synthetic', 'gopro_raw', 'gopro', 'bsd', 'frames', 'video')
HIGH_FPS = ('synthetic', 'gopro_raw', 'frames', 'video')


@dataclasses.dataclass(frozen=True)
class Job:
    """What one shard holds and how to make it; picklable for the worker processes."""
    shard: int
    sequences: tuple[tuple[int, object], ...]   # (index in the data set, name or SequenceRef)
    args: argparse.Namespace


def sequence_name(entry) -> str:
    return entry if isinstance(entry, str) else entry.name


def list_sequences(args) -> list:
    """The data set's sequences (names or SequenceRefs), validated before anything is written."""
    if args.source == 'synthetic':
        return [f'scene{i:03d}' for i in range(args.num_sequences)]
    if args.source in ('frames', 'video'):
        path = pathlib.Path(args.input)
        sources.open_frames(path)  # validates: missing, empty, not a video
        return [sources.SequenceRef(path.stem, path)]
    if args.source == 'gopro':
        return sources.gopro_sequences(args.input, args.split, args.gopro_blurry)
    reader = {'gopro_raw': sources.gopro_raw_sequences, 'bsd': sources.bsd_sequences}[args.source]
    return reader(args.input, args.split)


@functools.lru_cache(maxsize=1)
def _raft(checkpoint: str, size: str) -> flow.FlowBackend:
    return raft_backend(checkpoint, size)  # loaded once per worker process


def sequence_frames(args, index: int, entry) -> list[build.BlurryFrame]:
    rng = np.random.default_rng([args.seed, index])
    if args.source == 'synthetic':
        scene = synthetic.make_scene(seed=args.seed * 100003 + index, length=args.frames_per_sequence,
                                     height=args.height, width=args.width, max_speed=args.max_speed)
        sharp = scene.frames
    else:
        sharp = sources.read_all(entry.sharp)
        if entry.blurry is not None:
            return list(build.paired_sequence(sources.read_all(entry.blurry), sharp))
    if args.flow == 'exact':
        backend = flow.exact_backend(scene.frames, scene.forward, scene.backward)
    elif args.flow == 'dis':
        backend = flow.dis_backend()
    else:
        backend = _raft(args.raft_checkpoint, args.raft_size)
    response = load_crf_npy(args.crf) if args.crf else gamma_response()
    return list(build.blur_sequence(sharp, backend, response, rng))


def make_shard(job: Job) -> dict:
    """Writes one shard; returns its manifest entry."""
    records = []
    for index, entry in job.sequences:
        name = sequence_name(entry)
        for frame in sequence_frames(job.args, index, entry):
            flows = (frame.forward, frame.backward) if job.args.store_flows and frame.forward is not None else None
            records.append(tfrecords.frame_example(job.args.source, name, frame.index, frame.window,
                                                   frame.blurry, frame.sharp, frame.mmp, flows))
    out = pathlib.Path(job.args.out)
    path = out / tfrecords.shard_name(job.args.name, job.shard, job.args.num_shards)
    return tfrecords.write_shard(path, records)


def settings(args) -> dict:
    keys = ('source', 'input', 'split', 'flow', 'raft_checkpoint', 'raft_size', 'seed', 'crf',
            'store_flows', 'num_shards', 'num_sequences', 'frames_per_sequence', 'height', 'width', 'max_speed',
            'name')
    return {k: getattr(args, k) for k in keys}


def export(args) -> dict:
    entries = list_sequences(args)
    if args.flow == 'raft' and not pathlib.Path(args.raft_checkpoint or '').is_file():
        raise ValueError(f'{args.raft_checkpoint}: RAFT weights not found; get raft-things.pth from '
                         f'princeton-vl/RAFT (models.zip) and pass --raft-checkpoint')
    if args.flow == 'exact' and args.source != 'synthetic':
        raise ValueError(f'--flow exact needs --source synthetic (only synthetic scenes know their flow)')
    args.num_shards = min(args.num_shards, len(entries))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob('.*.tmp'):  # left by an export that was killed
        stale.unlink()
    manifest = tfrecords.load_manifest(out)
    if manifest and manifest.get('settings') != settings(args):
        raise ValueError(f'{out}: holds an export made with other settings; use a new --out')
    manifest = {'settings': settings(args), 'shards': manifest.get('shards', {})}
    done = {int(k) for k, v in manifest['shards'].items()
            if (out / v['file']).is_file() and (out / v['file']).stat().st_size == v['bytes']}
    jobs = [Job(s, tuple((i, entries[i]) for i in range(s, len(entries), args.num_shards)), args)
            for s in range(args.num_shards) if s not in done]
    start = time.perf_counter()
    with multiprocessing.get_context('spawn').Pool(max(1, min(args.workers, len(jobs) or 1))) as pool, \
            tqdm.tqdm(total=args.num_shards, initial=len(done), unit='shard', disable=args.quiet) as bar:
        for shard, job in zip(pool.imap(make_shard, jobs), jobs):
            manifest['shards'][str(job.shard)] = shard
            tfrecords.save_manifest(out, manifest)
            bar.update(1)
    shards = manifest['shards'].values()
    return {'sequences': len(entries), 'frames': sum(s['records'] for s in shards),
            'bytes': sum(s['bytes'] for s in shards), 'seconds': time.perf_counter() - start,
            'shards': len(shards), 'resumed_from': len(done)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source', choices=SOURCES, required=True)
    parser.add_argument('--input', help='data set root, frame folder or video (not for synthetic)')
    parser.add_argument('--split', default='train', help='train / test / valid (gopro_raw, gopro, bsd)')
    parser.add_argument('--gopro-blurry', choices=sources.GOPRO_BLURRY, default='blur_gamma',
                        help="gopro: the blurry frames' folder (blur_gamma: the paper's and the original's)")
    parser.add_argument('--flow', choices=('exact', 'dis', 'raft'), default='dis')
    parser.add_argument('--raft-checkpoint', help='official RAFT weights (raft-things.pth) for --flow raft')
    parser.add_argument('--raft-size', choices=('large', 'small'), default='large')
    parser.add_argument('--out', required=True)
    parser.add_argument('--name', default='mmp', help='shard file prefix')
    parser.add_argument('--num-shards', type=int, default=8)
    parser.add_argument('--workers', type=int, default=multiprocessing.cpu_count())
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--crf', help="the original's crf.npy (default: a gamma 2.2 curve)")
    parser.add_argument('--num-sequences', type=int, default=8, help='synthetic scenes')
    parser.add_argument('--frames-per-sequence', type=int, default=120, help='sharp frames per synthetic scene')
    parser.add_argument('--height', type=int, default=128, help='synthetic frame height')
    parser.add_argument('--width', type=int, default=192, help='synthetic frame width')
    parser.add_argument('--max-speed', type=float, default=3.0,
                        help='synthetic: largest motion in pixels per sharp frame (blur of up to 13x it)')
    parser.add_argument('--store-flows', action='store_true', help='also store each window\'s flows (float16)')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    if args.source != 'synthetic' and not args.input:
        parser.error(f'--input is needed for --source {args.source}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = export(args)
    except (sources.SourceError, ValueError) as error:
        print(f'export_tfrecords: {error}', file=sys.stderr)
        return 2
    print(f'{summary["sequences"]} sequences, {summary["frames"]} frames, {summary["bytes"] / 1e6:.1f} MB '
          f'in {summary["shards"]} shards, {summary["seconds"]:.1f} s'
          + (f' (resumed: {summary["resumed_from"]} shards were done)' if summary['resumed_from'] else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
