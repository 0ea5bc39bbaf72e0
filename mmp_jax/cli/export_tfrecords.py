"""Builds a data set once: frames -> blurry frames, targets and MMP (flows computed once) ->
TFRecord shards (schema in `mmp_jax.data.tfrecords`).

`mmp-export` once installed (the same arguments), or from a checkout:
    python -m tools.export_tfrecords --source {synthetic,gopro_raw,gopro,bsd,frames,video} \\
        --input PATH --flow {exact,dis,raft} [--raft-checkpoint P] --out DIR [--split train] [--num-shards 8] \\
        [--workers N] [--seed 0] [--camera-response crf.npy] [--num-sequences 8] [--windows {sliding,random}] \\
        [--blur-frames N]

High-fps sources (synthetic, gopro_raw, frames, video) are blurred here (Eq. 1) with their MMP
(Eq. 2-3), on windows placed as `mmp_jax.data.build` says: `--windows sliding` (the default for
gopro_raw and wherever `--blur-frames` is given: the original notebook's stage-1 data, stride 1
and each sequence's own N from its folder name or `--blur-frames`) or `--windows random` (the
default for synthetic, frames and video: non-overlapping, N from 7..13). Frames are read and
flows computed window by window, records written as they are made: memory does not grow with
the sequence.
With `--flow raft` the one RAFT backend runs in this process and the workers ask it for flows
(`mmp_jax.data.flow_service`). GOPRO benchmark and BSD come blurred and are stored as pairs.
Sequences are split over shards (whole sequences, in order); shards are written by all
cores, each atomically, and listed in `manifest.json` when done: run the same command again
after an interruption and it finishes the missing shards, giving the same bytes as an
uninterrupted export; finished shards whose size or SHA-256 no longer match are written again.
Bad input ends with one line naming the path and the problem (exit 2) and nothing written to
--out; so do a worker process that dies (killed, out of memory: the finished shards are kept,
run the command again) and a folder that cannot be written.
"""
import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import tqdm

from mmp_jax.cli.arguments import add_max_pixels, number, one_line
from mmp_jax.data import atomic, build, flow, flow_service, paths, sources, synthetic, tfrecords
from mmp_jax.data.blur import gamma_response, load_crf_npy
from mmp_jax.raft_backend import raft_backend

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow only writes records here
SOURCES = ('synthetic', 'gopro_raw', 'gopro', 'bsd', 'frames', 'video')
HIGH_FPS = ('synthetic', 'gopro_raw', 'frames', 'video')
CONTEXT = multiprocessing.get_context('spawn')


class WorkerDied(Exception):
    """A worker process ended without a result (killed, out of memory); the message says which
    shards it may have been writing."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What one shard holds and how to make it; picklable for the worker processes."""
    shard: int
    sequences: tuple[tuple[int, object], ...]   # (index in the data set, name or SequenceRef)
    args: argparse.Namespace


def sequence_name(entry) -> str:
    return entry if isinstance(entry, str) else entry.name


def sequence_where(entry) -> str:
    """A sequence for messages: its sharp frames' path, or a synthetic scene's name."""
    return entry if isinstance(entry, str) else str(entry.sharp)


def list_sequences(args) -> list:
    """The data set's sequences (names or SequenceRefs), validated before anything is written."""
    if args.source == 'synthetic':
        return [f'scene{i:03d}' for i in range(args.num_sequences)]
    if args.source in ('frames', 'video'):
        path = pathlib.Path(args.input)
        entries = [sources.SequenceRef(path.stem, path)]
    elif args.source == 'gopro':
        entries = sources.gopro_sequences(args.input, args.split, args.gopro_blurry)
    else:
        reader = {'gopro_raw': sources.gopro_raw_sequences, 'bsd': sources.bsd_sequences}[args.source]
        entries = reader(args.input, args.split)
    for entry in entries:  # missing, empty, not a video, frames over --max-pixels (their headers)
        for path in filter(None, (entry.sharp, entry.blurry)):
            sources.open_frames(path, max_pixels=args.max_pixels)
    return entries


