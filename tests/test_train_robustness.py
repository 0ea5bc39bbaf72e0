"""The training loop against what goes wrong: divergence, damaged checkpoints, bad command lines."""
import logging
import shutil

import numpy as np
import pytest

from mmp_jax import train
from tests.test_train import _final_params, _main, records, tiny_config  # noqa: F401 (fixture)


def _stage_two_config(records, **train_fields):
    """`tiny_config`, stage 2 only (no MMP-Net, so no stage 1), no evaluation: seconds."""
    config = tiny_config(records, **train_fields)
    config.stages = ('mmprnn',)
    config.model.use_mmam = False
    config.mmprnn.loss_weights.motion_magnitude = 0.0
    config.data.eval_records = ''
    return config


def _steps(workdir) -> list[str]:
    return sorted(p.name for p in (workdir / 'checkpoints' / 'mmprnn').iterdir() if p.is_dir())


def _max_abs(leaves) -> float:
    return max(float(np.abs(leaf).max()) for _, leaf in leaves)


@pytest.mark.slow
def test_a_diverged_run_keeps_a_sound_checkpoint_that_resumes_at_a_lower_rate(records, tmp_path):
    train.train_and_evaluate(_stage_two_config(records, num_steps=2, checkpoint_every=1), tmp_path)
    with pytest.raises(train.TrainingError) as error:  # step 3's weights, ~1e30, are finite; their loss is not
        train.train_and_evaluate(_stage_two_config(records, learning_rate=1e30, checkpoint_every=1), tmp_path)
    kept = tmp_path / 'checkpoints' / 'mmprnn' / '2'
    assert 'mmprnn step 3: the loss is not finite' in str(error.value)
    assert f'the last good checkpoint (step 2) is kept in {kept}' in str(error.value)
    assert _steps(tmp_path) == ['1', '2']
    step, leaves = _final_params(tmp_path)
    assert step == 2 and _max_abs(leaves) < 10

    train.train_and_evaluate(_stage_two_config(records, learning_rate=1e-3), tmp_path)
    step, leaves = _final_params(tmp_path)
    assert step == 6 and all(np.isfinite(leaf).all() for _, leaf in leaves)


@pytest.fixture(scope='module')
def two_checkpoints(records, tmp_path_factory):
    """A stage-2 workdir with the checkpoints of steps 2 and 4."""
    workdir = tmp_path_factory.mktemp('two_checkpoints')
    train.train_and_evaluate(_stage_two_config(records, num_steps=4), workdir)
    assert _steps(workdir) == ['2', '4']
    return workdir


def _truncate_largest_array_file(step_dir):
    """Cut the largest of orbax's array data files (those in a `d/` folder) to half. Not the largest file of
    any kind: how orbax splits the arrays into data files varies from run to run, and where the files are small the
    JSON `_METADATA` is the largest file, which fails differently."""
    data_files = [p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd']
    largest = max(data_files, key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[:largest.stat().st_size // 2])


def _remove_state(step_dir):
    shutil.rmtree(step_dir / 'state')


@pytest.mark.parametrize('damage, problem', [(_truncate_largest_array_file, 'ValueError: OUT_OF_RANGE'),
                                             (_remove_state, 'KeyError')])
@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_reported_and_the_one_before_restored(records, two_checkpoints, tmp_path,
                                                                            caplog, damage, problem):
    workdir = tmp_path / 'run'
    shutil.copytree(two_checkpoints, workdir)
    damage(workdir / 'checkpoints' / 'mmprnn' / '4')
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate(_stage_two_config(records), workdir)
    warning = f'{workdir}/checkpoints/mmprnn/4: checkpoint damaged, not restored ({problem}'
    assert any(warning in record.getMessage() for record in caplog.records), caplog.text
    assert _steps(workdir) == ['2', '4', '4.damaged', '6']  # it resumed from 2 and saved 4 again
    step, leaves = _final_params(workdir)
    assert step == 6 and all(np.isfinite(leaf).all() for _, leaf in leaves)


@pytest.mark.slow
def test_no_checkpoint_restoring_is_a_clear_error(records, two_checkpoints, tmp_path):
    workdir = tmp_path / 'run'
    shutil.copytree(two_checkpoints, workdir)
    for step in ('2', '4'):
        _remove_state(workdir / 'checkpoints' / 'mmprnn' / step)
    with pytest.raises(train.TrainingError, match='no checkpoint restores .step 4: KeyError'):
        train.train_and_evaluate(_stage_two_config(records), workdir)
    assert _steps(workdir) == ['2', '4']  # nothing set aside


def _bad_workdir(tmp_path):
    (tmp_path / 'a_file').write_text('')
    return tmp_path / 'a_file' / 'run', []


def _config_of_an_earlier_version(tmp_path):
    """A config file that still sets config.train (now config.mmprnn)."""
    path = tmp_path / 'old.py'
    path.write_text('from configs import test\n\n\ndef get_config():\n    config = test.get_config()\n'
                    '    config.train = config.mmprnn\n    return config\n')
    return tmp_path / 'run', [f'--config={path}']


def _damaged_metrics(tmp_path):
    (tmp_path / 'run' / 'eval').mkdir(parents=True)
    (tmp_path / 'run' / 'eval' / 'metrics.json').write_text('{"mmpnet": {')
    return tmp_path / 'run', []


@pytest.mark.parametrize('case, line', [
    (lambda tmp: (tmp / 'run', ['--config.mmprnn.nonexistent=3']),
     'mmp_jax: error: --config.mmprnn.nonexistent: no such field in the config'),
    (lambda tmp: (tmp / 'run', ['--config.train.num_steps=3']),
     'mmp_jax: error: --config.train.num_steps: config.train is now config.mmprnn; use --config.mmprnn.num_steps'),
    (lambda tmp: (tmp / 'run', ['--config=configs/nope.py']),
     "mmp_jax: error: --config=configs/nope.py: [Errno 2] No such file or directory: 'configs/nope.py'"),
    (_bad_workdir, ': Not a directory'),
    (_config_of_an_earlier_version, 'mmp_jax: config.train is now config.mmprnn'),
    (lambda tmp: (tmp / 'run', ['--config.mmprnn.frames=10']),
     "mmp_jax: error: --config.mmprnn.frames: config.mmprnn.frames is now the variant's F"),
    (_damaged_metrics, 'metrics.json: not valid JSON (')])
def test_main_reports_bad_input_in_one_line(tmp_path, case, line):
    workdir, overrides = case(tmp_path)
    run = _main(workdir, *overrides)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 2, stderr[-3000:]
    last = stderr.splitlines()[-1]
    assert last.startswith('mmp_jax: ') and line in last and 'Traceback' not in stderr
