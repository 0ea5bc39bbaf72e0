"""Ours beside the original on one GPU, in one run of fixed length: 1280x720 inference in every
mode of both, then the paper's training step on both, then per-layer tables, as far as the time
allows.

    python -m benchmarks.gpu_suite --original .original/MMP-RNN [--budget-s 420] \\
        [--json benchmarks/results/gpu_side_by_side.json] [--layers-json benchmarks/results/gpu_layers.json]
    python -m benchmarks.gpu_suite --size 64x48 --frames 3 --stream-frames 8 \\
        --train-batch 1x5x32x32 --original ...    # a smoke test on the CPU

The jobs (`plan`, most important first) run one at a time in two worker processes
(`benchmarks.suite_worker`: ours, JAX, without preallocating the device's memory; the
original's, PyTorch), so the two frameworks never share a process and a job that outruns its
time is killed with its worker (which restarts for the next job). Each job has the most time it
may take, compilation included (`Job.limit_s`), and the least it needs (`Job.needs_s`): a job
that no longer fits in what is left of `--budget-s` is skipped, one that outruns its limit or
the budget is stopped. Every job gives a row, measured, skipped, timed out or failed, and the
JSON is rewritten after each row, so a run cut short keeps what it measured.

Inference rows: the same work on both sides, one cell step and one reconstruction per output
frame on the same frames (see `suite_worker`); fps = 1 / seconds per frame. Ours: float32 and
bfloat16 compute, convs with channels as they are (`x1`) or padded to multiples of 8 (`x8`,
`formulations.gpu_channel_multiple`), frame by frame (K1) or in chunks of 8 (K8). The original:
float32, `torch.autocast` float16 / bfloat16, channels-last, `torch.compile`, eval mode under
`torch.no_grad()`, cuDNN autotuning on. Training rows: the paper's step, 8 x 10 x 256 x 256
(`--train-batch`), A9B10C18F8, steps/s. The original's side runs where torch imports and
`--original` names its code (the outer MMP-RNN/ folder of sollynoay/MMP-RNN); its rows are
skipped otherwise. benchmarks/README.md has the one-call command for the device tool.
"""
import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from benchmarks.infer_speed import OriginalMode
from benchmarks.report import write_json
from benchmarks.suite_worker import MARK, add_work_arguments

