"""The export engine: frames -> blurry frames, targets and MMP (flows computed once) ->
TFRecord shards (schema in `mmp_jax.data.tfrecords`), as `ExportSettings` say; the command
`mmp-export` (`mmp_jax.cli.export_tfrecords`) parses its flags into them and calls `export`.

High-fps sources (synthetic, gopro_raw, frames, video) are blurred here (Eq. 1) with their MMP
(Eq. 2-3), on windows placed as `mmp_jax.data.build` says: `windows='sliding'` (the default for
gopro_raw and wherever `blur_frames` is given: the original notebook's stage-1 data, stride 1
and each sequence's own N from its folder name or `blur_frames`) or `windows='random'` (the
default for synthetic, frames and video: non-overlapping, N from 7..13). Frames are read and
flows computed window by window, records written as they are made: memory does not grow with
the sequence.
With `flow='raft'` the one RAFT backend runs in this process and the workers ask it for flows
(`mmp_jax.data.flow_service`). GOPRO benchmark and BSD come blurred and are stored as pairs.
Sequences are split over shards (whole sequences, in order); shards are written by all
cores, each atomically, and listed in `manifest.json` when done: the same export run again
after an interruption finishes the missing shards, giving the same bytes as an uninterrupted
export; finished shards whose size or SHA-256 no longer match are written again.
Bad input raises before anything is written to `out` (every frame's header included, see
`mmp_jax.data.decode_limits`); a worker process that dies (killed, out of memory) raises
WorkerDied, the finished shards kept.
"""
import contextlib
import dataclasses
import multiprocessing
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import tqdm

from mmp_jax.errors import UserError
from mmp_jax.io import atomic, paths, staging
from mmp_jax.data import build, flow, flow_service, sources, synthetic, tfrecords
from mmp_jax.data.blur import gamma_response, load_crf_npy
from mmp_jax.data.decode_limits import DEFAULT_MAX_PIXELS
from mmp_jax.data.flow import FlowBackend

SOURCES = ('synthetic', 'gopro_raw', 'gopro', 'bsd', 'frames', 'video')
HIGH_FPS = ('synthetic', 'gopro_raw', 'frames', 'video')
FLOWS = ('exact', 'dis', 'raft')
WINDOWS = ('sliding', 'random')
CONTEXT = multiprocessing.get_context('spawn')


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """One export: what is read, how it is blurred and where the shards go (the flags of
    `mmp-export`, whose help says what each means); settings that contradict one another are
    refused when made (`__post_init__`)."""
    source: str                        # one of SOURCES
    out: str                           # a folder or URL for the shards and manifest.json
    input: str | None = None           # data set root, frame folder or video (not for synthetic)
    split: str = 'train'               # gopro_raw, gopro, bsd
    gopro_blurry: str = 'blur_gamma'   # gopro: the blurry frames' folder (sources.GOPRO_BLURRY)
    flow: str = 'dis'                  # one of FLOWS
    raft_checkpoint: str | None = None
    raft_size: str = 'large'
    name: str = 'mmp'                  # shard file prefix
    num_shards: int = 8
    workers: int = 1                   # processes (the command's default: one per core)
    seed: int = 0
    crf: str | None = None             # the camera-response file crf.npy (None: a gamma 2.2 curve)
    windows: str | None = None         # one of WINDOWS; None: by source (`window_mode`)
    blur_frames: int | None = None     # N of sliding windows for every sequence
    num_sequences: int = 8             # synthetic scenes
    frames_per_sequence: int = 120     # sharp frames per synthetic scene
    height: int = 128                  # synthetic frame size
    width: int = 192
    max_speed: float = 3.0             # synthetic: largest motion, pixels per sharp frame
    photos: str = 'train'              # synthetic: a key of synthetic.PHOTOS (held_out: evaluation scenes)
    store_flows: bool = False          # also store each window's flows (float16)
    max_pixels: int = DEFAULT_MAX_PIXELS
    quiet: bool = False                # no progress bar

    def __post_init__(self):
        """Settings that contradict one another are a UserError naming the flags."""
        if self.source != 'synthetic' and not self.input:
            raise UserError(f'--input is needed for --source {self.source}')
        if self.source != 'synthetic' and self.flow == 'exact':
            raise UserError('--flow exact needs --source synthetic (only synthetic scenes know their flow)')
        if self.source != 'synthetic' and self.photos != 'train':
            raise UserError('--photos chooses the photos of synthetic scenes (--source synthetic)')
        if self.blur_frames is not None and self.windows == 'random':
            raise UserError('--blur-frames is the N of sliding windows; random windows draw N from 7..13')


