"""Evaluation over whole sequences, sharded over every device of every host.

Jobs (a chunk of a sequence, or one frame) run one per device per round; the last round is
padded with copies of the first job whose results are dropped (the mask), so every job counts
once on any number of devices and hosts, and a device always computes a batch of one: the
numbers do not depend on the device count. Each host scores the outputs its devices hold;
scores are gathered over hosts.

- `MMPRNNEvaluator`, as the original's test (`train/test.py`, `_test_torch` / `_test_lmdb`):
  a sequence of T frames is cut into chunks of `chunk_frames` (hidden state reset per chunk),
  the next chunk starting past + future frames before the previous one ended, the last one
  moved back to end at T; frames `past .. T-future-1` (2..T-3) are scored, each by the first
  chunk that outputs it (later chunks do not score it again). Outputs are clipped and
  truncated to 8 bits as the original does (`quantization='round'` rounds instead); PSNR/SSIM
  by `metrics`, also for the blurry input. Optionally every scored frame is written
  (`outputs_dir/<sequence>/<index>.png`, index = the frame's position in its sequence) and
  an input | output | sharp video per sequence (`outputs_dir/<sequence>.mp4`). The report
  holds the network's wall time per output frame and the devices.
- `MMPNetEvaluator`: MMP-Net's prior of each whole blurry frame against the MMP of the
  records, L1 (the paper's "L1 on full test images").

Each evaluator is called as `evaluator(variables, sequences, mesh) -> (report, strips)`, owns
its report's keys (`REPORT_KEYS`, what each holds) and its one-line `summary(report)`.

Sequences: `{name: {'blurry', 'sharp': uint8 [T, H, W, 3], 'mmp': float32 [T, H, W, 1] | None}}`.
"""
import dataclasses
import functools
import os
import pathlib
import time
from collections.abc import Callable

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from mmp_jax.errors import UserError
from mmp_jax.io import paths
from mmp_jax.data.sources import read_frame
from mmp_jax import metrics, sharding
from mmp_jax.frame_writers import FrameWriter
from mmp_jax.models.mmp_rnn import MMPRNN, InputScaling, mmpnet_prior, prior_variables
from mmp_jax.pixels import QUANTIZATIONS, pad_to_multiple, to_uint8
from mmp_jax.visualize import heat_map, write_png

SCORES = ('psnr', 'ssim', 'blurry_psnr', 'blurry_ssim')
TIMING_KEYS = ('seconds_per_frame', 'timed_frames', 'devices')  # report keys that describe the machine


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    start: int        # first frame of the sequence in the job
    length: int       # frames in the job
    first: int = 0    # first frame (in the job) that this job scores: earlier ones an earlier job scored


def chunk_starts(length: int, chunk: int, past: int, future: int) -> list[int]:
    """First frames of the chunks the original's test cuts a `length`-frame sequence into."""
    if chunk <= 0 or length <= chunk:
        return [0]
    starts, start, end = [], 0, chunk
    while True:
        starts.append(start)
        if end == length:
            return starts
        start = end - past - future
        end = start + chunk
        if end > length:
            end, start = length, length - chunk


def scored_frames(length: int, past: int, future: int) -> range:
    """The frames of a `length`-frame sequence that the original's test scores: past .. T-future-1
    (2..T-3), those with all their neighbours in the sequence (empty below past + future + 1 frames)."""
    return range(past, max(past, length - future))


@dataclasses.dataclass
class Timing:
    """Wall time of the network (`run`, until its outputs are ready) and the output frames of
    real (unpadded) jobs in the rounds timed; each shape's first round, which compiles, is left out
    (a shape with one round only is run twice, the second pass timed)."""
    seconds: float = 0.0
    frames: int = 0

    def per_frame(self) -> float | None:
        return self.seconds / self.frames if self.frames else None