STARTUP_S = 90.0  # a worker's imports and device start, counted against the budget only
FLOAT32, AUTOCAST16, AUTOCAST_BF16 = {}, {'autocast': 'float16'}, {'autocast': 'bfloat16'}


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of the suite: `side` ('ours' or 'original'), `settings` (what the worker runs,
    `suite_worker`), `needs_s` the least time it needs and `limit_s` the most it may take."""
    side: str
    settings: dict
    needs_s: float
    limit_s: float

    @property
    def name(self) -> str:
        s = self.settings
        if self.side == 'original':
            mode = OriginalMode(**s['mode']).name
        else:
            mode = f"{s['dtype']} x{s['multiple']}" + (f" K{s['chunk']}" if 'chunk' in s else '')
            if s['measure'] == 'training':
                mode += f" remat {s['remat']} {'unrolled' if s['unroll'] else 'loop'}"
        return f"{self.side} {s['measure']} {mode}"

    def row(self, **fields) -> dict:
        s = self.settings
        dtype = (s['mode'].get('autocast') or 'float32') if self.side == 'original' else s['dtype']
        return {'side': self.side, 'measure': s['measure'], 'mode': self.name.split(' ', 2)[2], 'dtype': dtype,
                **({'gpu_channel_multiple': s['multiple']} if 'multiple' in s else {}),
                **({'chunk': s['chunk']} if 'chunk' in s else {}), **fields}


def _ours(measure: str, dtype: str, multiple: int, needs_s: float, limit_s: float, **more) -> Job:
    return Job('ours', {'measure': measure, 'dtype': dtype, 'multiple': multiple, **more}, needs_s, limit_s)


def _original(measure: str, needs_s: float, limit_s: float, channels_last: bool = False, compile: bool = False,
              **autocast) -> Job:
    mode = {**autocast, 'channels_last': channels_last, 'compile': compile}
    return Job('original', {'measure': measure, 'mode': mode}, needs_s, limit_s)


def plan() -> list[Job]:
    """Every job, the most important first: the baseline and the best candidates of both sides at
    inference, the training step on both, then the other modes and the layer tables."""
    infer = lambda dtype, multiple, chunk: _ours('inference', dtype, multiple, 30, 120, chunk=chunk)
    train = lambda dtype, multiple, remat='none', unroll=False: _ours('training', dtype, multiple, 60, 200,
                                                                      remat=remat, unroll=unroll)
    return [
        _original('inference', 15, 90),
        infer('bfloat16', 8, 8),
        _original('inference', 15, 90, channels_last=True, **AUTOCAST16),
        infer('bfloat16', 8, 1),
        infer('bfloat16', 1, 8),
        _original('inference', 15, 90, channels_last=True, **AUTOCAST_BF16),
        infer('float32', 1, 1),
        train('bfloat16', 8),
        _original('training', 20, 90),
        _original('training', 20, 90, channels_last=True, **AUTOCAST_BF16),
        _original('inference', 60, 150, channels_last=True, compile=True, **AUTOCAST16),
        _ours('layers', 'bfloat16', 8, 40, 150),
        _ours('layers', 'bfloat16', 1, 40, 150),
        infer('float32', 8, 8),
        infer('float32', 1, 8),
        infer('bfloat16', 1, 1),
        infer('float32', 8, 1),
        _original('inference', 15, 90, **AUTOCAST16),
        _original('inference', 15, 90, channels_last=True),
        train('float32', 1),
        _original('training', 20, 90, channels_last=True, **AUTOCAST16),
    ]


class Worker:
    """A `suite_worker` process in a process group of its own; its `SUITE ` lines read by a thread."""

    def __init__(self, command: list[str], env: dict | None = None):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env, start_new_session=True)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(MARK):
                self.answers.put(json.loads(line[len(MARK):]))
            else:
                sys.stdout.write(line)
        self.answers.put(None)  # end of output: the worker is gone

    def answer(self, timeout: float) -> dict | None:
        """The next answer; None when none came within `timeout` seconds; a failed row when the
        worker exited."""
        try:
            row = self.answers.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        return {'status': f'failed: the worker exited ({self.process.wait()})'} if row is None else row

    def send(self, settings: dict) -> None:
        self.process.stdin.write(json.dumps(settings) + '\n')
        self.process.stdin.flush()

    def close(self, wait_s: float = 10.0) -> None:
        """Ends the worker: end of input, then its whole process group killed if it lingers past
        `wait_s` seconds (at once with 0: a job that outran its time)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=wait_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run_plan(jobs: list[Job], budget_s: float, start_worker: Callable[[str], Worker],
             on_row: Callable[[dict], None], unavailable: dict[str, str] | None = None) -> None:
    """Runs `jobs` in order within `budget_s` seconds, giving `on_row` one row per job (see the
    module doc). `unavailable`: sides that cannot run, with why (their jobs are skipped)."""
    deadline = time.monotonic() + budget_s
    workers: dict[str, Worker] = {}
    versions: dict[str, dict] = {}
    unavailable = dict(unavailable or {})
    try:
        for job in jobs:
            left = deadline - time.monotonic()
            if job.side in unavailable:
                on_row(job.row(status=f'skipped: {unavailable[job.side]}'))
                continue
            if left < job.needs_s:
                on_row(job.row(status=f'skipped: {left:.0f} s left, needs {job.needs_s:.0f}'))
                continue
            if job.side not in workers:
                worker = start_worker(job.side)
                ready = worker.answer(min(STARTUP_S, left))
                if not ready or not ready.get('ready'):
                    worker.close()
                    unavailable[job.side] = f"the worker did not start ({(ready or {}).get('status', 'timed out')})"
                    on_row(job.row(status=f'failed: {unavailable[job.side]}'))
                    continue
                workers[job.side] = worker
                versions[job.side] = {k: v for k, v in ready.items() if k != 'ready'}
            start = time.monotonic()
            limit = min(job.limit_s, deadline - start)
            workers[job.side].send(job.settings)
            row = workers[job.side].answer(limit)
            if row is None:
                workers.pop(job.side).close(wait_s=0)
                row = {'status': f'timed out after {limit:.0f} s'}
            elif row.get('status', '').startswith('failed: the worker exited'):
                workers.pop(job.side).close()
            on_row(job.row(**{**versions.get(job.side, {}), 'status': 'measured', **row,
                              'wall_s': time.monotonic() - start}))
    finally:
        for worker in workers.values():
            worker.close()


