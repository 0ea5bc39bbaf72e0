import shutil
import subprocess
import sys

import pytest

from configs import bsd, default, demo, gopro, mmpnet_gopro, released_bsd, released_gopro
from mmp_jax import stages
from mmp_jax.models.variants import model_from_config
from tests.conftest import REPO


def test_default_config_builds_the_paper_model():
    model = model_from_config(default.get_config().model)
    assert (model.n_blocks_a, model.n_blocks_b, model.n_features) == (9, 10, 18)
    assert model.fusion_attention and model.use_mmam and model.transmit_ndf and model.do_skip


def test_demo_config_trains_both_stages_of_a_small_model():
    config = demo.get_config()
    assert config.stages == ('mmpnet', 'mmprnn')
    assert model_from_config(config.model).n_features < 16


def test_job_configs_carry_the_paper_hyper_parameters():
    stage_one = mmpnet_gopro.get_config()
    assert stage_one.stages == ('mmpnet',)
    assert (stage_one.mmpnet.batch_size, stage_one.mmpnet.patch, stage_one.mmpnet.learning_rate) == (8, 512, 3e-4)
    for job, steps in ((gopro, 243_000), (bsd, 348_500)):
        config = job.get_config()
        assert config.stages == ('mmprnn',) and config.mmprnn.num_steps == steps
        assert (config.mmprnn.batch_size, stages.get('mmprnn').frames(config), config.mmprnn.patch) == (8, 8, 256)
        assert config.mmprnn.learning_rate == 5e-4
        assert dict(config.mmprnn.loss_weights) == {'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 1.0}


def test_unknown_model_field_is_refused():
    config = dict(default.get_config().model)
    config['use_mmp'] = False
    with pytest.raises(ValueError, match='unknown model config fields: use_mmp'):
        model_from_config(config)


def test_released_presets_train_as_the_authors_code():
    for job, steps in ((released_gopro, 243_000), (released_bsd, 348_500)):
        config = job.get_config()
        assert (stages.get('mmprnn').frames(config), config.mmprnn.patch, config.mmprnn.clip_norm) == (8, 512, 20.0)
        assert dict(config.mmprnn.loss_weights) == {'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 0.0}
        assert config.mmpnet.loss_weights.gradient == 0.5 and config.mmprnn.num_steps == steps
    assert default.get_config().mmpnet.loss_weights.gradient == 0.0  # the paper's stays the default


def test_a_training_sequence_has_the_variants_f_frames():
    config = default.get_config()
    config.model.variant = 'A9B10C18F10'
    assert stages.get('mmprnn').frames(config) == 10
    config.mmprnn.frames = 8  # the field of earlier versions
    with pytest.raises(ValueError, match="config.mmprnn.frames is now the variant's F"):
        stages.check_config(config)


LOAD_SCRIPT = """
import runpy, sys
for path in sys.argv[1:]:  # as config_flags loads a --config file: by path, not as a package's module
    print(path, runpy.run_path(path)['get_config']().stages)
"""


def test_config_files_load_where_only_the_package_is_installed(tmp_path):
    """As from a wheel (issue 27): `configs` not importable, only `mmp_jax` (linked into an empty
    folder); the installed config files, the checkout's `configs/*.py` and a copy of one all load."""
    (tmp_path / 'site').mkdir()
    (tmp_path / 'site' / 'mmp_jax').symlink_to(REPO / 'mmp_jax')
    copied = tmp_path / 'my_bsd.py'
    shutil.copy(REPO / 'configs' / 'bsd.py', copied)
    files = [*sorted((REPO / 'mmp_jax' / 'configs').glob('[!_]*.py')),
             *sorted((REPO / 'configs').glob('[!_]*.py')), copied]
    run = subprocess.run([sys.executable, '-c', LOAD_SCRIPT, *map(str, files)], cwd=tmp_path, capture_output=True,
                         text=True, env={'PYTHONPATH': str(tmp_path / 'site'), 'JAX_PLATFORMS': 'cpu'}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(files) == 2 * 8 + 1 and len(run.stdout.splitlines()) == len(files)
    assert run.stdout.count("('mmprnn',)") == 2 * 5 + 1  # bsd, default, gopro, released_*; and the copy
