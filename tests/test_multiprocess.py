"""Training as a job of several processes, for real on this machine: 2 processes x 4 host CPU
devices joined by `jax.distributed` on localhost (the local form of a TPU pod or a SLURM job),
against 1 process x 8 devices, on the tiny records of tests/test_train.py: stage 2 alone (no
MMP-Net, whose compilation would double the time), global batch 8."""
import json
import os
import signal
import time

import jax
import numpy as np
import pytest

from mmp_jax import checkpoint, evaluate
from tests.conftest import finish_processes, start_processes
from tests.test_train import records  # noqa: F401 (the fixture)

# argv: COORDINATOR PROCESSES ID RECORDS WORKDIR STOP EVALUATE FAIL: 6 steps (the learning-rate
# schedule's), stopped after step STOP as SIGTERM stops them (a checkpoint of it saved); FAIL
# 'process:step' raises in that process as it takes that step's batch ('-': none). Batches are
# prefetched (config.data.device_prefetch, 2): their digests are taken as the thread pulls them,
# kept for the steps the loop takes.
JOB = r'''
import contextlib, hashlib, json, os, signal, sys
from configs import test as test_config
from mmp_jax import train, workdir_records
from mmp_jax.io import atomic

coordinator, processes, index, records, workdir, stop, evaluating, fail = sys.argv[1:]
config = test_config.get_config()
config.data.train_records = records + '/train'
config.data.eval_records = records + '/eval' if evaluating == '1' else ''
config.stages, config.model.use_mmam, config.mmprnn.loss_weights.motion_magnitude = ('mmprnn',), False, 0.0
config.mmprnn.update(num_steps=6, batch_size=8)  # a batch over 8 devices
config.eval.chunk_frames = 5  # 3 chunks per 7-frame sequence: the second sequence's sample is on process 1
if int(processes) > 1:
    config.multi_host = True
    config.distributed.update(coordinator_address=coordinator, num_processes=int(processes),
                              process_id=int(index), heartbeat_timeout_seconds=10)
pulled, batches, writes = {}, {}, []

def recorded(batches_of):
    """The host batches pulled (ahead of the loop): a digest of each item, by stage and step."""
    def wrapped(config, stage, start):
        for step, batch in enumerate(batches_of(config, stage, start), start + 1):
            pulled[stage.name, step] = [
                hashlib.sha256(b''.join(batch[k][i].tobytes() for k in sorted(batch))).hexdigest()[:16]
                for i in range(len(batch['blurry']))]
            yield batch
    return wrapped

def taken(device_batches):
    """The batches the loop takes: their digests, by stage and step."""
    @contextlib.contextmanager
    def wrapped(config, stage, start, mesh):
        def steps(feed):
            for step, batch in enumerate(feed, start + 1):
                if fail == f'{index}:{step}':
                    raise RuntimeError(f'failing on purpose at step {step}')
                if step == int(stop):  # every process: all stop after this step
                    os.kill(os.getpid(), signal.SIGTERM)
                batches.setdefault(stage.name, {})[step] = pulled[stage.name, step]
                yield batch
        with device_batches(config, stage, start, mesh) as feed:
            yield steps(feed)
    return wrapped

def noted(write):
    def wrapped(path, *args, **kwargs):
        writes.append(str(path))
        return write(path, *args, **kwargs)
    return wrapped

train._batches, train._device_batches = recorded(train._batches), taken(train._device_batches)
workdir_records.write_png, atomic.write_json = noted(workdir_records.write_png), noted(atomic.write_json)
try:
    reports = train.train_and_evaluate(config, workdir)
except train.Preempted:
    reports = {}
print(json.dumps({'reports': reports, 'batches': batches, 'writes': writes}))
'''


def _job(run, records, workdir, processes: int, steps: int = 6) -> list[dict]:
    """Trains in `workdir` on `processes` x 8/`processes` devices to step `steps` of 6 (stopped
    there as by SIGTERM; evaluating after step 6); what each process printed (reports, batch
    digests, files it wrote)."""
    results = run(JOB, processes, 8 // processes, str(records), str(workdir), str(steps % 6), str(int(steps == 6)),
                  '-')
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(result.stdout.strip().splitlines()[-1]) for result in results]


def _global_batches(outputs: list[dict]) -> dict:
    """{step: item digests of the global batch}: the hosts' parts, in process order."""
    steps = outputs[0]['batches']['mmprnn']
    return {int(step): sum((out['batches']['mmprnn'][step] for out in outputs), []) for step in steps}


