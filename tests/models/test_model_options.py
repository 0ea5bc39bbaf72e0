"""The model's compute dtype and rematerialisation: they change the cost, not the parameters,
and the outputs only by bfloat16's rounding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.checkpoint import load_model, save_model
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import MODEL_DEFAULTS
from tests.conftest import TINY_MMPRNN, TINY_VARIANT, init_variables

MODEL = MMPRNN(**TINY_MMPRNN, scan_unroll=False)


def _frames(seed: int = 0) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (1, 5, 16, 16, 3))


@pytest.fixture(scope='module')
def variables():
    return init_variables(MODEL, 1, _frames())


def _loss_and_grads(model: MMPRNN, variables, frames):
    loss = lambda params: jnp.mean(jnp.square(model.apply({**variables, 'params': params}, frames) - frames[:, 2:3]))
    return jax.jit(jax.value_and_grad(loss))(variables['params'])


@pytest.mark.slow
def test_remat_gives_the_same_loss_and_gradients(variables):
    frames = _frames(2)
    loss, grads = _loss_and_grads(MODEL, variables, frames)
    loss_remat, grads_remat = _loss_and_grads(MODEL.clone(remat='full'), variables, frames)
    np.testing.assert_allclose(loss_remat, loss, rtol=1e-6)
    for got, want in zip(jax.tree.leaves(grads_remat), jax.tree.leaves(grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(grads['cell']['F_B0']['kernel']).sum()) > 0


@pytest.mark.slow
def test_bfloat16_computes_in_bfloat16_with_float32_parameters(variables):
    bf16 = MODEL.clone(dtype='bfloat16')
    shapes = jax.eval_shape(bf16.init, jax.random.key(1), _frames())
    assert {leaf.dtype for leaf in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
    assert 'bf16[1,16,16,4]' in str(jax.make_jaxpr(bf16.apply)(variables, _frames()))  # F_B0's output
    frames = _frames(3)
    want = jax.jit(MODEL.apply)(variables, frames)
    got = jax.jit(bf16.apply)(variables, frames)
    assert got.dtype == jnp.float32
    diff = np.abs(np.asarray(got) - np.asarray(want))
    assert 0 < diff.mean() < 0.02
    _, grads = _loss_and_grads(bf16, variables, frames)
    assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_unknown_options_are_refused(variables):
    for fields, message in (({'dtype': 'float16'}, "unknown dtype 'float16'"),
                            ({'remat': 'some'}, "unknown remat 'some'"),
                            ({'remat': 'full', 'scan_unroll': True}, 'needs scan_unroll=False')):
        with pytest.raises(ValueError, match=message):
            jax.eval_shape(MODEL.clone(**fields).apply, variables, _frames())


def test_an_export_without_the_new_keys_loads_with_the_defaults(tmp_path, variables):
    new_keys = ('dtype', 'remat', 'prior_batch_norm')
    old_config = {k: v for k, v in MODEL_DEFAULTS.items() if k not in new_keys}
    old_config.update(variant=TINY_VARIANT, scan_unroll=False)
    save_model(tmp_path / 'model', variables, old_config)
    model, restored, config = load_model(tmp_path / 'model')
    assert config == old_config
    assert tuple(getattr(model, k) for k in new_keys) == ('float32', 'none', 'running') \
        == tuple(MODEL_DEFAULTS[k] for k in new_keys)
    np.testing.assert_array_equal(restored['params']['skip']['kernel'], variables['params']['skip']['kernel'])
