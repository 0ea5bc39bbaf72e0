"""Crafted and mutated `torch.save` files: each is read, or refused in one line; none crashes.

The archives are built here with `zipfile`, `pickle` and `struct`, without torch, starting from
`tests/references/small_torch_save.pth` (written by torch 2.13): a zip whose `<name>/data.pkl` holds
`_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), offset, size, stride,
...)` per tensor and whose `<name>/data/<key>` holds the raw little-endian storage. The seeded
fuzz loop runs in a subprocess, so that a crash fails the test rather than pytest, and so that
its peak RSS is its own.
"""
import collections
import json
import os
import pathlib
import pickle
import random
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

from mmp_jax import torch_pickle
from mmp_jax.torch_pickle import CheckpointReadError, load_state_dict
from tests import original_reference as ref
from tests.conftest import REPO

SEED = 11
PEAK_RSS_BOUND_MB = 1536  # the fuzz subprocess, numpy and the reader included
MIB = 1 << 20
_FLOAT = ('FloatStorage', 4)


# --- building archives -------------------------------------------------------------------

def _op(value) -> bytes:
    """The protocol-2 opcodes that push `value` (a number, string, bool or tuple of them)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _tensor_pickle(tensors: dict) -> bytes:
    """A `data.pkl` of {name: tensor}; each tensor is (storage class, key, numel, offset, size,
    stride), written as torch writes it."""
    out = [b'\x80\x02}(']
    for name, (storage, key, numel, offset, size, stride) in tensors.items():
        out += [_op(name), b'ctorch._utils\n_rebuild_tensor_v2\n(',
                b'(', _op('storage'), f'ctorch\n{storage}\n'.encode(), _op(key), _op('cpu'), _op(numel), b'tQ',
                _op(offset), _op(size), _op(stride), b'\x89}tR']
    return b''.join(out + [b'u.'])


def _write_zip(path, members: dict, prefix: str = 'archive/'):
    """A stored zip of {member name: bytes} under `prefix`, as torch.save writes them."""
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(prefix + name, data)
    return path


def _one_tensor(path, numel: int, size, stride, offset=0, storage=_FLOAT, data_bytes=None):
    """A checkpoint of one tensor 'w' on storage '0' of `numel` elements (`data_bytes` long)."""
    data_bytes = numel * storage[1] if data_bytes is None else data_bytes
    return _write_zip(path, {'data.pkl': _tensor_pickle({'w': (storage[0], '0', numel, offset, size, stride)}),
                             'data/0': bytes(data_bytes), 'version': b'3\n'})


def _raw_zip(path, entries: list[tuple[str, bytes, int, int, int]]):
    """A zip written byte by byte from (name, payload, method, crc, declared size): the header
    may say anything about the payload."""
    body, central = b'', b''
    for name, payload, method, crc, size in entries:
        fields = struct.pack('<HHHHHIII', 20, 0, method, 0, 0, crc, len(payload), size)
        local = b'PK\x03\x04' + fields + struct.pack('<HH', len(name), 0) + name.encode()
        central += (b'PK\x01\x02' + struct.pack('<H', 20) + fields
                    + struct.pack('<HHHHHII', len(name), 0, 0, 0, 0, 0, len(body)) + name.encode())
        body += local + payload
    end = struct.pack('<4sHHHHIIH', b'PK\x05\x06', 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path


def _zero_deflate(mib: int) -> bytes:
    """A raw deflate stream that inflates to `mib` MiB of zeros, made of one flushed block
    repeated (about 1 KiB per MiB), so that no test holds the inflated bytes."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = block.compress(bytes(MIB)) + block.flush(zlib.Z_FULL_FLUSH)
    return chunk * mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def _inflating(path, mib: int, numel: int, declared: int | None = None, crc: int = 0):
    """One float tensor of `numel` elements whose `data/0` inflates to `mib` MiB; its header
    declares `declared` bytes (the true size by default)."""
    declared = mib * MIB if declared is None else declared
    pkl = _tensor_pickle({'w': ('FloatStorage', '0', numel, 0, (numel,), (1,))})
    return _raw_zip(path, [('archive/data.pkl', pkl, 0, zlib.crc32(pkl), len(pkl)),
                           ('archive/data/0', _zero_deflate(mib), 8, crc, declared)])


# --- the seeded cases ----------------------------------------------------------------------

def _fixture_members() -> dict[str, bytes]:
    with zipfile.ZipFile(ref.TORCH_FIXTURE) as archive:
        return {n.split('/', 1)[1]: archive.read(n) for n in archive.namelist()}