class WorkerDied(UserError):
    """A worker process ended without a result (killed, out of memory); the message says which
    shards it may have been writing."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What one shard holds and how to make it; picklable for the worker processes."""
    shard: int
    sequences: tuple[tuple[int, object], ...]   # (index in the data set, name or SequenceRef)
    settings: ExportSettings
    staging: str | None   # a local folder for the shards of a URL `out` (see `make_shard`)


def sequence_name(entry) -> str:
    return entry if isinstance(entry, str) else entry.name


def sequence_where(entry) -> str:
    """A sequence for messages: its sharp frames' path, or a synthetic scene's name."""
    return entry if isinstance(entry, str) else str(entry.sharp)


def list_sequences(settings: ExportSettings) -> list:
    """The data set's sequences (names or SequenceRefs), validated before anything is written."""
    if settings.source == 'synthetic':
        return [f'scene{i:03d}' for i in range(settings.num_sequences)]
    if settings.source in ('frames', 'video'):
        path = pathlib.Path(settings.input)
        entries = [sources.SequenceRef(path.stem, path)]
    elif settings.source == 'gopro':
        entries = sources.gopro_sequences(settings.input, settings.split, settings.gopro_blurry)
    else:
        reader = {'gopro_raw': sources.gopro_raw_sequences, 'bsd': sources.bsd_sequences}[settings.source]
        entries = reader(settings.input, settings.split)
    for entry in entries:  # missing, empty, not a video, frames over --max-pixels (their headers)
        for path in filter(None, (entry.sharp, entry.blurry)):
            sources.check_input(path, settings.max_pixels)
    return entries


def window_mode(settings: ExportSettings) -> str:
    """`--windows`, or by default sliding for gopro_raw (the notebook's) and where `--blur-frames`
    is given, random for the other sources."""
    return settings.windows or ('sliding' if settings.source == 'gopro_raw' or settings.blur_frames else 'random')


def blur_frames(settings: ExportSettings, entry) -> int:
    """N of a sequence's sliding windows: `--blur-frames`, else what its name says (ValueError
    naming the sequence where it says none)."""
    n = settings.blur_frames or sources.blur_frames_in_name(sequence_name(entry))
    if n is None:
        raise UserError(f'{sequence_where(entry)}: sliding windows need the number of sharp frames per '
                        f'blurry frame, and the name gives none (GOPRO_Large_all: GOPR0374_11_00 -> 11); pass '
                        f'--blur-frames N or --windows random')
    return n


