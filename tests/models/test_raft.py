"""RAFT against the official implementation (princeton-vl/RAFT), from stored references.

Made by `python tests/references/make_reference.py --original ... --raft /path/to/RAFT/core`: seeded
random weights (regenerated here from the recorded key lists), 3 iterations, a 128x160 pair.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.data.synthetic import make_scene
from mmp_jax.convert import check_same_structure, convert_raft_state_dict
from mmp_jax.models.raft import RAFT, raft_flow
from mmp_jax.raft_backend import raft_backend
from tests import original_reference as ref
from tests.conftest import init_variables


@pytest.fixture(scope='module')
def reference():
    return dict(np.load(ref.REFERENCE_FILE))


@pytest.mark.slow
@pytest.mark.parametrize('size', ['small', 'large'])
def test_raft_equals_the_official_implementation(reference, size):
    model = RAFT(size, iters=ref.RAFT_ITERS)
    variables = convert_raft_state_dict(ref.random_state_dict(ref.load_keys()[f'raft_{size}']))
    image1, image2 = (jnp.asarray(reference[k])[None] for k in ('raft_image1', 'raft_image2'))
    check_same_structure(variables, jax.eval_shape(model.init, jax.random.key(0), image1, image2), size)
    flow = jax.jit(model.apply)(variables, image1, image2)
    expected = reference[f'raft_{size}_flow']
    assert flow.shape == expected.shape == (1, 128, 160, 2)
    assert np.abs(expected).max() > 0.1  # the reference moves
    assert np.abs(np.asarray(flow) - expected).max() <= 1e-4


@pytest.mark.slow
def test_raft_flow_pads_and_crops_any_size():
    model = RAFT('small', iters=1)
    images = jnp.zeros((1, 130, 141, 3))
    variables = init_variables(model, 0, jnp.zeros((1, 128, 128, 3)), jnp.zeros((1, 128, 128, 3)))
    flow = jax.jit(lambda v, a, b: raft_flow(model, v, a, b))(variables, images, images)
    assert flow.shape == (1, 130, 141, 2)
    with pytest.raises(ValueError, match='multiples of 8; got 130x141'):
        model.apply(variables, images, images)
    with pytest.raises(ValueError, match='at least 128x128'):
        model.apply(variables, images[:, :64, :64], images[:, :64, :64])


@pytest.mark.slow
def test_raft_backend_reads_official_keys_and_gives_both_directions(tmp_path):
    state = ref.random_state_dict(ref.load_keys()['raft_small'])
    np.savez(tmp_path / 'raft-small.npz', **{f'module.{k}': v for k, v in state.items()})
    flows = raft_backend(tmp_path / 'raft-small.npz', 'small', iters=2, batch=3)  # 4 pairs: 3 + 1 padded
    scene = make_scene(0, length=3, height=128, width=136)
    forward, backward = flows(scene.frames)
    assert forward.shape == backward.shape == (2, 128, 136, 2)
    assert np.isfinite(forward).all() and not np.array_equal(forward, backward)
    one = raft_backend(tmp_path / 'raft-small.npz', 'small', iters=2, batch=1)(scene.frames[1:])
    np.testing.assert_allclose(forward[1], one[0][0], atol=1e-3)
    np.testing.assert_allclose(backward[1], one[1][0], atol=1e-3)
    with pytest.raises(FileNotFoundError, match='raft-things.pth'):
        raft_backend(tmp_path / 'missing.pth')