def _sharded_scores(jobs: list, load: Callable, run: Callable, score: Callable, width: int,
                    mesh: jax.sharding.Mesh, timing: Timing | None = None,
                    frames_of: Callable = lambda job: 1) -> np.ndarray:
    """`score(job, output)` `[width]` of every job, on every host. Jobs of one input shape;
    `load(job)` gives its input dict, `run(batch)` the outputs `[N, ...]`; `frames_of(job)`
    its output frames, for `timing`."""
    devices, hosts = mesh.size, jax.process_count()
    per_host = devices // hosts
    rounds = -(-len(jobs) // devices)
    out = np.zeros((rounds * devices, width))
    for first in range(0, rounds * devices, devices):
        mine = range(first + jax.process_index() * per_host, first + (jax.process_index() + 1) * per_host)
        inputs = [load(jobs[slot] if slot < len(jobs) else jobs[0]) for slot in mine]
        batch = sharding.shard_batch({k: np.stack([x[k] for x in inputs]) for k in inputs[0]}, mesh)
        started = time.perf_counter()
        outputs = jax.block_until_ready(run(batch))
        if timing is not None and rounds == 1:  # the only round compiled: timed on a second pass
            started = time.perf_counter()
            jax.block_until_ready(run(batch))
        if timing is not None and (first > 0 or rounds == 1):
            timing.seconds += time.perf_counter() - started
            timing.frames += sum(frames_of(job) for job in jobs[first:first + devices])
        for shard in outputs.addressable_shards:
            slot = first + (shard.index[0].start or 0)
            if slot < len(jobs):  # padding slots (mask 0) are dropped
                out[slot] = score(jobs[slot], np.asarray(shard.data)[0])
    if hosts > 1:
        out = _merged_over_hosts(out)
    return out[:len(jobs)]


def _merged_over_hosts(local: np.ndarray) -> np.ndarray:
    """The union over hosts of arrays that each host fills where the others hold zeros: their
    bits OR-ed, so exact in any dtype (through jax, float64 would travel as float32)."""
    bits = np.ascontiguousarray(local).reshape(-1).view(np.uint8)
    return np.bitwise_or.reduce(multihost_utils.process_allgather(bits), axis=0).view(local.dtype).reshape(local.shape)


def _on_every_host(found: dict, keys: list, like: Callable) -> dict:
    """`found[key]` of each of `keys` found on some host, on every host: each was computed by one
    host only (the frame's job ran there); `like(key)` is an array of its shape and dtype."""
    if jax.process_count() == 1:
        return found
    stack = np.stack([found.get(key, np.zeros_like(like(key))) for key in keys])
    present = np.array([key in found for key in keys])
    stack, present = _merged_over_hosts(stack), _merged_over_hosts(present)
    return {key: value for key, value, here in zip(keys, stack, present) if here}


def devices_label() -> str:
    """What evaluated: e.g. 'cpu x 8' (the devices' kind x count)."""
    return f'{jax.devices()[0].device_kind} x {jax.device_count()}'


def _by_shape(jobs: list[Job], shape_of: Callable) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(shape_of(job), []).append(i)
    return groups


@functools.partial(jax.jit, static_argnums=0)
def _deblur(model: MMPRNN, variables, batch: dict) -> jax.Array:
    """Outputs `[N, T-4, H, W, 3]` of blurry chunks `[N, T, H, W, 3]`; compiled once per model
    and shape across evaluations (the model is a hashable, static argument)."""
    return model.apply(variables, batch['blurry'], batch.get('mmp'))


_mmpnet_prior = jax.jit(mmpnet_prior, static_argnums=2)


@dataclasses.dataclass(frozen=True)
class MMPRNNEvaluator:
    """MMP-RNN as the original's test. `chunk_frames` (0: whole sequences), `quantization`
    ('truncate' | 'round'); with `outputs_dir`, every scored frame is written there (and, with
    `videos`, one input | output | sharp video per sequence). Strips: blurry | output | sharp |
    prior heat map, uint8 RGB, for the middle frame of the first `sample_images` sequences."""
    model: MMPRNN
    chunk_frames: int = 20
    sample_images: int = 2
    quantization: str = 'truncate'
    outputs_dir: epath.Path | None = None
    videos: bool = False

    REPORT_KEYS = {
        'psnr': 'mean PSNR (dB) of the outputs against the sharp frames, over the scored frames',
        'ssim': 'mean SSIM of the same',
        'blurry_psnr': 'mean PSNR (dB) of the blurry inputs, the same frames',
        'blurry_ssim': 'mean SSIM of the blurry inputs',
        'count': 'frames scored',
        'scored_frames': 'which frames are scored, in words',
        'chunk_frames': 'frames per chunk (hidden state reset per chunk; 0: whole sequences)',
        'quantization': "outputs to 8 bits: 'truncate' (the original's) or 'round'",
        'seconds_per_frame': "the network's wall time per output frame (compiling rounds left out; a "
                             'frame size evaluated in one round is run twice for it)',
        'timed_frames': 'the output frames timed',
        'devices': 'the devices that ran it, kind x count',
        'sequences': 'per sequence: frames, count and the four scores',
    }

    def __post_init__(self):
        if self.quantization not in QUANTIZATIONS:
            raise UserError(f'unknown quantization {self.quantization!r}; accepted: {", ".join(QUANTIZATIONS)}')

    @staticmethod
    def summary(report: dict) -> str:
        speed = (f'; {report["seconds_per_frame"]:.4f} s per frame on {report["devices"]}'
                 if report.get('seconds_per_frame') is not None else '')
        return (f'mmprnn: PSNR {report["psnr"]:.2f} dB, SSIM {report["ssim"]:.4f}; the blurry input: '
                f'PSNR {report["blurry_psnr"]:.2f} dB, SSIM {report["blurry_ssim"]:.4f} (a gain of '
                f'{report["psnr"] - report["blurry_psnr"]:+.2f} dB). Scored: {report["count"]} '
                f'frames, {report["scored_frames"]}{speed}')

    def _jobs(self, sequences: dict[str, dict]) -> list[Job]:
        """The chunks of every sequence, each scoring the frames no earlier chunk scored."""
        past, future, jobs = self.model.past_frames, self.model.future_frames, []
        for name, seq in sequences.items():
            length = len(seq['blurry'])
            if length < self.model.window:
                raise UserError(f'sequence {name!r} has {length} frames; evaluation needs at least '
                                f'{self.model.window}')
            size = min(length, self.chunk_frames) if self.chunk_frames > 0 else length
            scored_to = 0  # frames before it are scored by an earlier chunk
            for start in chunk_starts(length, self.chunk_frames, past, future):
                jobs.append(Job(name, start, size, max(past, scored_to - start)))
                scored_to = start + size - future
        return jobs

    def __call__(self, variables, sequences: dict[str, dict],
                 mesh: jax.sharding.Mesh) -> tuple[dict, dict[str, np.ndarray]]:
        """(report, strips) of `variables` on `sequences`."""
        model, chunk_frames, quantization, outputs_dir = (self.model, self.chunk_frames, self.quantization,
                                                          self.outputs_dir)
        past, future = model.past_frames, model.future_frames
        jobs = self._jobs(sequences)
        replicated = sharding.replicate(variables, mesh)

        def load(job):
            seq = sequences[job.name]
            window = slice(job.start, job.start + job.length)
            batch = {'blurry': pad_to_multiple(seq['blurry'][window]).astype(np.float32) / 255.0}
            if model.needs_prior:
                batch['mmp'] = pad_to_multiple(seq['mmp'][window])
            return batch

        wanted = {(name, len(sequences[name]['blurry']) // 2) for name in list(sequences)[:self.sample_images]}
        samples = {}

        def score(job, output):
            seq = sequences[job.name]
            height, width = seq['sharp'].shape[1:3]
            rows = np.full((job.length, len(SCORES)), np.nan)
            for i in range(job.first, job.length - future):
                t = job.start + i
                deblurred = to_uint8(output[i - past, :height, :width], quantization)
                sharp, blurry = seq['sharp'][t], seq['blurry'][t]
                rows[i] = (metrics.psnr(deblurred, sharp), metrics.ssim(deblurred, sharp),
                           metrics.psnr(blurry, sharp), metrics.ssim(blurry, sharp))
                if (job.name, t) in wanted:
                    samples[(job.name, t)] = deblurred
                if outputs_dir is not None:
                    write_png(output_path(outputs_dir, job.name, t), deblurred)
            return rows.ravel()

        scores, timing = {}, Timing()
        for shape, members in _by_shape(jobs, lambda j: (j.length,) + sequences[j.name]['blurry'].shape[1:]).items():
            rows = _sharded_scores([jobs[i] for i in members], load, lambda b: _deblur(model, replicated, b), score,
                                   shape[0] * len(SCORES), mesh, timing, lambda job: job.length - past - future)
            scores.update(zip(members, rows.reshape(len(members), shape[0], len(SCORES))))

        per_sequence, all_rows = {}, []
        for name, seq in sequences.items():
            rows = np.concatenate([scores[i][job.first:job.length - future]
                                   for i, job in enumerate(jobs) if job.name == name])
            all_rows.append(rows)
            per_sequence[name] = {'frames': f'{past}..{len(seq["blurry"]) - future - 1}', 'count': len(rows),
                                  **{key: float(np.mean(rows[:, j])) for j, key in enumerate(SCORES)}}
        rows = np.concatenate(all_rows)
        report = {'scored_frames': f'frames {past}..T-{future + 1} of each T-frame sequence, each once '
                                   f'(chunks of {chunk_frames or "all"} frames, hidden state reset per chunk, '
                                   f'as the original test)',
                  'chunk_frames': chunk_frames, 'count': len(rows), 'quantization': quantization,
                  **{key: float(np.mean(rows[:, j])) for j, key in enumerate(SCORES)},
                  'seconds_per_frame': timing.per_frame(), 'timed_frames': timing.frames, 'devices': devices_label(),
                  'sequences': per_sequence}
        if outputs_dir is not None and self.videos:
            multihost_utils.sync_global_devices('evaluation outputs written')
            if jax.process_index() == 0:
                for name, seq in sequences.items():
                    write_comparison_video(outputs_dir, name, seq, scored_frames(len(seq['blurry']), past, future))
        samples = _on_every_host(samples, sorted(wanted), lambda key: sequences[key[0]]['sharp'][key[1]])
        return report, _mmprnn_samples(model, variables, sequences, samples, self.sample_images)


def output_path(outputs_dir: str | os.PathLike, sequence: str, index: int) -> epath.Path:
    """Where the deblurred frame `index` (its position in the sequence) of `sequence` is written."""
    return paths.path(outputs_dir) / sequence / f'{index:08d}.png'


def write_comparison_video(outputs_dir: pathlib.Path, sequence: str, seq: dict, frames: range,
                           fps: float = 10.0) -> None:
    """`outputs_dir/<sequence>.mp4`: input | output | sharp side by side (10 fps, as the original's
    `--video`), the outputs read back from their PNGs; it replaces the video of an earlier
    evaluation in the same workdir (the PNGs are replaced likewise)."""
    with FrameWriter(pathlib.Path(outputs_dir) / f'{sequence}.mp4', fps, overwrite=True) as video:
        for t in frames:
            output = read_frame(output_path(outputs_dir, sequence, t))
            video.write(np.concatenate([seq['blurry'][t], output, seq['sharp'][t]], axis=1))


def _mmprnn_samples(model, variables, sequences, outputs, count) -> dict[str, np.ndarray]:
    """Strips for the middle scored frame of the first `count` sequences (`outputs`: its output)."""
    strips = {}
    for name in list(sequences)[:count]:
        seq = sequences[name]
        t = len(seq['blurry']) // 2
        if (name, t) not in outputs:
            continue
        panels = [seq['blurry'][t], outputs[(name, t)], seq['sharp'][t]]
        if model.use_mmam and not model.needs_prior:
            panels.append(heat_map(_prior(prior_variables(variables), seq['blurry'][t], model.scaling)))
        strips[f'{name}_frame{t}'] = np.concatenate(panels, axis=1)
    return strips


def _prior(prior_vars, frame: np.ndarray, scaling: InputScaling) -> np.ndarray:
    """MMP-Net's prior `[H, W, 1]` of a uint8 frame `[H, W, 3]`."""
    return np.asarray(_mmpnet_prior(prior_vars, frame.astype(np.float32)[None] / 255.0, scaling))[0]


@dataclasses.dataclass(frozen=True)
class MMPNetEvaluator:
    """MMP-Net alone (its `{'params', 'batch_stats'}`), its input scaled by `scaling` (stage 2's
    model's). Strips: blurry | prior | GT MMP as heat maps, for the middle frame of the first
    `sample_images` sequences."""
    scaling: InputScaling = InputScaling()
    sample_images: int = 2

    REPORT_KEYS = {
        'l1': "mean absolute difference of the prior and the records' MMP, every pixel of every frame",
        'count': 'frames scored',
        'scored_frames': 'which frames are scored, in words',
        'sequences': 'per sequence: count and l1',
    }

    @staticmethod
    def summary(report: dict) -> str:
        return f'mmpnet: L1 of the prior {report["l1"]:.4f} over {report["count"]} frames'

    def __call__(self, variables, sequences: dict[str, dict],
                 mesh: jax.sharding.Mesh) -> tuple[dict, dict[str, np.ndarray]]:
        """(report, strips) of MMP-Net's `variables` on `sequences`."""
        return _evaluate_mmpnet(variables, sequences, mesh, self.scaling, self.sample_images)


def _evaluate_mmpnet(variables, sequences: dict[str, dict], mesh: jax.sharding.Mesh, scaling: InputScaling,
                     sample_images: int) -> tuple[dict, dict[str, np.ndarray]]:
    missing = [name for name, seq in sequences.items() if seq['mmp'] is None]
    if missing:
        raise UserError(f'MMP-Net is scored against MMP ground truth; sequences {missing} have none '
                        f'(export them from sharp high-frame-rate video)')
    jobs = [Job(name, t, 1) for name, seq in sequences.items() for t in range(len(seq['blurry']))]
    replicated = sharding.replicate(variables, mesh)
    load = lambda job: {'blurry': sequences[job.name]['blurry'][job.start].astype(np.float32) / 255.0}
    wanted = {(name, len(sequences[name]['blurry']) // 2) for name in list(sequences)[:sample_images]}
    priors = {}

    def score(job, prior):
        if (job.name, job.start) in wanted:
            priors[(job.name, job.start)] = prior
        return np.array([np.mean(np.abs(prior - sequences[job.name]['mmp'][job.start]))])

    run = lambda batch: _mmpnet_prior(replicated, batch['blurry'], scaling)
    l1 = np.zeros(len(jobs))
    for _, members in _by_shape(jobs, lambda j: sequences[j.name]['blurry'].shape[1:]).items():
        l1[members] = _sharded_scores([jobs[i] for i in members], load, run, score, 1, mesh)[:, 0]
    names = np.array([job.name for job in jobs])
    report = {'scored_frames': 'every frame, whole', 'count': len(jobs), 'l1': float(np.mean(l1)),
              'sequences': {name: {'count': int(np.sum(names == name)), 'l1': float(np.mean(l1[names == name]))}
                            for name in sequences}}
    priors = _on_every_host(priors, sorted(wanted), lambda key: sequences[key[0]]['mmp'][key[1]])
    strips = {}
    for name in list(sequences)[:sample_images]:
        t = len(sequences[name]['blurry']) // 2
        if (name, t) in priors:
            seq = sequences[name]
            strips[f'{name}_frame{t}'] = np.concatenate(
                [seq['blurry'][t], heat_map(priors[(name, t)]), heat_map(seq['mmp'][t])], axis=1)
    return report, strips