def sequence_frames(settings: ExportSettings, index: int, entry) -> Iterator[build.BlurryFrame]:
    """The blurry frames of one sequence, made as they are taken."""
    if settings.source == 'synthetic':
        scene = synthetic.make_scene(seed=settings.seed * 100003 + index, length=settings.frames_per_sequence,
                                     height=settings.height, width=settings.width, max_speed=settings.max_speed,
                                     photos=settings.photos)
        sharp = scene.frames
    else:
        sharp = sources.open_frames(entry.sharp, max_pixels=settings.max_pixels).frames
        if entry.blurry is not None:
            blurry = sources.open_frames(entry.blurry, max_pixels=settings.max_pixels).frames
            return build.paired_sequence(blurry, sharp)
    if settings.flow == 'exact':
        backend = flow.exact_backend(scene.frames, scene.forward, scene.backward)
    elif settings.flow == 'dis':
        backend = flow.dis_backend()
    else:
        backend = flow_service.client()  # the parent's RAFT
    response = load_crf_npy(settings.crf) if settings.crf else gamma_response()
    if window_mode(settings) == 'sliding':
        return build.sliding_sequence(sharp, blur_frames(settings, entry), backend, response, settings.store_flows)
    rng = np.random.default_rng([settings.seed, index])
    return build.random_sequence(sharp, backend, response, rng, with_flows=settings.store_flows)


def shard_records(job: Job) -> Iterator[bytes]:
    """The serialised examples of a job's sequences, one at a time."""
    for index, entry in job.sequences:
        name = sequence_name(entry)
        try:
            for frame in sequence_frames(job.settings, index, entry):
                flows = (frame.forward, frame.backward) if frame.forward is not None else None
                yield tfrecords.frame_example(job.settings.source, name, frame.index, frame.window,
                                              frame.blurry, frame.sharp, frame.mmp, flows)
        except UserError as error:  # a bad sequence (a bug keeps its traceback)
            if isinstance(error, sources.SourceError):
                raise  # names its path
            raise UserError(f'{sequence_where(entry)}: {error}') from None


def make_shard(job: Job) -> dict:
    """Writes one shard, records streamed to disk; returns its manifest entry. With `out` a
    URL the shard is written to the local `job.staging` folder and the parent copies it
    (`publish`): a filesystem in memory (ram://) is one process's own."""
    folder = job.staging or job.settings.out
    path = paths.as_path(folder) / tfrecords.shard_name(job.settings.name, job.shard, job.settings.num_shards)
    return tfrecords.write_shard(path, shard_records(job))


def publish(job: Job, shard: dict) -> None:
    """Copies a shard written to `job.staging` into `out` (whole, `staging.upload`) as soon as it
    is done (so a resumed export finds it), then removes the staged file; nothing to do where
    the workers wrote into `out`."""
    if job.staging:
        staged = paths.as_path(job.staging) / shard['file']
        staging.upload(staged, paths.as_path(job.settings.out) / shard['file'], marker=False)
        staged.unlink()


def manifest_settings(settings: ExportSettings) -> dict:
    """What makes the records: an export resumes only into a manifest that lists the same (its
    keys are those of every earlier manifest; `crf` is the camera-response file; `photos` is
    listed where it is not the training photos, which every earlier manifest's scenes were)."""
    keys = ('source', 'input', 'split', 'flow', 'raft_checkpoint', 'raft_size', 'seed', 'crf',
            'store_flows', 'num_shards', 'num_sequences', 'frames_per_sequence', 'height', 'width', 'max_speed',
            'name', 'blur_frames')
    held_out = {'photos': settings.photos} if settings.photos != 'train' else {}
    return {**{k: getattr(settings, k) for k in keys}, **held_out, 'windows': window_mode(settings)}


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


def intact_shards(out, shards: dict, warn: Callable[[str], None]) -> dict:
    """The manifest's shards that are intact; the others are reported to `warn` and dropped, to
    be written again."""
    intact = {}
    for key, entry in shards.items():
        if shard_is_intact(out, entry):
            intact[key] = entry
        else:
            warn(f'{out / entry["file"]}: missing or damaged (size or SHA-256 differ from {tfrecords.MANIFEST}); '
                 f'writing it again')
    return intact


def describe(job: Job) -> str:
    """The shard file of a job and its sequences, for messages."""
    name = tfrecords.shard_name(job.settings.name, job.shard, job.settings.num_shards)
    sequences = ', '.join(sequence_name(entry) for _, entry in job.sequences)
    return f'{paths.as_path(job.settings.out) / name} ({sequences})'


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
                    raise worker_died(job.settings.out, list(running.values())) from None
            finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            broken = {f for f in finished if isinstance(f.exception(), BrokenProcessPool)}
            for future in finished - broken:
                yield running.pop(future), future.result()
            if broken:
                raise worker_died(jobs[0].settings.out, list(running.values())) from None


