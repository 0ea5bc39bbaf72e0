"""The training loop and evaluation, run for real on tiny synthetic records."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import test as test_config
from mmp_jax import evaluate, train
from mmp_jax.data import export
from tests.conftest import REPO



@pytest.fixture(scope='module')
def records(tmp_path_factory):
    """Train and eval records of tiny synthetic scenes (exact flow)."""
    pytest.importorskip('tensorflow')
    root = tmp_path_factory.mktemp('records')
    for split, count, seed in (('train', 3, 0), ('eval', 2, 7)):
        export.export(export.ExportSettings(source='synthetic', flow='exact', out=str(root / split), seed=seed,
                                            num_sequences=count, num_shards=count, frames_per_sequence=80,
                                            height=32, width=48, quiet=True))
    return root


def tiny_overrides(records, **changes) -> list[str]:
    """Command-line overrides of configs/test.py (`_main`'s config) for `records`: 30 stage-2 steps
    with the paper's loss (`changes`: field -> value)."""
    fields = {'data.train_records': records / 'train', 'data.eval_records': records / 'eval',
              'mmprnn.num_steps': 30, 'mmprnn.checkpoint_every': 10, 'mmprnn.log_every': 5,
              'mmprnn.loss_weights.motion_magnitude': 1.0}  # the paper's loss
    return [f'--config.{k}={v}' for k, v in {**fields, **changes}.items()]


def tiny_config(records, **train_fields):
    """configs/test.py reading `records` (`train_fields`: config.mmprnn fields to change)."""
    config = test_config.get_config()
    config.data.train_records, config.data.eval_records = str(records / 'train'), str(records / 'eval')
    config.mmprnn.update(**train_fields)
    return config


def _main(workdir, *overrides, env=None):
    return subprocess.Popen([sys.executable, '-m', 'mmp_jax.main', '--config=configs/test.py',
                             f'--workdir={workdir}', *overrides], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _without_timing(metrics: dict) -> dict:
    """metrics.json without the figures of the machine's speed (`evaluate.TIMING_KEYS`)."""
    return {stage: {k: v for k, v in report.items() if k not in evaluate.TIMING_KEYS}
            for stage, report in metrics.items()}


def _final_params(workdir, stage='mmprnn'):
    with ocp.CheckpointManager(workdir / 'checkpoints' / stage, item_names=('state', 'meta')) as manager:
        state = manager.restore(manager.latest_step(),
                                args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
    return manager.latest_step(), jax.tree_util.tree_leaves_with_path(state)


@pytest.mark.slow
def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_bits(records, tmp_path):
    """A run straight through without device prefetch, against one killed (SIGKILL) after its
    first stage-2 checkpoint, with batches prefetched and unused (depth 2, the default), and
    resumed at another depth (3): the same parameters, bit for bit, and the same evaluation."""
    overrides = tiny_overrides(records)
    straight = _main(tmp_path / 'straight', *overrides, '--config.data.device_prefetch=0')
    assert straight.wait(timeout=600) == 0, straight.stderr.read()[-3000:]

    killed = _main(tmp_path / 'killed', *overrides)
    first = tmp_path / 'killed' / 'checkpoints' / 'mmprnn' / '10'
    deadline = time.time() + 600
    while not first.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert 'mmprnn' not in json.loads((tmp_path / 'killed' / 'eval' / 'metrics.json').read_text())  # stage 1's only
    resumed = _main(tmp_path / 'killed', *overrides, '--config.data.device_prefetch=3')
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    assert 'mmprnn: training steps 11..30' in resumed.stderr.read()  # it resumed, not restarted
    assert resumed.stdout.read().splitlines()[-1].startswith('mmprnn: PSNR ')  # the summary it prints

    (step_a, leaves_a), (step_b, leaves_b) = _final_params(tmp_path / 'straight'), _final_params(tmp_path / 'killed')
    assert step_a == step_b == 30
    assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(leaves_a, leaves_b))
    metrics = [_without_timing(json.loads((tmp_path / run / 'eval' / 'metrics.json').read_text()))
               for run in ('straight', 'killed')]
    assert metrics[0] == metrics[1]
    assert metrics[0]['mmprnn']['count'] > 0
    assert (tmp_path / 'killed' / 'model').is_dir()  # the export tools.deblur reads


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(records, tmp_path):
    """SIGTERM after stage 1 ended: stage 2 stops at its first step and saves it."""
    run = _main(tmp_path, *tiny_overrides(records, **{'mmprnn.num_steps': 100000,
                                                      'mmprnn.checkpoint_every': 100000}))
    last_of_stage_one = tmp_path / 'checkpoints' / 'mmpnet' / '4'
    deadline = time.time() + 600
    while not last_of_stage_one.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=300) == 1
    assert 'stopped at step 1 on request' in run.stderr.read()
    assert sorted(p.name for p in (tmp_path / 'checkpoints' / 'mmprnn').iterdir() if p.name.isdigit()) == ['1']


@pytest.mark.slow
def test_a_non_finite_loss_stops_with_the_last_good_checkpoint(records, tmp_path):
    config = tiny_config(records, learning_rate=1e-3, num_steps=1)
    config.mmprnn.checkpoint_every = 1
    config.stages = ('mmprnn',)
    config.model.use_mmam = False  # no stage 1 needed
    config.data.eval_records = ''
    config.mmprnn.loss_weights.motion_magnitude = 1.0
    with pytest.raises(train.TrainingError, match='motion magnitude loss needs MMP-Net'):
        train.train_and_evaluate(config, tmp_path)
    config.mmprnn.loss_weights.motion_magnitude = 0.0
    train.train_and_evaluate(config, tmp_path)  # step 1, sound
    # at lr 1e30 step 2 moves the weights to ~1e30: finite, but their loss is not, so step 2 is not saved
    config.mmprnn.update(learning_rate=1e30, num_steps=6)
    with pytest.raises(train.TrainingError, match='the loss is not finite') as error:
        train.train_and_evaluate(config, tmp_path)
    assert 'mmprnn step 2: the loss is not finite' in str(error.value)
    assert 'the last good checkpoint (step 1) is kept' in str(error.value)
    steps = sorted(int(p.name) for p in (tmp_path / 'checkpoints' / 'mmprnn').iterdir() if p.name.isdigit())
    assert steps == [1]


@pytest.mark.slow
def test_stage_two_without_mmp_net_is_a_clear_error(records, tmp_path):
    config = tiny_config(records)
    config.stages = ('mmprnn',)
    with pytest.raises(train.TrainingError, match='needs a trained MMP-Net'):
        train.train_and_evaluate(config, tmp_path)


@pytest.mark.slow
def test_main_reports_missing_records_in_one_line(tmp_path):
    run = _main(tmp_path / 'run', f'--config.data.train_records={tmp_path}/none', '--config.data.eval_records=')
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 2
    assert f'{tmp_path}/none: no finished shards' in stderr and 'Traceback' not in stderr


def test_chunks_follow_the_original_test_and_score_each_frame_once():
    assert evaluate.chunk_starts(150, 20, 2, 2) == [0, 16, 32, 48, 64, 80, 96, 112, 128, 130]
    assert evaluate.chunk_starts(12, 20, 2, 2) == [0]
    assert evaluate.chunk_starts(12, 0, 2, 2) == [0]


EVAL_SCRIPT = r'''
import json, sys, jax, numpy as np
from mmp_jax import evaluate, sharding
from mmp_jax.models.mmp_rnn import prior_variables
from mmp_jax.models.variants import model_from_variant
from tests.conftest import TINY_VARIANT, init_variables
model = model_from_variant(TINY_VARIANT)
rng = np.random.default_rng(0)
sequences = {f's{i}': {'blurry': rng.integers(0, 256, (t, 20, 24, 3), dtype=np.uint8),
                       'sharp': rng.integers(0, 256, (t, 20, 24, 3), dtype=np.uint8),
                       'mmp': rng.uniform(0, 1, (t, 20, 24, 1)).astype(np.float32)}
             for i, t in enumerate((7, 9, 13))}
variables = init_variables(model)
mesh = sharding.make_mesh()
report, strips = evaluate.MMPRNNEvaluator(model, chunk_frames=6)(variables, sequences, mesh)
compiled = evaluate._deblur._cache_size()
untimed = lambda r: {k: v for k, v in r.items() if k not in evaluate.TIMING_KEYS}
rounded = evaluate.MMPRNNEvaluator(model, chunk_frames=6, quantization='round')(variables, sequences, mesh)[0]
recompiled = evaluate._deblur._cache_size() - compiled  # a second evaluation reuses the programs
assert report['seconds_per_frame'] > 0 and report['devices'].endswith(f'x {jax.device_count()}')
assert untimed(rounded) != untimed(report) and rounded['quantization'] == 'round'
report, rounded = untimed(report), untimed(rounded)
assert report['quantization'] == 'truncate' and report['count'] == rounded['count']
l1, _ = evaluate.MMPNetEvaluator()(prior_variables(variables), sequences, mesh)
print(json.dumps({'devices': jax.device_count(), 'mmprnn': report, 'mmpnet': l1, 'strips': sorted(strips),
                  'recompiled': recompiled}))
'''


@pytest.mark.slow
def test_evaluation_on_one_and_eight_devices_gives_the_same_metrics(cpu_devices_run):
    """Sequences of 7, 9 and 13 frames, chunks of 6: 10 chunks, 29 frames; neither divides by 8.
    Evaluating twice compiles nothing new (the evaluation in the training loop relies on it)."""
    reports = []
    for devices in (1, 8):
        result = cpu_devices_run(EVAL_SCRIPT, devices)
        assert result.returncode == 0, result.stderr[-3000:]
        reports.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert [r.pop('devices') for r in reports] == [1, 8]
    assert reports[0] == reports[1]
    report = reports[0]['mmprnn']
    assert report['count'] == (7 - 4) + (9 - 4) + (13 - 4)
    assert report['sequences']['s2'] == {**report['sequences']['s2'], 'frames': '2..10', 'count': 9}
    assert reports[0]['mmpnet']['count'] == 7 + 9 + 13
    assert reports[0]['strips'] == ['s0_frame3', 's1_frame4']
    assert reports[0]['recompiled'] == 0
