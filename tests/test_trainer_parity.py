"""Stage 2 trained with the released recipe, step for step beside the authors' training loop.

The reference (tests/references/make_trainer_reference.py, its docstring has the command) ran the
original's train/dp.py loop pieces on the tiny MMP-RNN with seeded random weights: Adam on the
parameters (the frozen MMP-Net's have no gradient), `clip_grad_norm_` (at TRAINER_CLIP_NORM, as the
released 20 never bites here), the cosine stepped per epoch to 1e-8, Charbonnier + 0.5 gradient,
`model.train()` (the prior's running statistics moving). Here the same weights and batches go
through configs/released_gopro.py's optimizer, schedule, loss and step (`mmp_jax.stages`), with
TRAINER_STEPS_PER_EPOCH steps per epoch so that the per-epoch stepping shows within TRAINER_STEPS
steps."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from mmp_jax import stages, train_step
from mmp_jax.configs import gopro, mmpnet_gopro, released_bsd, released_gopro
from mmp_jax.convert import convert_state_dict
from mmp_jax.models.mmp_rnn import MMPRNN
from tests import original_reference as ref

pytestmark = pytest.mark.skipif(not ref.TRAINER_FILE.exists(), reason=f'{ref.TRAINER_FILE.name} absent')
# The forward pass agrees within 1e-5 (test_prior_batch_norm); a float32 loss summed in another
# order differs by a few ulp of its magnitude (~0.3): 1e-6.
LOSS_TOLERANCE = 1e-6  # measured 1.8e-7
# Weights: the gradients are sums over every pixel in another order (relative ~1e-6 of each),
# Adam divides each by its own running RMS, so a weight moves by lr * (1 +- ~1e-6) per step,
# except where a gradient is near zero and its last bits set the update's size; measured:
# 2.4e-7 at most over weights that moved ~2e-3 each. PARAMETER_TOLERANCE is ten times that.
PARAMETER_TOLERANCE = 2.5e-6
STATISTICS_TOLERANCE = 5e-6  # batch moments summed in another order; measured 5.7e-7


@pytest.fixture(scope='module')
def reference() -> dict:
    return dict(np.load(ref.TRAINER_FILE))


def released_config():
    config = released_gopro.get_config()
    assert config.mmprnn.clip_norm == 20.0 and config.mmprnn.lr_floor == ref.TRAINER_FLOOR
    config.mmprnn.update(num_steps=ref.TRAINER_STEPS, lr_steps_per_epoch=ref.TRAINER_STEPS_PER_EPOCH,
                         clip_norm=ref.TRAINER_CLIP_NORM)
    return config


@pytest.fixture(scope='module')
def trained() -> tuple[train_step.TrainState, list[float], list[float], dict]:
    """(state after the steps, learning rates, losses, the starting variables)."""
    config, stage = released_config(), stages.get('mmprnn')
    model = MMPRNN(prior_batch_norm=config.model.prior_batch_norm, **ref.TINY)
    variables = convert_state_dict(ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny']))
    optimizer = stage.optimizer(config)
    state = stages.get('mmprnn').create_state(variables, optimizer)
    step = jax.jit(stage.step(config, model, optimizer))
    rates, losses = [], []
    for number, (blurry, sharp) in enumerate(ref.trainer_batches()):
        batch = {'blurry': jnp.asarray(blurry / 255.0, jnp.float32), 'sharp': jnp.asarray(sharp / 255.0, jnp.float32)}
        rates.append(stage.learning_rate(config, number))
        state, metrics = step(state, batch)
        losses.append(float(metrics['loss']))
    return state, rates, losses, variables


def _flat(tree) -> dict:
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep='/').items()}


def _expected(reference, variables) -> dict:
    """The original's trained weights and statistics as our variables."""
    state = ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny'])
    state.update({k.split(':', 1)[1]: v for k, v in reference.items() if k.startswith(('param:', 'stat:'))})
    return convert_state_dict(state)


@pytest.mark.slow
def test_the_released_recipe_is_the_originals(reference, trained):
    config = released_config()
    assert (reference['grad_norm'] > ref.TRAINER_CLIP_NORM).sum() == 4  # clipped on four steps of six
    assert dict(stages.get('mmprnn').loss_weights(config)) == {'charbonnier': 1.0, 'gradient': 0.5,
                                                               'motion_magnitude': 0.0}
    _, rates, losses, _ = trained
    np.testing.assert_allclose(rates, reference['lr'], rtol=1e-6, atol=0)  # per epoch, to 1e-8
    np.testing.assert_allclose(losses, reference['loss'], rtol=0, atol=LOSS_TOLERANCE)


def test_every_trained_parameter_and_the_priors_statistics_match(reference, trained):
    state, _, _, variables = trained
    expected = _expected(reference, variables)
    trainable, frozen = train_step.split_frozen(expected['params'], stages.MMPRNNStage.frozen_path)
    got, want = _flat(state.params), _flat(trainable)
    assert got.keys() == want.keys() and len(want) == sum(k.startswith('param:') for k in reference)
    differences = np.concatenate([np.abs(got[k] - want[k]).ravel() for k in want])
    moved = np.concatenate([np.abs(want[k] - v).ravel() for k, v in _flat(train_step.split_frozen(
        variables['params'], stages.MMPRNNStage.frozen_path)[0]).items()])
    assert differences.max() <= PARAMETER_TOLERANCE
    assert np.quantile(moved, 0.5) > 100 * PARAMETER_TOLERANCE  # the weights did move
    assert all(np.array_equal(v, _flat(state.frozen)[k]) for k, v in _flat(frozen).items())  # MMP-Net's weights
    statistics_got, statistics_want = _flat(state.batch_stats), _flat(expected['batch_stats'])
    assert statistics_got.keys() == statistics_want.keys()
    assert max(np.abs(statistics_got[k] - statistics_want[k]).max() for k in statistics_want) <= STATISTICS_TOLERANCE


def test_the_released_presets_and_the_stage_one_preset_as_the_authors_trained():
    for module, steps_per_epoch in ((released_gopro, 243), (released_bsd, 697)):
        config = module.get_config()
        assert (config.mmprnn.lr_steps_per_epoch, config.mmprnn.lr_floor) == (steps_per_epoch, 1e-8)
        assert config.mmpnet.train_fraction == 0.5
    paper = mmpnet_gopro.get_config()
    assert paper.mmpnet.train_fraction == 1.0 and not paper.data.records_in_memory
    paper = gopro.get_config()  # the paper's cosine, per step to 0, stays the default
    paper.mmprnn.num_steps = ref.TRAINER_STEPS
    rates = [stages.get('mmprnn').learning_rate(paper, step) for step in range(ref.TRAINER_STEPS + 1)]
    assert np.all(np.diff(rates) < 0) and rates[-1] == 0
