"""MMP-Net's BatchNorm in stage-2 training (`config.model.prior_batch_norm`).

'batch' is the released code's: its `model.train()` (train/dp.py) reaches the frozen MMP-Net,
which then normalises each frame with the batch's statistics and updates its running ones
(PyTorch's momentum 0.1, the running variance from the unbiased batch variance). The reference
was made by running the original in training mode on the tiny variant with seeded random
weights (see its script for the command):

    /tmp/torchenv/bin/python tests/references/make_prior_batch_norm_reference.py --original /tmp/MMP-RNN/MMP-RNN

'running' (the default, the paper's frozen prior) runs on the running statistics and leaves
them unchanged. Frames `[B, T, H, W, 3]` in [0, 1], priors `[B, T, H, W, 1]` in [0, 1].
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import configs.gopro
import configs.released_bsd
import configs.released_gopro
from mmp_jax import stages, starting_points
from mmp_jax.convert import convert_state_dict
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import MMPRNN, prior_variables
from mmp_jax.models.variants import MODEL_DEFAULTS
from tests import original_reference as ref
from tests.conftest import TINY_MMPRNN, init_variables

TOLERANCE = 1e-5
needs_reference = pytest.mark.skipif(not ref.PRIOR_BATCH_NORM_FILE.exists(),
                                     reason=f'{ref.PRIOR_BATCH_NORM_FILE.name} absent')


@pytest.fixture(scope='module')
def reference() -> dict:
    return dict(np.load(ref.PRIOR_BATCH_NORM_FILE))


@pytest.fixture(scope='module')
def state() -> dict:
    """The original's tiny MMP-RNN state_dict (seeded random weights, as the reference's)."""
    return ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny'])


def _frames(reference) -> jax.Array:
    return jnp.asarray(reference['frames'].astype(np.float32) / 255.0)


def _after_forward(state, reference) -> dict:
    """Our variables of the state_dict as the original left it: its running statistics replaced
    by the reference's, through the converter."""
    stats = {k: v for k, v in reference.items() if k.startswith('cell.prior.')}
    return convert_state_dict({**state, **stats})


def _differences(got: dict, want: dict) -> dict:
    """'path' -> largest absolute difference, over the same tree."""
    got, want = traverse_util.flatten_dict(got, sep='/'), traverse_util.flatten_dict(want, sep='/')
    assert got.keys() == want.keys()
    return {k: float(np.abs(np.asarray(got[k]) - np.asarray(want[k])).max()) for k in got}


@needs_reference
def test_mmp_net_frame_by_frame_equals_the_originals_training_mode(reference, state):
    """The prior of each frame, and the running statistics after the T frames, as the cell runs it."""
    variables = prior_variables(convert_state_dict(state))
    stats, frames = variables['batch_stats'], _frames(reference)
    apply = jax.jit(lambda stats, x: MMPNet(torch_batch_norm=True).apply(
        {'params': variables['params'], 'batch_stats': stats}, x - 0.5, train=True, mutable=['batch_stats']))
    for t in range(frames.shape[1]):
        prior, updates = apply(stats, frames[:, t])
        stats = updates['batch_stats']
        assert np.abs(np.asarray(prior) - reference['prior'][:, t]).max() <= TOLERANCE
    expected = prior_variables(_after_forward(state, reference))['batch_stats']
    assert max(_differences(stats, expected).values()) <= TOLERANCE


@pytest.mark.slow
@needs_reference
def test_mmp_rnn_with_batch_statistics_equals_the_originals_training_forward(reference, state):
    model = MMPRNN(prior_batch_norm='batch', **ref.TINY)
    variables = convert_state_dict(state)
    out, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))(
        variables, _frames(reference))
    assert out.shape == reference['output'].shape == (2, 1, 32, 32, 3)
    assert np.abs(np.asarray(out) - 0.5 - reference['output']).max() <= TOLERANCE
    assert max(_differences(updates['batch_stats'], _after_forward(state, reference)['batch_stats']).values()) \
        <= TOLERANCE
    # The reference's priors are not those of the running statistics (which evaluation uses).
    frames = _frames(reference).reshape((-1, 32, 32, 3))
    _, evaluated = jax.jit(lambda v, x: model.apply(v, x, method='extract'))(variables, frames)
    assert np.abs(np.asarray(evaluated) - reference['prior'].reshape(evaluated.shape)).max() > 0.05


@pytest.mark.slow
@needs_reference
def test_running_statistics_by_default_in_training_too(reference, state):
    model = MMPRNN(**ref.TINY)
    assert model.prior_batch_norm == MODEL_DEFAULTS['prior_batch_norm'] == 'running'
    variables = convert_state_dict(state)
    frames = _frames(reference)
    out, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))(variables, frames)
    assert max(_differences(updates['batch_stats'], variables['batch_stats']).values()) == 0
    np.testing.assert_array_equal(out, jax.jit(model.apply)(variables, frames))


@pytest.mark.slow
def test_a_training_step_with_batch_statistics_updates_them_and_keeps_the_weights():
    model = MMPRNN(**TINY_MMPRNN, prior_batch_norm='batch')
    rng = np.random.default_rng(0)
    batch = {'blurry': rng.uniform(0, 1, (2, 5, 16, 16, 3)).astype(np.float32),
             'sharp': rng.uniform(0, 1, (2, 5, 16, 16, 3)).astype(np.float32),
             'mmp': rng.uniform(0, 1, (2, 5, 16, 16, 1)).astype(np.float32)}
    variables = init_variables(model, 0, batch['blurry'])
    optimizer = stages.get('mmprnn').make_optimizer(1e-3, 10)
    before = stages.get('mmprnn').create_state(variables, optimizer)
    after, _ = jax.jit(stages.get('mmprnn').make_step(model, optimizer))(before, batch)
    assert max(_differences(after.frozen, before.frozen).values()) == 0  # MMP-Net's weights
    assert max(_differences(after.params, before.params).values()) > 0
    changed = _differences(after.batch_stats, before.batch_stats)
    assert changed and all(k.startswith('cell/prior/') for k in changed)  # the prior's are all there are
    assert min(changed.values()) > 0


def test_the_switch_is_checked_and_set_by_the_released_presets_only():
    assert configs.released_gopro.get_config().model.prior_batch_norm == 'batch'
    assert configs.released_bsd.get_config().model.prior_batch_norm == 'batch'
    assert configs.gopro.get_config().model.prior_batch_norm == 'running'
    with pytest.raises(ValueError, match="unknown prior_batch_norm 'train'"):
        jax.eval_shape(MMPRNN(prior_batch_norm='train', **ref.TINY).init, jax.random.key(0),
                       jnp.zeros((1, 5, 16, 16, 3)))


def test_starting_from_other_weights_may_change_the_switch():
    """A converted or exported model (with the field or, older, without it) fine-tunes with
    either: the weights compute the same; a resume keeps it (`Stage.resume_settings`)."""
    stored = {k: v for k, v in MODEL_DEFAULTS.items() if k != 'prior_batch_norm'}
    for configured in ('batch', 'running'):
        assert starting_points.model_differences(stored, {**stored, 'prior_batch_norm': configured}) == []
    config = configs.released_gopro.get_config()
    assert stages.get('mmprnn').resume_settings(config)['model.prior_batch_norm'] == 'batch'