def export(settings: ExportSettings, warn: Callable[[str], None] = lambda message: None,
           raft: Callable[[str, str], FlowBackend] | None = None) -> dict:
    """Writes the shards of `settings.out` that are missing (all of them the first time); returns
    a summary (sequences, frames, bytes, seconds, shards, resumed_from). Every input is checked
    before anything is written; `warn` hears of damaged shards being written again; `raft`
    makes the RAFT backend from (checkpoint, size) for `flow='raft'` (`mmp_jax.raft_backend`,
    a layer above this one). Errors: SourceError and ValueError naming the path and the
    problem, WorkerDied, OSError."""
    entries = list_sequences(settings)
    if settings.flow == 'raft' and raft is None:
        raise TypeError("flow='raft' needs the `raft` backend maker")
    if settings.flow == 'raft' and not pathlib.Path(settings.raft_checkpoint or '').is_file():
        raise UserError(f'{settings.raft_checkpoint}: RAFT weights not found; get raft-things.pth from '
                        f'princeton-vl/RAFT (models.zip) and pass --raft-checkpoint')
    if window_mode(settings) == 'sliding' and settings.source in HIGH_FPS:
        for entry in entries:
            blur_frames(settings, entry)  # every sequence has its N before anything is written
    settings = dataclasses.replace(settings, num_shards=min(settings.num_shards, len(entries)))
    out = paths.as_path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    with (staging.scratch() if paths.is_url(out) else contextlib.nullcontext()) as local:
        return _write_shards(settings, entries, out, None if local is None else os.fspath(local), warn, raft)


def _write_shards(settings: ExportSettings, entries: list, out, local: str | None,
                  warn: Callable[[str], None], raft: Callable[[str, str], FlowBackend] | None) -> dict:
    """`export` once the sequences are checked and `out` exists: the missing shards written."""
    names = [tfrecords.shard_name(settings.name, s, settings.num_shards) for s in range(settings.num_shards)]
    remove_temporaries(out, names + [tfrecords.MANIFEST])
    manifest = tfrecords.load_manifest(out)
    if manifest and manifest.get('settings') != manifest_settings(settings):
        raise UserError(f'{out}: holds an export made with other settings; use a new --out')
    manifest = {'settings': manifest_settings(settings), 'shards': intact_shards(out, manifest.get('shards', {}), warn)}
    done = len(manifest['shards'])
    jobs = [Job(s, tuple((i, entries[i]) for i in range(s, len(entries), settings.num_shards)), settings, local)
            for s in range(settings.num_shards) if str(s) not in manifest['shards']]
    count = max(1, min(settings.workers, len(jobs)))
    service = (flow_service.FlowService(raft(settings.raft_checkpoint, settings.raft_size), count, CONTEXT)
               if settings.flow == 'raft' and jobs and settings.source in HIGH_FPS else None)
    start = time.perf_counter()
    with (tqdm.tqdm(total=settings.num_shards, initial=done, unit='shard', disable=settings.quiet) as bar,
          service or contextlib.nullcontext()):
        try:
            for job, shard in run_jobs(jobs, count, service):
                publish(job, shard)
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


def summary_line(summary: dict) -> str:
    """`export`'s summary as the one line the command prints."""
    resumed = f' (resumed: {summary["resumed_from"]} shards were done)' if summary['resumed_from'] else ''
    return (f'{summary["sequences"]} sequences, {summary["frames"]} frames, {summary["bytes"] / 1e6:.1f} MB '
            f'in {summary["shards"]} shards, {summary["seconds"]:.1f} s{resumed}')
