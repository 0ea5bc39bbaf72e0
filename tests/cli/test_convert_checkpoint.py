"""`tools.convert_checkpoint` on every form of checkpoint the original writes.

The reference conversion is the `module.` form of `tests/cli/test_deblur.py`, which gives the
original's outputs; every other form must give the same variables, bit for bit. The trainer's
form is `tests/references/original_trainer_checkpoint.pth.tar`, saved by running the original's
trainer code (`tests/references/make_eval_reference.py`) and read here without torch.
"""
import numpy as np
import pytest
from flax import traverse_util

from mmp_jax import convert
from mmp_jax.checkpoint import load_model
from mmp_jax.torch_pickle import load_checkpoint, load_state_dict
from tests import original_reference as ref
from mmp_jax.cli import convert_checkpoint

VARIANT = f'A{ref.TINY["n_blocks_a"]}B{ref.TINY["n_blocks_b"]}C{ref.TINY["n_features"]}F7'


def _state() -> dict[str, np.ndarray]:
    return ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny'])


def _npz(path, state: dict, prefix: str = ''):
    np.savez(path, **{prefix + k: v for k, v in state.items()})
    return path


def _convert(source, out, *options, variant=VARIANT) -> int:
    return convert_checkpoint.main(['--mmp-rnn', str(source), '--variant', variant, '--out', str(out), *options])


def _flat(directory) -> dict:
    return traverse_util.flatten_dict(load_model(directory)[1], sep='/')


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope='module')
def reference_variables(tmp_path_factory):
    """The `module.` form converted (the form test_deblur proves against the original)."""
    folder = tmp_path_factory.mktemp('reference')
    assert _convert(_npz(folder / 'dp.npz', _state(), 'module.'), folder / 'out', '--trained-on', 'bsd') == 0
    return _flat(folder / 'out')


@pytest.mark.parametrize('prefix', ['module.model.', 'model.', ''])
def test_every_key_form_converts_to_the_same_variables(tmp_path, reference_variables, prefix):
    assert _convert(_npz(tmp_path / 'c.npz', _state(), prefix), tmp_path / 'out', '--trained-on', 'bsd') == 0
    _assert_same(_flat(tmp_path / 'out'), reference_variables)


def test_the_trainers_file_converts_without_torch(tmp_path, monkeypatch):
    """The file holds what train/dp.py saves; the extras are ignored, the weights kept."""
    monkeypatch.setitem(__import__('sys').modules, 'torch', None)  # the torch-free reader, as in CI
    saved = load_checkpoint(ref.TRAINER_CHECKPOINT)
    assert {'epoch', 'model', 'state_dict', 'register_dict', 'optimizer', 'scheduler'} <= saved.keys()
    assert saved['optimizer']['state'] and 'T_max' in saved['scheduler']
    assert all(k.startswith('module.model.cell.') or k.startswith('module.model.recons.')
               or k.startswith('module.model.fusion.') or k.startswith('module.model.skip.')
               for k in saved['state_dict'])
    assert _convert(ref.TRAINER_CHECKPOINT, tmp_path / 'pth', '--trained-on', 'bsd', variant='A2B2C8F8') == 0
    bare = {k.removeprefix('module.model.'): v for k, v in load_state_dict(ref.TRAINER_CHECKPOINT).items()}
    assert _convert(_npz(tmp_path / 'bare.npz', bare), tmp_path / 'npz', '--trained-on', 'bsd',
                    variant='A2B2C8F8') == 0
    _assert_same(_flat(tmp_path / 'pth'), _flat(tmp_path / 'npz'))


