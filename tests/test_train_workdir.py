"""What a training workdir keeps: every run's config, the best evaluated model, exports of any
kept step, the learning rate in the log; a resume with other settings refused; all in a run
mixing two records folders."""
import json
import logging

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import traverse_util

from mmp_jax import checkpoint, modes, stages, train
from mmp_jax.data import input_pipeline
from tests.test_train import records  # noqa: F401 (a fixture)
from tests.test_train_robustness import _stage_two_config


def _config(records):  # noqa: F811 (the fixture)
    """Stage 2 alone (`_stage_two_config`), 4 steps, each checkpointed (the latest 2 kept),
    evaluated at steps 2 and 4, trained on two records folders mixed half and half."""
    config = _stage_two_config(records, num_steps=4, checkpoint_every=1, log_every=2, eval_every=2)
    config.keep_checkpoints = 2
    config.data.update(train_records=f'{records / "train"},{records / "eval"}', train_weights='1,1',
                       eval_records=str(records / 'eval'))
    return config


def _flat(directory) -> dict:
    return traverse_util.flatten_dict(checkpoint.load_model(directory)[1], sep='/')


def _checkpoint_params(workdir, step) -> dict:
    with checkpoint.training_manager(workdir, 'mmprnn', 2) as manager:
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
    return traverse_util.flatten_dict(state['params'], sep='/')


@pytest.mark.slow
def test_the_workdir_keeps_configs_the_best_model_and_exports_any_step(records, tmp_path, caplog):  # noqa: F811
    config = _config(records)
    with caplog.at_level(logging.INFO):
        report = train.train_and_evaluate(config, tmp_path)['mmprnn']
    rate = config.mmprnn.learning_rate * 0.5 * (1 + np.cos(np.pi * 1 / 4))  # cosine schedule at step 1
    assert 'mmprnn step 2: ' in caplog.text and f'learning_rate {rate:.3g}' in caplog.text

    windows = input_pipeline.train_windows(config.data.train_records, config.data.train_weights,
                                           stages.get('mmprnn').frames(config))
    folders = [int(input_pipeline.item_plan(windows, g, 16, config.seed)[0] >= windows.offsets[1]) for g in range(8)]
    assert len(windows.offsets) == 3 and set(folders) == {0, 1}  # the run's 4 x 2 items: both folders

    runs = json.loads((tmp_path / 'config.json').read_text())
    assert len(runs) == 1 and runs[0]['config']['model']['use_mmam'] is False and runs[0]['command']
    assert runs[0]['mode'] == 'train'

    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['mmprnn']
    best = metrics['best']
    assert best == report['best'] and best['step'] in (2, 4) and best['psnr'] >= metrics['psnr']
    exported, kept = _flat(tmp_path / 'model'), _flat(tmp_path / 'checkpoints' / 'mmprnn_best')
    assert exported.keys() == kept.keys() and all(np.array_equal(exported[k], kept[k]) for k in kept)

    config.export.step = 3  # a middle step, still kept
    modes.export_checkpoint(config, tmp_path)
    params = {f'params/{k}': v for k, v in _checkpoint_params(tmp_path, 3).items()}
    exported = _flat(tmp_path / 'model')
    assert all(np.array_equal(exported[k], v) for k, v in params.items())
    assert not np.array_equal(exported['params/skip/kernel'], kept['params/skip/kernel'])  # best: step 2 or 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == []  # nothing left beside
    runs = json.loads((tmp_path / 'config.json').read_text())
    assert [run['mode'] for run in runs] == ['train', 'export'] and runs[1]['config']['export']['step'] == 3

    config.export.step = 1  # not kept
    with pytest.raises(train.TrainingError, match=r'no checkpoint of step 1 to export \(steps kept: 3, 4\)'):
        modes.export_checkpoint(config, tmp_path)

    config.mmprnn.num_steps = 6
    config.model.transmit_ndf = False
    with pytest.raises(train.TrainingError, match='model.transmit_ndf: checkpoint True, config False') as error:
        train.train_and_evaluate(config, tmp_path)
    assert 'seed' not in str(error.value)
    config.model.transmit_ndf = True
    config.data.train_weights = '1,2'
    with pytest.raises(train.TrainingError, match="data.train_weights: checkpoint '1,1', config '1,2'"):
        train.train_and_evaluate(config, tmp_path)
    assert len(json.loads((tmp_path / 'config.json').read_text())) == 4  # the export refused above is not a run