def window_mode(args) -> str:
    """`--windows`, or by default sliding for gopro_raw (the notebook's) and where `--blur-frames`
    is given, random for the other sources."""
    return args.windows or ('sliding' if args.source == 'gopro_raw' or args.blur_frames else 'random')


def blur_frames(args, entry) -> int:
    """N of a sequence's sliding windows: `--blur-frames`, else what its name says (ValueError
    naming the sequence where it says none)."""
    n = args.blur_frames or sources.blur_frames_in_name(sequence_name(entry))
    if n is None:
        raise ValueError(f'{sequence_where(entry)}: sliding windows need the number of sharp frames per '
                         f'blurry frame, and the name gives none (GOPRO_Large_all: GOPR0374_11_00 -> 11); pass '
                         f'--blur-frames N or --windows random')
    return n


def sequence_frames(args, index: int, entry) -> Iterator[build.BlurryFrame]:
    """The blurry frames of one sequence, made as they are taken."""
    if args.source == 'synthetic':
        scene = synthetic.make_scene(seed=args.seed * 100003 + index, length=args.frames_per_sequence,
                                     height=args.height, width=args.width, max_speed=args.max_speed)
        sharp = scene.frames
    else:
        sharp = sources.open_frames(entry.sharp, max_pixels=args.max_pixels).frames
        if entry.blurry is not None:
            return build.paired_sequence(sources.open_frames(entry.blurry, max_pixels=args.max_pixels).frames, sharp)
    if args.flow == 'exact':
        backend = flow.exact_backend(scene.frames, scene.forward, scene.backward)
    elif args.flow == 'dis':
        backend = flow.dis_backend()
    else:
        backend = flow_service.client()  # the parent's RAFT
    response = load_crf_npy(args.crf) if args.crf else gamma_response()
    if window_mode(args) == 'sliding':
        return build.sliding_sequence(sharp, blur_frames(args, entry), backend, response, args.store_flows)
    rng = np.random.default_rng([args.seed, index])
    return build.random_sequence(sharp, backend, response, rng, with_flows=args.store_flows)


def shard_records(job: Job) -> Iterator[bytes]:
    """The serialised examples of a job's sequences, one at a time."""
    for index, entry in job.sequences:
        name = sequence_name(entry)
        try:
            for frame in sequence_frames(job.args, index, entry):
                flows = (frame.forward, frame.backward) if frame.forward is not None else None
                yield tfrecords.frame_example(job.args.source, name, frame.index, frame.window,
                                              frame.blurry, frame.sharp, frame.mmp, flows)
        except ValueError as error:
            if isinstance(error, sources.SourceError):
                raise  # names its path
            raise ValueError(f'{sequence_where(entry)}: {error}') from None


def make_shard(job: Job) -> dict:
    """Writes one shard, records streamed to disk; returns its manifest entry. With `--out` a
    URL the shard is written to the local `args.staging` folder and the parent copies it
    (`publish`): a filesystem in memory (ram://) is one process's own."""
    folder = job.args.staging or job.args.out
    path = paths.as_path(folder) / tfrecords.shard_name(job.args.name, job.shard, job.args.num_shards)
    return tfrecords.write_shard(path, shard_records(job))


def publish(args, shard: dict) -> None:
    """Copies a shard written to `args.staging` into `--out` (whole, `atomic.copy_file`), then
    removes the staged file; nothing to do where the workers wrote into `--out`."""
    if args.staging:
        staged = paths.as_path(args.staging) / shard['file']
        atomic.copy_file(staged, paths.as_path(args.out) / shard['file'])
        staged.unlink()


def settings(args) -> dict:
    keys = ('source', 'input', 'split', 'flow', 'raft_checkpoint', 'raft_size', 'seed', 'crf',
            'store_flows', 'num_shards', 'num_sequences', 'frames_per_sequence', 'height', 'width', 'max_speed',
            'name', 'blur_frames')
    return {**{k: getattr(args, k) for k in keys}, 'windows': window_mode(args)}


def remove_temporaries(out, names: list[str]) -> None:
    """Removes the temporary files that a killed export left for `names` (nothing else)."""
    for name in names:
        for stale in atomic.temporaries(out / name):
            stale.unlink(missing_ok=True)