def worker_command(side: str, args: argparse.Namespace) -> list[str]:
    command = [args.python, '-m', 'benchmarks.suite_worker', side, '--variant', args.variant, '--size', args.size,
               '--frames', str(args.frames), '--repeats', str(args.repeats), '--stream-frames',
               str(args.stream_frames), '--train-batch', args.train_batch, '--steps', str(args.steps),
               '--layers-json', args.layers_json]
    return (command + (['--original', args.original] if args.original else [])
            + (['--platform', args.platform] if args.platform else []))


def unavailable_sides(args: argparse.Namespace) -> dict[str, str]:
    """The original's side, where it cannot run here: why."""
    if not args.original:
        return {'original': 'no --original'}
    if not (pathlib.Path(args.original) / 'model' / 'MMPRNN.py').is_file():
        return {'original': f'{args.original}: no model/MMPRNN.py (the outer MMP-RNN/ folder of the original)'}
    if args.python == sys.executable and importlib.util.find_spec('torch') is None:
        return {'original': 'torch is not importable'}
    return {}


def _summary(rows: list[dict]) -> None:
    print('| side | measure | mode | size / batch | fps or steps/s | status |\n|---|---|---|---|---|---|')
    for row in rows:
        rate = row.get('fps', row.get('steps_per_s'))
        print(f"| {row['side']} | {row['measure']} | {row['mode']} | {row.get('size', row.get('batch', ''))} | "
              f"{'' if rate is None else f'{rate:.3f}'} | {row['status']} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_work_arguments(parser)
    parser.add_argument('--budget-s', type=float, default=420.0, help='seconds for the whole suite')
    parser.add_argument('--only', default='', help='comma-separated parts of job names (default: every job)')
    parser.add_argument('--python', default=sys.executable, help='interpreter of the workers')
    parser.add_argument('--json', default='benchmarks/results/gpu_side_by_side.json')
    parser.add_argument('--layers-json', default='benchmarks/results/gpu_layers.json')
    args = parser.parse_args(argv)
    words = [word for word in args.only.split(',') if word]
    jobs = [job for job in plan() if not words or any(word in job.name for word in words)]
    env = {**os.environ, 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false', 'PYTHONUNBUFFERED': '1'}
    rows = []
    meta = {'benchmark': 'gpu_side_by_side', 'variant': args.variant, 'size': args.size, 'frames': args.frames,
            'repeats': args.repeats, 'stream_frames': args.stream_frames, 'train_batch': args.train_batch,
            'steps': args.steps, 'budget_s': args.budget_s, 'platform_formulations': args.platform,
            'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            'load_average_at_start': os.getloadavg(), 'cpu_count': os.cpu_count()}

    def on_row(row: dict) -> None:
        row = {**row, ('batch' if row['measure'] == 'training' else 'size'):
               args.train_batch if row['measure'] == 'training' else args.size}
        rows.append(row)
        print(f"[{time.strftime('%H:%M:%S')}] {json.dumps(row)}", flush=True)
        write_json('gpu_side_by_side', {**meta, 'rows': rows}, args.json)

    run_plan(jobs, args.budget_s, lambda side: Worker(worker_command(side, args), env), on_row,
             unavailable_sides(args))
    _summary(rows)
    print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
