"""Losses against the original's `train/loss.py` (values stored by tests/references/make_reference.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax import losses
from tests import original_reference as ref


@pytest.fixture(scope='module')
def reference():
    return dict(np.load(ref.REFERENCE_FILE))


def test_charbonnier_equals_the_original(reference):
    value = losses.charbonnier(jnp.asarray(reference['loss_output']), jnp.asarray(reference['loss_target']))
    assert float(value) == pytest.approx(float(reference['loss_charbonnier']), rel=1e-5)


def test_gradient_loss_equals_the_original(reference):
    value = losses.gradient_l1(jnp.asarray(reference['loss_output']), jnp.asarray(reference['loss_target']))
    assert float(value) == pytest.approx(float(reference['loss_gradient']), rel=1e-5)


def test_identical_frames_cost_only_eps():
    frames = jax.random.uniform(jax.random.key(0), (1, 2, 8, 8, 3))
    assert float(losses.charbonnier(frames, frames)) == pytest.approx(losses.CHARBONNIER_EPS)
    assert float(losses.gradient_l1(frames, frames)) == 0.0


def test_total_loss_weights_and_switches():
    output, target = jnp.zeros((1, 1, 8, 8, 3)), jnp.full((1, 1, 8, 8, 3), 0.1)
    prior_of = lambda frames: jnp.full(frames.shape[:-1] + (1,), 0.25)
    total, terms = losses.total_loss(output, target, prior_of)
    assert set(terms) == {'charbonnier', 'gradient', 'motion_magnitude'}
    assert float(terms['motion_magnitude']) == pytest.approx(0.25)
    expected = terms['charbonnier'] + 0.5 * terms['gradient'] + 0.25
    assert float(total) == pytest.approx(float(expected))
    total, terms = losses.total_loss(output, target, weights={'charbonnier': 1.0, 'gradient': 0.5})
    assert set(terms) == {'charbonnier', 'gradient'}
    with pytest.raises(ValueError, match='needs MMP-Net'):
        losses.total_loss(output, target)