def shard_is_intact(out, entry: dict) -> bool:
    """Whether the shard of a manifest entry is on disk with the size and SHA-256 listed."""
    path = out / entry['file']
    if not path.is_file() or path.stat().length != entry['bytes']:
        return False
    return tfrecords.sha256(path) == entry['sha256']


def intact_shards(out, shards: dict, quiet: bool) -> dict:
    """The manifest's shards that are intact; the others are reported (unless quiet) and dropped,
    to be written again."""
    intact = {}
    for key, entry in shards.items():
        if shard_is_intact(out, entry):
            intact[key] = entry
        elif not quiet:
            print(f'export_tfrecords: {out / entry["file"]}: missing or damaged (size or SHA-256 differ '
                  f'from {tfrecords.MANIFEST}); writing it again', file=sys.stderr)
    return intact


def describe(job: Job) -> str:
    """The shard file of a job and its sequences, for messages."""
    name = tfrecords.shard_name(job.args.name, job.shard, job.args.num_shards)
    sequences = ', '.join(sequence_name(entry) for _, entry in job.sequences)
    return f'{paths.as_path(job.args.out) / name} ({sequences})'


def worker_died(out: str, in_progress: list[Job]) -> WorkerDied:
    """The error for a pool whose worker died while writing one of `in_progress` (or idle)."""
    shards = ' or '.join(describe(job) for job in in_progress) or out
    return WorkerDied(f'{shards}: its worker process died (killed, or out of memory?); the finished '
                      f'shards are kept, run the same command again to resume')


def run_jobs(jobs: list[Job], count: int,
             service: flow_service.FlowService | None = None) -> Iterator[tuple[Job, dict]]:
    """Writes the shards on `count` processes (connected to `service` where given), handing
    each at most one job at a time, and yields (job, manifest entry) as each shard is done. A
    worker that dies ends it with WorkerDied naming the shards then in progress (the ones done
    were yielded first)."""
    queue = list(reversed(jobs))
    connect = {'initializer': flow_service.connect, 'initargs': service.initargs()} if service else {}
    with futures.ProcessPoolExecutor(count, mp_context=CONTEXT, **connect) as pool:
        running = {}
        while queue or running:
            while queue and len(running) < count:
                job = queue.pop()
                try:
                    running[pool.submit(make_shard, job)] = job
                except BrokenProcessPool:
                    raise worker_died(job.args.out, list(running.values())) from None
            finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            broken = {f for f in finished if isinstance(f.exception(), BrokenProcessPool)}
            for future in finished - broken:
                yield running.pop(future), future.result()
            if broken:
                raise worker_died(jobs[0].args.out, list(running.values())) from None


def export(args) -> dict:
    entries = list_sequences(args)
    if args.flow == 'raft' and not pathlib.Path(args.raft_checkpoint or '').is_file():
        raise ValueError(f'{args.raft_checkpoint}: RAFT weights not found; get raft-things.pth from '
                         f'princeton-vl/RAFT (models.zip) and pass --raft-checkpoint')
    if args.flow == 'exact' and args.source != 'synthetic':
        raise ValueError(f'--flow exact needs --source synthetic (only synthetic scenes know their flow)')
    if window_mode(args) == 'sliding' and args.source in HIGH_FPS:
        for entry in entries:
            blur_frames(args, entry)  # every sequence has its N before anything is written
    args.num_shards = min(args.num_shards, len(entries))
    out = paths.as_path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (tempfile.TemporaryDirectory(prefix='mmp-export-') if paths.is_url(out) else contextlib.nullcontext()) \
            as args.staging:
        return _write_shards(args, entries, out)


