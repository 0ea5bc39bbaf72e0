"""Our Flax port against the original PyTorch code, from stored references.

The references were made by running the original (sollynoay/MMP-RNN) with seeded random
weights on a tiny variant (A2B2C8) and 7 frames of 36x44:

    python tests/references/make_reference.py --original /path/to/MMP-RNN/MMP-RNN --paper-sizes

(see that script's docstring). The same weights are regenerated here from the recorded
key list, converted by `mmp_jax.checkpoint`, and run through our modules.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.convert import check_same_structure, convert_state_dict, torch_key_to_path
from mmp_jax.models import formulations
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import MMPRNN
from tests import original_reference as ref

TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def reference():
    return dict(np.load(ref.REFERENCE_FILE))


@pytest.fixture(scope='module')
def keys():
    return ref.load_keys()


def _frames(reference) -> jax.Array:
    return jnp.asarray(reference['frames'].astype(np.float32) / 255.0)


# The CPU's own formulations (Winograd, parts never concatenated) apply from
# `formulations.current().cpu_min_pixels` pixels; the references' 36x44 frames are below that at every
# level but the first: 'cpu_everywhere' lowers the bound to 0, so they run here on every map they
# can. 'gpu_padded' computes what a GPU program computes with channels padded to multiples of 8.
FORMULATIONS = {'as_sized': {}, 'cpu_everywhere': {'cpu_min_pixels': 0},
                'gpu_padded': {'platform': 'cuda', 'gpu_channel_multiple': 8}}


@pytest.mark.parametrize('formulation', FORMULATIONS)
def test_mmp_net_equals_original(reference, keys, formulation):
    variables = convert_state_dict(ref.random_state_dict(keys['mmp_net']))
    frames = _frames(reference)[0, :2]
    with formulations.using(**FORMULATIONS[formulation]):
        prior = jax.jit(MMPNet().apply)(variables, frames - 0.5)  # the original's normalised input
    expected = reference['mmp_net_prior']
    assert prior.shape == expected.shape == (2, ref.HEIGHT, ref.WIDTH, 1)
    assert np.abs(np.asarray(prior) - expected).max() <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize('attention, formulation', [(True, 'as_sized'), (False, 'as_sized'),
                                                    (True, 'cpu_everywhere'), (True, 'gpu_padded')],
                         ids=['outer_copy', 'inner_copy', 'outer_copy-cpu_everywhere', 'outer_copy-gpu_padded'])
def test_mmp_rnn_equals_original_over_7_frames(reference, keys, attention, formulation):
    model = MMPRNN(fusion_attention=attention, **ref.TINY)
    variables = convert_state_dict(ref.random_state_dict(keys['mmp_rnn_tiny']),
                                   drop_prefixes=() if attention else ('fusion.ca.',))
    with formulations.using(**FORMULATIONS[formulation]):
        out = jax.jit(model.apply)(variables, _frames(reference))
    expected = reference['mmp_rnn_attention' if attention else 'mmp_rnn_no_attention']
    assert out.shape == expected.shape == (1, ref.FRAMES - 4, ref.HEIGHT, ref.WIDTH, 3)
    # The original returns normalised frames (value - 0.5); ours are in [0, 1] units.
    assert np.abs(np.asarray(out) - 0.5 - expected).max() <= TOLERANCE


def test_the_two_original_copies_differ(reference):
    """Guards the test above: fusion attention changes the output, so both paths count."""
    assert np.abs(reference['mmp_rnn_attention'] - reference['mmp_rnn_no_attention']).max() > 1e-3


@pytest.mark.parametrize('name,model,shape', [
    ('mmp_net', MMPNet(), (1, 32, 32, 3)),
    ('mmp_rnn_full', MMPRNN(**ref.FULL), (1, 5, 32, 32, 3)),
    ('mmp_rnn_tiny', MMPRNN(**ref.TINY), (1, 5, 32, 32, 3)),
])
def test_parameter_tree_matches_original_keys(keys, name, model, shape):
    original = keys[name]
    zeros = {k: np.zeros(s, np.float32) for k, s in original.items()}
    converted = convert_state_dict(zeros)
    ours = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
    check_same_structure(converted, ours, name)  # raises on any difference
    n_ours = sum(len(jax.tree_util.tree_leaves(ours[c])) for c in ours)
    n_original = sum(torch_key_to_path(k, len(s)) is not None for k, s in original.items())
    assert n_ours == n_original


def test_conversion_transposes_kernels_and_maps_names():
    state = {'cell.F_R.RDBs.3.dense_layers.1.conv.weight': np.zeros((4, 5, 3, 3)),  # bare keys: see convert.unwrap
             'recons.model.0.weight': np.zeros((80, 32, 3, 3)),
             'cell.prior.inc.double_conv.1.running_var': np.ones(16),
             'cell.prior.inc.double_conv.1.weight': np.ones(16),
             'cell.prior.inc.double_conv.1.num_batches_tracked': np.zeros(()),
             'fusion.ca.conv_du.0.bias': np.zeros(3)}
    out = convert_state_dict(state, drop_prefixes=('fusion.ca.',))
    assert out['params']['cell']['F_R']['RDBs_3']['dense_layers_1']['conv']['kernel'].shape == (3, 3, 5, 4)
    assert out['params']['recons']['model_0']['kernel'].shape == (3, 3, 32, 80)
    assert out['params']['cell']['prior']['inc']['double_conv_1']['scale'].shape == (16,)
    assert out['batch_stats']['cell']['prior']['inc']['double_conv_1']['var'].shape == (16,)
    assert 'fusion' not in out['params']


def test_structure_check_names_the_problem():
    with pytest.raises(ValueError, match=r'ckpt.pth: does not fit the model: missing params/a/kernel'):
        check_same_structure({'params': {}}, {'params': {'a': {'kernel': np.zeros(2)}}}, 'ckpt.pth')
    with pytest.raises(ValueError, match=r'shape \(3,\), model expects \(2,\)'):
        check_same_structure({'p': np.zeros(3)}, {'p': np.zeros(2)}, 'x')
