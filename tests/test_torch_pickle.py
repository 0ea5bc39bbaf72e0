"""Reading PyTorch checkpoints without running code from them."""
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

from mmp_jax import torch_pickle
from mmp_jax.torch_pickle import CheckpointReadError, load_state_dict
from tests import original_reference as ref
from mmp_jax.cli import convert_checkpoint


def test_reads_a_torch_save_file_without_torch():
    """`small_torch_save.pth` was written by torch 2.13 (tests/references/make_reference.py)."""
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
    (tmp_path / 'folder.pth').mkdir()
    with pytest.raises(CheckpointReadError, match='folder.pth: is a folder, not a file'):  # "no such file" before
        load_state_dict(tmp_path / 'folder.pth')
    os.mkfifo(tmp_path / 'fifo.pth')
    with pytest.raises(CheckpointReadError, match='fifo.pth: is a FIFO, not a file'):
        load_state_dict(tmp_path / 'fifo.pth')
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


def _damaged_npz(tmp_path, damage: str):
    path = tmp_path / f'{damage}.npz'
    np.savez(path, w=np.arange(64, dtype=np.float32))
    data = bytearray(path.read_bytes())
    if damage == 'zero_bytes':
        data = b''
    elif damage == 'truncated':
        data = data[:len(data) // 2]
    else:  # a flipped bit in the array's bytes: only the CRC tells
        data[data.index(np.float32(40).tobytes())] ^= 1
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize('damage', ['zero_bytes', 'truncated', 'crc'])
def test_a_damaged_npz_is_refused_in_one_line(tmp_path, damage):
    path = _damaged_npz(tmp_path, damage)
    with pytest.raises(CheckpointReadError) as caught:
        load_state_dict(path)
    message = str(caught.value)
    assert message.startswith(f'{path}: cannot be read as .npz: ') and len(message.splitlines()) == 1
    if damage == 'crc':
        assert 'Bad CRC-32' in message


def test_an_npz_declaring_more_than_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / 'big.npz'
    np.savez_compressed(path, w=np.zeros(1 << 20, np.float32))
    with pytest.raises(CheckpointReadError, match=r'big.npz: its members declare \d+ bytes uncompressed, '
                                                  r'past the limit of 65536 bytes'):
        load_state_dict(path, max_bytes=1 << 16)


def test_a_pickle_may_not_change_the_readers_storage_types(tmp_path, monkeypatch):
    """BUILD on `torch.FloatStorage` would otherwise set the dtype the storage is read as (the
    torch-free reader's; where torch is installed, torch.load reads checkpoints)."""
    monkeypatch.setitem(sys.modules, 'torch', None)
    path = tmp_path / 'build.pth'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('a/data.pkl', b'\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeK\x01sb.')
    with pytest.raises(CheckpointReadError, match='refuses to set the state of _StorageType'):
        torch_pickle.load_checkpoint(path)
