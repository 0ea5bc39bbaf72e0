"""The recurrence (nn.scan) against the step API, compilation, and the ablation switches."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_variant
from tests.conftest import TINY_MMPRNN, TINY_VARIANT, init_variables

H, W = 16, 20


def _frames(length: int, seed: int = 0, batch: int = 1) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (batch, length, H, W, 3))


@pytest.fixture(scope='module')
def tiny():
    model = MMPRNN(**TINY_MMPRNN)
    return model, init_variables(model, 1, _frames(5))


@pytest.mark.slow
def test_scan_equals_step_api(tiny):
    model, variables = tiny
    frames = _frames(8, batch=2)
    scanned = jax.jit(model.apply)(variables, frames)

    encode = jax.jit(lambda v, c, x: model.apply(v, c, x, method=model.encode))
    decode = jax.jit(lambda v, f, x: model.apply(v, f, x, method=model.decode))
    carry = model.init_carry(2, H, W)
    feats = []
    for t in range(frames.shape[1]):
        carry, f, prior = encode(variables, carry, frames[:, t])
        assert prior.shape == (2, H, W, 1)
        feats.append(f)
    stepped = [decode(variables, jnp.concatenate(feats[t - 2:t + 3], axis=-1), frames[:, t])
               for t in range(2, 6)]
    assert scanned.shape == (2, 4, H, W, 3)
    np.testing.assert_allclose(scanned, jnp.stack(stepped, axis=1), atol=1e-5)
    looped = jax.jit(model.clone(scan_unroll=False).apply)(variables, frames)  # the default unrolls
    np.testing.assert_allclose(scanned, looped, atol=1e-5)


@pytest.mark.slow
def test_extract_then_recur_equals_encode_for_a_batch_of_videos(tiny):
    """Two videos of 3 frames: `extract` on all 6 frames in one call, then `recur` over the 3
    in order, gives `encode`'s features, priors and final state frame by frame."""
    model, variables = tiny
    frames = _frames(3, batch=2)
    extract = jax.jit(lambda v, x: model.apply(v, x, method=model.extract))
    recur = jax.jit(lambda v, c, low: model.apply(v, c, low, method=model.recur))
    encode = jax.jit(lambda v, c, x: model.apply(v, c, x, method=model.encode))
    mids, priors = extract(variables, frames.reshape((6, H, W, 3)))
    carry, feats = recur(variables, model.init_carry(2, H, W), mids.reshape((2, 3) + mids.shape[1:]))
    priors = priors.reshape((2, 3, H, W, 1))
    stepped = model.init_carry(2, H, W)
    for t in range(3):
        stepped, f, prior = encode(variables, stepped, frames[:, t])
        np.testing.assert_allclose(feats[:, t], f, atol=1e-5)
        np.testing.assert_allclose(priors[:, t], prior, atol=1e-6)
    for ours, theirs in zip(carry, stepped):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.slow
def test_weights_are_shared_across_frames(tiny):
    _, variables = tiny
    kernel = variables['params']['cell']['F_B0']['kernel']
    assert kernel.shape == (5, 5, 3, TINY_MMPRNN['n_features'])  # no time axis: one set of weights


@pytest.mark.slow
def test_any_length_compiles_once_per_shape(tiny):
    model, variables = tiny
    encode = jax.jit(lambda v, x: model.apply(v, x, method=model.encode_sequence))
    for length in (2, 12):
        for seed in (0, 1):
            feats = encode(variables, _frames(length, seed))
            assert feats.shape == (1, length, H // 4, W // 4, 5 * TINY_MMPRNN['n_features'])
    assert encode._cache_size() == 2  # one compilation per sequence length
    out = jax.jit(model.apply)(variables, _frames(12))
    assert out.shape == (1, 8, H, W, 3) and bool(jnp.isfinite(out).all())
    # One scan in the traced program for any length (XLA unrolls it where scan_unroll says).
    sizes = [len(jax.make_jaxpr(model.apply)(variables, _frames(t)).eqns) for t in (6, 12)]
    assert sizes[0] == sizes[1]


@pytest.mark.slow
def test_frames_must_be_multiples_of_four(tiny):
    model, variables = tiny
    with pytest.raises(ValueError, match=r'multiples of 4; got shape \(1, 5, 18, 20, 3\)'):
        model.apply(variables, jnp.zeros((1, 5, 18, 20, 3)))
    with pytest.raises(ValueError, match=r'frames of 12x8 are too small for MMP-Net'):
        model.apply(variables, jnp.zeros((1, 5, 8, 12, 3)))
    with pytest.raises(ValueError, match='at least 5 frames; got 4'):
        model.apply(variables, _frames(4))


@pytest.mark.slow
def test_mmam_off_has_no_prior_and_runs():
    model = MMPRNN(use_mmam=False, **TINY_MMPRNN)
    variables = init_variables(model, 0, _frames(5))
    assert 'prior' not in variables['params']['cell'] and 'MMAM1' not in variables['params']['cell']
    assert 'batch_stats' not in variables
    assert jax.jit(model.apply)(variables, _frames(5)).shape == (1, 1, H, W, 3)


@pytest.mark.slow
def test_given_prior_is_used_and_required():
    model = MMPRNN(prior_source='given', **TINY_MMPRNN)
    priors = jnp.full((1, 6, H, W, 1), 0.3)
    variables = init_variables(model, 0, _frames(6), priors)
    assert 'prior' not in variables['params']['cell'] and 'MMAM1' in variables['params']['cell']
    apply = jax.jit(model.apply)
    a = apply(variables, _frames(6), priors)
    b = apply(variables, _frames(6), priors * 2)
    assert float(jnp.abs(a - b).max()) > 0  # the prior reaches the output
    with pytest.raises(ValueError, match="prior_source='given' needs a prior"):
        model.apply(variables, _frames(6))


def test_unknown_prior_source_and_activation_are_refused():
    with pytest.raises(ValueError, match="unknown prior_source 'flow'"):
        MMPRNN(prior_source='flow', **TINY_MMPRNN).init(jax.random.key(0), _frames(5))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MMPRNN(activation='swish', **TINY_MMPRNN).init(jax.random.key(0), _frames(5))


@pytest.mark.slow
def test_non_deblurred_feature_transmission_switch(tiny):
    model, variables = tiny
    frames = _frames(7)
    without = jax.jit(MMPRNN(transmit_ndf=False, **TINY_MMPRNN).apply)(variables, frames)  # same weights
    assert float(jnp.abs(jax.jit(model.apply)(variables, frames) - without).max()) > 0


def test_fusion_attention_switch_removes_its_weights():
    variables = jax.eval_shape(MMPRNN(fusion_attention=False, **TINY_MMPRNN).init, jax.random.key(0),
                               _frames(5))
    assert set(variables['params']['fusion']) == {'fusion'}


def test_the_tiny_variant_names_the_tiny_model():
    assert model_from_variant(TINY_VARIANT) == MMPRNN(**TINY_MMPRNN)