def _write_shards(args, entries: list, out) -> dict:
    """`export` once the sequences are checked and `out` exists: the missing shards written."""
    names = [tfrecords.shard_name(args.name, s, args.num_shards) for s in range(args.num_shards)]
    remove_temporaries(out, names + [tfrecords.MANIFEST])
    manifest = tfrecords.load_manifest(out)
    if manifest and manifest.get('settings') != settings(args):
        raise ValueError(f'{out}: holds an export made with other settings; use a new --out')
    manifest = {'settings': settings(args), 'shards': intact_shards(out, manifest.get('shards', {}), args.quiet)}
    done = len(manifest['shards'])
    jobs = [Job(s, tuple((i, entries[i]) for i in range(s, len(entries), args.num_shards)), args)
            for s in range(args.num_shards) if str(s) not in manifest['shards']]
    count = max(1, min(args.workers, len(jobs)))
    service = (flow_service.FlowService(raft_backend(args.raft_checkpoint, args.raft_size), count, CONTEXT)
               if args.flow == 'raft' and jobs and args.source in HIGH_FPS else None)
    start = time.perf_counter()
    with (tqdm.tqdm(total=args.num_shards, initial=done, unit='shard', disable=args.quiet) as bar,
          service or contextlib.nullcontext()):
        try:
            for job, shard in run_jobs(jobs, count, service):
                publish(args, shard)
                manifest['shards'][str(job.shard)] = shard
                tfrecords.save_manifest(out, manifest)
                bar.update(1)
        except WorkerDied:
            remove_temporaries(out, names)  # those of the workers stopped with the dead one
            raise
    shards = manifest['shards'].values()
    return {'sequences': len(entries), 'frames': sum(s['records'] for s in shards),
            'bytes': sum(s['bytes'] for s in shards), 'seconds': time.perf_counter() - start,
            'shards': len(shards), 'resumed_from': done}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source', choices=SOURCES, required=True)
    parser.add_argument('--input', help='data set root, frame folder or video (not for synthetic)')
    parser.add_argument('--split', default='train', help='train / test / valid (gopro_raw, gopro, bsd)')
    add_max_pixels(parser)
    parser.add_argument('--gopro-blurry', choices=sources.GOPRO_BLURRY, default='blur_gamma',
                        help="gopro: the blurry frames' folder (blur_gamma: the paper's and the original's)")
    parser.add_argument('--flow', choices=('exact', 'dis', 'raft'), default='dis')
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
    parser.add_argument('--windows', choices=('sliding', 'random'),
                        help='sliding: stride 1, the sequence\'s own N, as the original notebook (default for '
                             'gopro_raw, and with --blur-frames); random: non-overlapping, N from 7..13 (default '
                             'for the other high-fps sources)')
    parser.add_argument('--blur-frames', type=number(int, at_least=2),
                        help='N sharp frames per blurry frame of sliding windows, for every sequence (default: from '
                             'the sequence name, GOPR0374_11_00 -> 11)')
    parser.add_argument('--num-sequences', type=number(int, at_least=1), default=8, help='synthetic scenes')
    parser.add_argument('--frames-per-sequence', type=number(int, at_least=1), default=120,
                        help='sharp frames per synthetic scene')
    parser.add_argument('--height', type=number(int, at_least=16), default=128, help='synthetic frame height')
    parser.add_argument('--width', type=number(int, at_least=16), default=192, help='synthetic frame width')
    parser.add_argument('--max-speed', type=number(float, at_least=0), default=3.0,
                        help='synthetic: largest motion in pixels per sharp frame (blur of up to 13x it)')
    parser.add_argument('--store-flows', action='store_true', help='also store each window\'s flows (float16)')
    parser.add_argument('--quiet', action='store_true')
    parser.set_defaults(staging=None)  # a local folder for the shards of a URL --out (`export`)
    args = parser.parse_args(argv)
    if args.source != 'synthetic' and not args.input:
        parser.error(f'--input is needed for --source {args.source}')
    if args.blur_frames is not None and args.windows == 'random':
        parser.error('--blur-frames is the N of sliding windows; random windows draw N from 7..13')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = export(args)
    except (sources.SourceError, ValueError, WorkerDied) as error:
        print(one_line(f'export_tfrecords: {error}'), file=sys.stderr)
        return 2
    except OSError as error:  # a folder that cannot be written, a full disk, ...
        print(one_line(f'export_tfrecords: {error.filename or args.out}: {error.strerror or error}'), file=sys.stderr)
        return 2
    print(f'{summary["sequences"]} sequences, {summary["frames"]} frames, {summary["bytes"] / 1e6:.1f} MB '
          f'in {summary["shards"]} shards, {summary["seconds"]:.1f} s'
          + (f' (resumed: {summary["resumed_from"]} shards were done)' if summary['resumed_from'] else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
