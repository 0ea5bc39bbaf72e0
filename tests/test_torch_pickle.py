"""Reading PyTorch checkpoints without running code from them."""
import os
import pickle
import zipfile

import numpy as np
import pytest

from mmp_jax import torch_pickle
from mmp_jax.torch_pickle import CheckpointReadError, load_state_dict
from tests import original_reference as ref
from tools import convert_checkpoint


def test_reads_a_torch_save_file_without_torch():
    """`small_torch_save.pth` was written by torch 2.13 (tests/data/make_reference.py)."""
    tree = torch_pickle._load_without_torch(ref.TORCH_FIXTURE)
    assert tree['epoch'] == 3 and tree['best'] == [1.0, 'x']
    state = load_state_dict(ref.TORCH_FIXTURE)
    np.testing.assert_array_equal(state['module.a.weight'], np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(state['module.a.bias'], [0.5, -1.5])
    np.testing.assert_array_equal(state['module.b.running_mean'], np.arange(6.0).reshape(2, 3).T)
    assert state['module.b.running_mean'].dtype == np.float64
    assert state['module.b.num_batches_tracked'] == 7 and state['module.c'].dtype == np.float16


class _WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def _malicious_checkpoint(tmp_path, zipped: bool):
    target = tmp_path / 'pwned.txt'
    payload = pickle.dumps({'state_dict': _WritesAFile(str(target))}, protocol=2)
    path = tmp_path / 'evil.pth.tar'
    if zipped:
        with zipfile.ZipFile(path, 'w') as archive:
            archive.writestr('evil/data.pkl', payload)
            archive.writestr('evil/version', '3\n')
    else:
        path.write_bytes(payload)
    return path, target


@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy'])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, zipped):
    path, target = _malicious_checkpoint(tmp_path, zipped)
    with pytest.raises(CheckpointReadError, match=f'{path}: '):
        load_state_dict(path)
    assert not target.exists()


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointReadError, match='no such file'):
        load_state_dict(tmp_path / 'missing.pth')
    (tmp_path / 'junk.npz').write_bytes(os.urandom(64))
    with pytest.raises(CheckpointReadError, match=r'junk.npz: cannot be read as .npz'):
        load_state_dict(tmp_path / 'junk.npz')


def test_convert_checkpoint_refuses_it_with_exit_2(tmp_path, capsys):
    path, target = _malicious_checkpoint(tmp_path, zipped=True)
    out = tmp_path / 'ckpt'
    assert convert_checkpoint.main(['--mmp-rnn', str(path), '--variant', 'A9B10C18F8',
                                    '--trained-on', 'bsd', '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert f'{path}: cannot be read safely' in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and not out.exists()