@pytest.mark.slow
def test_colour_order_must_be_said_and_decides_the_first_and_last_layers(tmp_path, capsys):
    source = _npz(tmp_path / 'c.npz', _state())
    assert _convert(source, tmp_path / 'none') == 2
    err = capsys.readouterr().err
    assert '--trained-on gopro|bsd' in err and 'data/BSD.py' in err and len(err.strip().splitlines()) == 1
    assert _convert(source, tmp_path / 'clash', '--trained-on', 'gopro', '--channel-order', 'bgr') == 2
    assert '--trained-on gopro means channel order rgb' in capsys.readouterr().err
    assert not (tmp_path / 'none').exists() and not (tmp_path / 'clash').exists()
    assert _convert(source, tmp_path / 'gopro', '--trained-on', 'gopro') == 0
    assert _convert(source, tmp_path / 'rgb', '--channel-order', 'rgb') == 0
    assert _convert(source, tmp_path / 'bsd', '--trained-on', 'bsd') == 0
    gopro, bsd = _flat(tmp_path / 'gopro'), _flat(tmp_path / 'bsd')
    _assert_same(gopro, _flat(tmp_path / 'rgb'))
    first = 'params/cell/F_B0/kernel'  # [k, k, in (colour), out]
    np.testing.assert_array_equal(bsd[first], gopro[first][:, :, ::-1])
    np.testing.assert_array_equal(bsd['params/skip/bias'], gopro['params/skip/bias'][::-1])
    assert np.array_equal(bsd['params/cell/F_R/RDBs_0/conv1x1/kernel'], gopro['params/cell/F_R/RDBs_0/conv1x1/kernel'])


def test_mmp_net_file_replaces_the_prior(tmp_path, capsys):
    unet = ref.random_state_dict(ref.load_keys()['mmp_net'], seed=ref.SEED + 1)
    mmp_net = _npz(tmp_path / 'unet.npz', unet)
    source = _npz(tmp_path / 'c.npz', _state())
    assert _convert(source, tmp_path / 'out', '--mmp-net', str(mmp_net), '--channel-order', 'rgb') == 0
    converted = load_model(tmp_path / 'out')[1]
    expected = convert.convert_state_dict(unet)
    for collection in ('params', 'batch_stats'):
        _assert_same(traverse_util.flatten_dict(converted[collection]['cell']['prior'], sep='/'),
                     traverse_util.flatten_dict(expected[collection], sep='/'))
    # the two files swapped: each is named for what it is
    assert convert_checkpoint.main(['--mmp-rnn', str(mmp_net), '--variant', VARIANT, '--out', str(tmp_path / 'x'),
                                    '--trained-on', 'gopro']) == 2
    assert 'this is an MMP-Net (UNet) state_dict, not MMP-RNN: pass it with --mmp-net' in capsys.readouterr().err
    assert _convert(source, tmp_path / 'y', '--mmp-net', str(source), '--trained-on', 'gopro') == 2
    assert 'this is an MMP-RNN state_dict, not MMP-Net' in capsys.readouterr().err


def test_the_repository_mmp_net_file_form_with_torch(tmp_path):
    """`model_best.pth.tar` of the repository is `{'state_dict': UNet().state_dict()}`."""
    torch = pytest.importorskip('torch')
    unet = ref.random_state_dict(ref.load_keys()['mmp_net'], seed=ref.SEED + 1)
    torch.save({'state_dict': {k: torch.from_numpy(v) for k, v in unet.items()}}, tmp_path / 'model_best.pth.tar')
    assert _convert(_npz(tmp_path / 'c.npz', _state()), tmp_path / 'out', '--mmp-net',
                    str(tmp_path / 'model_best.pth.tar'), '--channel-order', 'rgb') == 0
    prior = load_model(tmp_path / 'out')[1]['params']['cell']['prior']
    np.testing.assert_array_equal(prior['conv9x9']['kernel'], unet['conv9x9.weight'].transpose(2, 3, 1, 0))


def test_a_foreign_state_dict_is_named_with_what_it_holds(tmp_path, capsys):
    _npz(tmp_path / 'other.npz', {'encoder.layer1.weight': np.zeros((2, 2), np.float32),
                                  'decoder.out.bias': np.zeros(2, np.float32)})
    assert _convert(tmp_path / 'other.npz', tmp_path / 'out', '--trained-on', 'bsd') == 2
    err = capsys.readouterr().err
    assert "not an MMP-RNN state_dict: expected a key 'module.model.cell.F_B0.weight'" in err
    assert 'its 2 keys start with decoder.out., encoder.layer1.' in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_out_is_one_line(tmp_path, capsys):
    (tmp_path / 'file').write_text('not a folder')
    assert _convert(_npz(tmp_path / 'c.npz', _state()), tmp_path / 'file' / 'out', '--trained-on', 'bsd') == 2
    err = capsys.readouterr().err.strip()
    assert 'Not a directory' in err and len(err.splitlines()) == 1 and 'Traceback' not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.npz', 'file']
