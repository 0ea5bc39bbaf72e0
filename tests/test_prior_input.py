"""MMP-Net inside MMP-RNN has one owner (`models/mmp_rnn.py`): under every `centralize` /
`normalize` setting it sees the same input in the cell, the motion magnitude loss, the
evaluation's heat maps and stage 1's training step."""
import jax
import numpy as np
import pytest

from configs import default
from mmp_jax import evaluate, stages
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import prior_variables
from mmp_jax.models.variants import model_from_variant
from tests.conftest import TINY_VARIANT

SETTINGS = [(True, True), (True, False), (False, True), (False, False)]


def _expected(frames: np.ndarray, centralize: bool, normalize: bool) -> np.ndarray:
    x = frames - 0.5 if centralize else frames
    return x if normalize else x * 255.0


@pytest.mark.slow
@pytest.mark.parametrize('centralize, normalize', SETTINGS)
def test_mmpnet_sees_the_same_input_everywhere(monkeypatch, centralize, normalize):
    model = model_from_variant(TINY_VARIANT).clone(centralize=centralize, normalize=normalize)
    variables = model.init(jax.random.key(0), np.zeros((1, 5, 16, 16, 3), np.float32))
    seen = []
    call = MMPNet.__call__

    def recording(self, x, train=False):
        seen.append(np.asarray(x))
        return call(self, x, train)
    monkeypatch.setattr(MMPNet, '__call__', recording)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    frames = pixels.astype(np.float32) / 255.0
    config = default.get_config()
    config.model.update(centralize=centralize, normalize=normalize)
    model.apply(variables, model.init_carry(1, 16, 16), frames, method=model.encode)
    stages.prior_function(model, variables)(frames)
    with jax.disable_jit():  # the evaluation's prior is jitted
        evaluate._prior(prior_variables(variables), pixels[0], model.scaling)
    stage = stages.get('mmpnet')
    optimizer = stage.optimizer(config)
    state = stages.get('mmpnet').create_state(prior_variables(variables), optimizer)
    stage.step(config, MMPNet(), optimizer)(state, {'blurry': frames[:, None], 'mmp': frames[:, None, ..., :1]})
    assert len(seen) == 4  # the cell, the loss, the evaluation, stage 1
    for x in seen:
        np.testing.assert_allclose(x, _expected(frames, centralize, normalize), rtol=1e-6, atol=1e-6)