def _untimed(reports: dict) -> dict:
    return {stage: {k: v for k, v in report.items() if k not in evaluate.TIMING_KEYS}
            for stage, report in reports.items()}


def _close(a, b, tolerance: float) -> bool:
    """Nested reports equal, floats to `tolerance`."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, float):
        return abs(a - b) <= tolerance
    return a == b


@pytest.mark.slow
def test_two_processes_resume_one_and_are_resumed_by_it_as_one_of_eight_devices(records, tmp_path,  # noqa: F811
                                                                                  job_of_processes):
    """1 x 8 devices for 6 steps, against 2 x 4 to step 2, then 1 x 8 to step 4 (resuming the
    checkpoint of the 2 processes), then 2 x 4 to step 6 (resuming that of the 1 process): the
    same batches at each step, the same parameters and evaluation; only process 0 writes the
    shared files (metrics.json, the sample strips, the TensorBoard events)."""
    one = _job(job_of_processes, records, tmp_path / 'one', 1)
    chain = tmp_path / 'chain'
    parts = [_job(job_of_processes, records, chain, processes, steps) for processes, steps in ((2, 2), (1, 4), (2, 6))]
    assert [sorted(_global_batches(part)) for part in parts] == [[1, 2], [3, 4], [5, 6]]  # each resumed
    assert {step: items for part in parts for step, items in _global_batches(part).items()} == _global_batches(one)
    # checkpoints of 8 devices over 2 processes, restored on this process's 1 device
    a, b = (checkpoint.latest_saved_state(workdir / 'checkpoints' / 'mmprnn') for workdir in (tmp_path / 'one', chain))
    assert int(a['step']) == int(b['step']) == 6
    leaves_a, leaves_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    difference = max(float(np.max(np.abs(np.asarray(a, np.float64) - b))) for (_, a), (_, b) in zip(leaves_a, leaves_b))
    print(f'largest parameter difference after 6 steps, 1 x 8 against the 2 x 4 / 1 x 8 / 2 x 4 chain: '
          f'{difference:.3g}')
    assert difference < 1e-5
    last = parts[-1]
    assert _close(_untimed(last[0]['reports']), _untimed(one[0]['reports']), 1e-3)
    assert last[0]['reports']['mmprnn']['count'] > 0 and _untimed(last[0]['reports']) == _untimed(last[1]['reports'])
    assert last[1]['writes'] == []
    assert sorted(last[0]['writes']) == sorted(path.replace('/one/', '/chain/') for path in one[0]['writes'])
    assert len(one[0]['writes']) == 4  # config.json, metrics.json and the strips of both sequences
    assert len(list(chain.glob('events.out.tfevents.*'))) == 3  # one per run, each by process 0
    assert (chain / 'model' / 'variables').is_dir()


@pytest.mark.slow
@pytest.mark.parametrize('how', ['error', 'killed'])
def test_one_process_failing_ends_the_job_in_bounded_time(records, tmp_path, how):  # noqa: F811
    """Process 1 raises taking its first batch (`error`), or is killed with SIGKILL once the
    stage began (`killed`): the other process ends too, with an error, within the heartbeat
    timeout (10 s) and a margin, where it would otherwise wait 5 minutes (jax.distributed's
    shutdown timeout)."""
    logs = tmp_path / 'logs'
    logs.mkdir()
    fail = '1:1' if how == 'error' else '-'
    started = start_processes(JOB, 2, 4, logs, str(records), str(tmp_path / 'run'), '0', '0', fail)
    if how == 'killed':
        stage = tmp_path / 'run' / 'checkpoints' / 'mmprnn'
        deadline = time.monotonic() + 600
        while not stage.exists() and time.monotonic() < deadline and started[1].poll() is None:
            time.sleep(0.05)
        os.kill(started[1].pid, signal.SIGKILL)
    while started[1].poll() is None:
        time.sleep(0.05)
    failed = time.monotonic()
    results = finish_processes(started, logs, timeout=120)
    seconds = time.monotonic() - failed
    print(f'{how}: process 0 ended {seconds:.1f} s after process 1')
    assert results[1].returncode != 0 and results[0].returncode != 0
    assert seconds < 40
    if how == 'error':
        assert 'failing on purpose at step 1' in results[1].stderr
        assert 'process 1 of 2 stopped the job' in results[1].stderr
