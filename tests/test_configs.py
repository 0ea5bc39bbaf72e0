import pytest

from configs import default, demo
from mmp_jax.models.variants import model_from_config


def test_default_config_builds_the_paper_model():
    model = model_from_config(default.get_config().model)
    assert (model.n_blocks_a, model.n_blocks_b, model.n_features) == (9, 10, 18)
    assert model.fusion_attention and model.use_mmam and model.transmit_ndf and model.do_skip


def test_demo_config_is_small():
    assert model_from_config(demo.get_config().model).n_features == 16


def test_unknown_model_field_is_refused():
    config = dict(default.get_config().model)
    config['use_mmp'] = False
    with pytest.raises(ValueError, match='unknown model config fields: use_mmp'):
        model_from_config(config)
