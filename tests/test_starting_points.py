"""Stage 2 started from the original MMP-Net file and fine-tuned from a converted MMP-RNN: the
state before the first update computes what the converted model computes."""
import numpy as np
import pytest

from configs import test as test_config
from mmp_jax import stages, train
from mmp_jax.checkpoint import load_model
from mmp_jax.models.mmp_rnn import mmpnet_prior, prior_variables
from tests import original_reference as ref
from tests.test_train import records, tiny_config  # noqa: F401 (records: a fixture)
from mmp_jax.cli import convert_checkpoint

TINY = f'A{ref.TINY["n_blocks_a"]}B{ref.TINY["n_blocks_b"]}C{ref.TINY["n_features"]}'


@pytest.fixture(scope='module')
def originals(tmp_path_factory):
    """(MMP-Net file, converted folder of a tiny MMP-RNN with that MMP-Net), BGR-trained weights."""
    root = tmp_path_factory.mktemp('originals')
    unet = root / 'model_best.npz'
    np.savez(unet, **ref.random_state_dict(ref.load_keys()['mmp_net'], seed=ref.SEED + 1))
    np.savez(root / 'mmp_rnn.npz', **ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny']))
    assert convert_checkpoint.main(['--mmp-rnn', str(root / 'mmp_rnn.npz'), '--mmp-net', str(unet),
                                    '--variant', f'{TINY}F7', '--channel-order', 'bgr',
                                    '--out', str(root / 'converted')]) == 0
    return unet, root / 'converted'


def _config(fields: dict, config=None):
    """`config` (default configs/test.py) with the tiny converted variant (F and scan_unroll
    differ from the folder's: neither is in the weights), stage 2 only, no evaluation, and
    `fields` (dotted config field -> value) set."""
    config = config or test_config.get_config()
    config.stages, config.model.variant, config.data.eval_records = ('mmprnn',), f'{TINY}F6', ''
    for name, value in fields.items():
        section, field = name.split('.')
        config[section][field] = value
    return config


def _step_zero_variables(config, workdir):
    """The variables of the train state stage 2 takes its first step from (no checkpoint yet)."""
    stage = stages.get('mmprnn')
    model, optimizer, state = train.fresh_state(config, stage)
    variables = stage.starting_variables(config, workdir, model, train.variables_of(state))
    return model, train.variables_of(stage.create_state(variables, optimizer))


@pytest.mark.slow
def test_step_zero_computes_what_the_converted_models_compute(originals, tmp_path):
    unet, converted = originals
    reference_model, reference, _ = load_model(converted)
    frames = np.random.default_rng(0).uniform(0, 1, (1, 6, 32, 32, 3)).astype(np.float32)

    model, from_file = _step_zero_variables(_config({'mmpnet.checkpoint': str(unet),
                                                       'mmpnet.channel_order': 'bgr'}), tmp_path)
    np.testing.assert_array_equal(mmpnet_prior(prior_variables(from_file), frames[0]),
                                  mmpnet_prior(prior_variables(reference), frames[0]))
    assert not np.allclose(from_file['params']['cell']['F_B0']['kernel'], reference['params']['cell']['F_B0']['kernel'])

    model, fine_tuned = _step_zero_variables(_config({'mmprnn.init_checkpoint': str(converted)}), tmp_path)
    expected = reference_model.apply(reference, frames)
    np.testing.assert_array_equal(reference_model.apply(fine_tuned, frames), expected)  # the same variables
    # the training model (its own program: XLA may fuse its ops otherwise, a float32 rounding apart)
    np.testing.assert_allclose(model.apply(fine_tuned, frames), expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_prior_from_a_model_folder_and_the_unsaid_colour_order(originals, tmp_path):
    unet, converted = originals
    _, reference, _ = load_model(converted)
    _, start = _step_zero_variables(_config({'mmpnet.checkpoint': str(converted)}), tmp_path)
    np.testing.assert_array_equal(start['params']['cell']['prior']['conv9x9']['kernel'],
                                  reference['params']['cell']['prior']['conv9x9']['kernel'])
    with pytest.raises(ValueError, match=r'is an original MMP-Net file: set --config.mmpnet.channel_order .*got '):
        _step_zero_variables(_config({'mmpnet.checkpoint': str(unet)}), tmp_path)
    with pytest.raises(ValueError, match='applies to an original MMP-Net file'):
        _step_zero_variables(_config({'mmpnet.checkpoint': str(converted), 'mmpnet.channel_order': 'rgb'}),
                             tmp_path)


@pytest.mark.slow
def test_fine_tuning_a_different_model_names_the_fields(originals, tmp_path):
    config = _config({'mmprnn.init_checkpoint': str(originals[1]), 'model.use_mmam': False})
    config.model.variant = 'A1B2C8F6'
    with pytest.raises(ValueError) as error:
        _step_zero_variables(config, tmp_path)
    message = str(error.value)
    assert "use_mmam: stored True, config False" in message and "variant: stored 'A2B2C8', config 'A1B2C8'" in message
    assert 'fusion_attention' not in message and 'scan_unroll' not in message


@pytest.mark.slow
def test_both_starting_points_train(originals, records, tmp_path):  # noqa: F811 (the fixture)
    unet, converted = originals
    for name, fields in (('from_file', {'mmpnet.checkpoint': str(unet), 'mmpnet.channel_order': 'bgr'}),
                         ('fine_tuned', {'mmprnn.init_checkpoint': str(converted)})):
        config = _config(fields, tiny_config(records, num_steps=2, checkpoint_every=2, log_every=1))
        train.train_and_evaluate(config, tmp_path / name)
        exported_model, exported, _ = load_model(tmp_path / name / 'model')
        assert exported_model.n_features == ref.TINY['n_features']
        np.testing.assert_array_equal(exported['params']['cell']['prior']['conv9x9']['kernel'],
                                      load_model(converted)[1]['params']['cell']['prior']['conv9x9']['kernel'])