def _truncated(rng, path, _members, fixture: bytes):
    path.write_bytes(fixture[:rng.randrange(len(fixture))])


def _bit_flips(rng, path, _members, fixture: bytes):
    data = bytearray(fixture)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def _mutated_pickle(rng, path, members: dict, _fixture):
    pkl = bytearray(members['data.pkl'])
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(pkl))
        match rng.randrange(3):
            case 0:
                pkl[at] = rng.randrange(256)
            case 1:
                del pkl[at:at + rng.randint(1, 16)]
            case 2:
                pkl[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    _write_zip(path, {**members, 'data.pkl': bytes(pkl)})


def _entry(rng):
    """A tensor size/stride/offset entry: usually sane, sometimes hostile."""
    return rng.choice([0, 1, 2, 3, 4, rng.randint(0, 64), -1, -rng.randint(2, 1 << 40), 1 << 40,
                       1 << 62, 1 << 70, 50_000_000, 8192, 1.5, 'x', None, True])


def _crafted_tensor(rng, path, _members, _fixture):
    storage = rng.choice(list(torch_pickle._STORAGE_DTYPES.items()))
    itemsize = np.dtype(storage[1]).itemsize
    dims = rng.choice([0, 1, 2, 3, 4, rng.randint(5, 80)])
    size = tuple(_entry(rng) if rng.random() < 0.3 else rng.randint(0, 4) for _ in range(dims))
    stride_dims = dims + rng.choice([0, 0, 0, 1])  # sometimes one too many
    stride = tuple(_entry(rng) if rng.random() < 0.3 else rng.randint(0, 16) for _ in range(stride_dims))
    numel = rng.choice([0, 1, 4, 16, 64, rng.randint(0, 300), -1, 1 << 40])
    offset = _entry(rng) if rng.random() < 0.3 else rng.randint(0, 8)
    data_bytes = numel * itemsize if rng.random() < 0.8 and 0 <= numel < 1000 else rng.randint(0, 300)
    _one_tensor(path, numel, size, stride, offset, (storage[0], itemsize), data_bytes)


def _member_damage(rng, path, members: dict, _fixture):
    damaged = dict(members)
    key = f'data/{rng.randrange(5)}'
    match rng.randrange(4):
        case 0:
            del damaged[key]
        case 1:
            damaged[key] = damaged[key][:rng.randrange(len(damaged[key]))]
        case 2:
            damaged[key] += bytes(rng.randint(1, 64))
        case 3:
            del damaged['data.pkl']
    _write_zip(path, damaged)


def _inflating_case(rng, path, _members, _fixture):
    mib = rng.choice([1, 8, 200])
    numel = rng.choice([4, mib * MIB // 4])
    declared = rng.choice([None, 16, mib * MIB - 4])
    _inflating(path, mib, numel, declared, crc=rng.choice([0, zlib.crc32(bytes(16))]))


def _npz_damage(rng, path, _members, _fixture):
    np.savez(path, w=np.arange(rng.randint(0, 64), dtype=np.float32))
    data = bytearray(path.read_bytes())
    if rng.random() < 0.5:
        del data[rng.randrange(len(data)):]
    else:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


CASES = {  # kind: (builder(rng, path, fixture members, fixture bytes), how many)
    'truncated': (_truncated, 60), 'bit_flips': (_bit_flips, 80), 'mutated_pickle': (_mutated_pickle, 80),
    'crafted_tensor': (_crafted_tensor, 120), 'member_damage': (_member_damage, 30),
    'inflating': (_inflating_case, 12), 'npz_damage': (_npz_damage, 30),
}
FUZZ_MAX_BYTES = 64 * MIB  # the cap in the loop: under the 200 MiB inflating members


def _outcome(path) -> str:
    """'valid' or 'refused'; any other exception propagates."""
    try:
        load_state_dict(path, max_bytes=FUZZ_MAX_BYTES)
    except CheckpointReadError as error:
        message = str(error)
        assert message.startswith(f'{path}: ') and len(message.splitlines()) == 1, message
        return 'refused'
    return 'valid'


def run_fuzz(directory: str) -> dict:
    """Every seeded case, read without torch: the outcome counts and the peak RSS (MiB)."""
    import resource  # noqa: PLC0415 (POSIX; the loop runs in a subprocess)
    sys.modules['torch'] = None  # the torch-free reader, as in CI
    members, fixture = _fixture_members(), ref.TORCH_FIXTURE.read_bytes()
    counts = collections.Counter()
    for kind, (build, how_many) in CASES.items():
        for index in range(how_many):
            path = pathlib.Path(directory) / f'{kind}_{index}{".npz" if kind == "npz_damage" else ".pth.tar"}'
            build(random.Random(f'{SEED}/{kind}/{index}'), path, members, fixture)
            try:
                counts[_outcome(path)] += 1
            except Exception as error:
                raise AssertionError(f'{path.name}: {type(error).__name__}: {error}') from error
            path.unlink()
    return dict(counts, peak_rss_mib=_peak_rss_kib(resource) / 1024)


def _peak_rss_kib(resource) -> float:
    """This process's peak resident memory since it started (KiB): Linux's VmHWM, which exec
    resets; `ru_maxrss` instead keeps the parent's peak across fork + exec, so under pytest it
    reports the test runner's memory, not the fuzz loop's."""
    status = pathlib.Path('/proc/self/status')
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith('VmHWM:'):
                return float(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- tests ---------------------------------------------------------------------------------

@pytest.fixture
def without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch', None)


def _python(*args) -> subprocess.CompletedProcess:
    """`python *args` run from the repository's root."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'), cwd=REPO)


def _refusal(path, **options) -> str:
    with pytest.raises(CheckpointReadError) as caught:
        load_state_dict(path, **options)
    message = str(caught.value)
    assert message.startswith(f'{path}: ') and len(message.splitlines()) == 1
    return message


def test_the_fuzz_cases_are_read_or_refused_and_memory_stays_bounded(tmp_path):
    script = f'import json, tests.test_torch_pickle_fuzz as f; print(json.dumps(f.run_fuzz({str(tmp_path)!r})))'
    result = _python('-c', script)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(report)
    assert report['valid'] + report['refused'] == sum(n for _, n in CASES.values())
    assert report['valid'] > 0 and report['refused'] > 0
    assert report['peak_rss_mib'] < PEAK_RSS_BOUND_MB


def test_fifty_million_elements_on_a_16_byte_storage(tmp_path, without_torch):
    path = _one_tensor(tmp_path / 'big.pth.tar', 4, (50_000_000,), (1,))
    assert 'tensor out of bounds' in _refusal(path) and 'reach element 50000000' in _refusal(path)


def test_a_stride_of_2_to_the_40(tmp_path, without_torch):
    path = _one_tensor(tmp_path / 'stride.pth.tar', 4, (2, 2), (1 << 40, 1))
    assert f'stride ({1 << 40}, 1)' in _refusal(path) and 'out of bounds' in _refusal(path)


def test_8192_elements_on_a_4_element_storage(tmp_path, without_torch):
    path = _one_tensor(tmp_path / 'leak.pth.tar', 4, (8192,), (1,))
    assert 'reach element 8192, its storage archive/data/0 holds 4' in _refusal(path)


def test_a_member_that_inflates_to_2_gib_is_refused_before_it_is_read(tmp_path, without_torch):
    path = _inflating(tmp_path / 'bomb.pth.tar', 2048, numel=4)
    assert path.stat().st_size < 3 * MIB
    assert 'member archive/data/0 is declared 2147483648 bytes, the pickle says 16' in _refusal(path)
    path = _inflating(tmp_path / 'bomb.pth.tar', 200, numel=200 * MIB // 4)
    assert f'past the limit of {64 * MIB} bytes for one checkpoint' in _refusal(path, max_bytes=64 * MIB)


def test_a_member_that_inflates_past_a_lying_header_is_never_read_past_it(tmp_path, without_torch):
    path = _inflating(tmp_path / 'liar.pth.tar', 200, numel=4, declared=16)
    assert 'Bad CRC-32' in _refusal(path)


def test_convert_checkpoint_refuses_an_out_of_bounds_tensor_in_one_line(tmp_path):
    path = _one_tensor(tmp_path / 'leak.pth.tar', 4, (8192,), (1,))
    out = tmp_path / 'out'
    result = _python('-m', 'tools.convert_checkpoint', '--mmp-rnn', str(path), '--variant', 'A9B10C18F8',
                     '--trained-on', 'bsd', '--out', str(out))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and 'Traceback' not in result.stderr
    assert f'{path}: cannot be read safely: ' in result.stderr
    assert 'out of bounds' in result.stderr or 'not resizable' in result.stderr  # our reader's words, or torch's
    assert not out.exists()
