"""Reads PyTorch checkpoints (`torch.save` zip format) as numpy arrays without running code.

Where torch is installed, `torch.load(weights_only=True)` reads the file. Elsewhere a restricted
unpickler accepts only tensors, their storages and plain containers (dict, OrderedDict, list,
tuple, numbers, strings); any other global in the pickle, such as a `__reduce__` that calls
`os.system`, is refused before anything runs. torch is never required.

The file is untrusted: before anything is read, the sizes the zip declares must add up to at
most `MAX_CHECKPOINT_BYTES` (the `max_bytes` argument), and no member is read past its declared
size. Every storage must hold the number of elements its pickle declares, and every tensor's
offset, size and stride must stay inside its storage before a view of it is taken. Whatever is
wrong gives a `CheckpointReadError` of one line, `<path>: <problem>`.
"""
import collections
import io
import math
import pathlib
import pickle
import zipfile
from collections.abc import Mapping

import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.io import paths

MAX_CHECKPOINT_BYTES = 4 << 30  # uncompressed bytes of a whole file, and bytes of all its tensors
MAX_TENSOR_DIMS = 64  # torch's own limit

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class CheckpointReadError(UserError):
    """A file that is not a readable, code-free PyTorch checkpoint."""


class _Sealed:
    """An object of the reader's own that the pickle may pass around but never change (BUILD)."""
    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f'refuses to set the state of {type(self).__name__}')


class _StorageType(_Sealed):
    """A `torch.*Storage` class named in the pickle: the dtype of the storage."""
    __slots__ = ('dtype',)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _StorageData(_Sealed):
    """A storage read from the archive: a 1-D array over the member's bytes, and its name."""
    __slots__ = ('array', 'name')

    def __init__(self, array: np.ndarray, name: str):
        self.array, self.name = array, name


def _is_count(value) -> bool:
    """A non-negative int that fits torch's int64."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def _tensor_shape(size, stride) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`size` and `stride` as tuples of non-negative ints of the same, sane length."""
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise pickle.UnpicklingError(f'tensor size {size!r} and stride {stride!r} must be tuples')
    if len(size) != len(stride) or len(size) > MAX_TENSOR_DIMS:
        raise pickle.UnpicklingError(f'tensor size {tuple(size)} and stride {tuple(stride)} do not match '
                                     f'(or have over {MAX_TENSOR_DIMS} dimensions)')
    if not all(_is_count(n) for n in (*size, *stride)):
        raise pickle.UnpicklingError(f'tensor size {tuple(size)} or stride {tuple(stride)} '
                                     f'holds a negative, non-integer or over-int64 entry')
    return tuple(size), tuple(stride)


def _check_bounds(storage: _StorageData, offset, size: tuple, stride: tuple):
    """Refuses a tensor that would reach past the end of its storage."""
    if not _is_count(offset):
        raise pickle.UnpicklingError(f'tensor offset {offset!r} in {storage.name} is not a non-negative int')
    if math.prod(size) == 0:
        return
    span = 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if offset + span > storage.array.size:
        raise pickle.UnpicklingError(
            f'tensor out of bounds: size {size}, stride {stride} and offset {offset} reach element '
            f'{offset + span}, its storage {storage.name} holds {storage.array.size}')


class _RestrictedUnpickler(pickle.Unpickler):
    """Tensors, storages and plain containers; tensor bytes bounded by `max_bytes` in all."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, max_bytes: int):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, _StorageData] = {}
        self._max_bytes, self._tensor_bytes_left = max_bytes, max_bytes

    def find_class(self, module: str, name: str):
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return self._rebuild_tensor
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f'refuses to load {module}.{name} (only tensors and '
                                     f'plain containers are accepted)')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and _is_count(pid[4])):
            raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}'[:200])
        _kind, storage_type, key, _location, numel = pid
        name = f'{self._prefix}data/{key}'
        if name not in self._storages:
            raw = _read_member(self._archive, name, numel * storage_type.dtype.itemsize,
                               f'{numel} elements of {storage_type.dtype}')
            self._storages[name] = _StorageData(np.frombuffer(raw, dtype=storage_type.dtype), name)
        storage = self._storages[name]
        if storage.array.dtype != storage_type.dtype or storage.array.size != numel:
            raise pickle.UnpicklingError(f'storage {name} is declared twice, differently')
        return storage

    def _rebuild_tensor(self, storage, offset, size, stride, *_unused) -> np.ndarray:
        """The tensor as a new array, once its view is known to lie inside its storage."""
        if not isinstance(storage, _StorageData):
            raise pickle.UnpicklingError(f'tensor built on {type(storage).__name__}, not on a storage')
        size, stride = _tensor_shape(size, stride)
        _check_bounds(storage, offset, size, stride)
        nbytes = math.prod(size) * storage.array.itemsize
        if nbytes > self._tensor_bytes_left:
            raise pickle.UnpicklingError(f'tensors past the limit of {self._max_bytes} bytes for one '
                                         f'checkpoint (a tensor of size {size} on {storage.name})')
        self._tensor_bytes_left -= nbytes
        if nbytes == 0:
            return np.zeros(size, storage.array.dtype)
        item = storage.array.itemsize  # the stride of a dimension of one element is never used
        strides = tuple(s * item if n > 1 else 0 for n, s in zip(size, stride))
        return np.array(np.lib.stride_tricks.as_strided(storage.array[offset:], shape=size, strides=strides))


def _rebuild_parameter(data, *_unused):
    return data


def _read_member(archive: zipfile.ZipFile, name: str, expected: int, what: str) -> bytes:
    """The bytes of `name`, which must be `expected` bytes long by its declared and its real
    size; never reads more than one byte past that."""
    try:
        declared = archive.getinfo(name).file_size
    except KeyError:
        raise pickle.UnpicklingError(f'no member {name} in the archive') from None
    if declared != expected:
        raise pickle.UnpicklingError(f'member {name} is declared {declared} bytes, '
                                     f'the pickle says {expected} ({what})')
    with archive.open(name) as member:
        raw = member.read(expected + 1)
    if len(raw) != expected:
        raise pickle.UnpicklingError(f'member {name} inflates to {len(raw)} bytes, not the {expected} it declares')
    return raw


def _check_declared_size(path: pathlib.Path, archive: zipfile.ZipFile, max_bytes: int):
    """Refuses an archive whose members declare more than `max_bytes` in all, before reading any."""
    total = sum(info.file_size for info in archive.infolist())
    if total > max_bytes:
        raise CheckpointReadError(f'{path}: its members declare {total} bytes uncompressed, '
                                  f'past the limit of {max_bytes} bytes for one checkpoint')


def _load_without_torch(path: pathlib.Path, max_bytes: int = MAX_CHECKPOINT_BYTES):
    if not zipfile.is_zipfile(path):
        raise CheckpointReadError(f'{path}: not a PyTorch zip checkpoint (files saved by torch '
                                  f'older than 1.6 need torch to read: re-save them with torch.save)')
    with zipfile.ZipFile(path) as archive:
        _check_declared_size(path, archive, max_bytes)
        pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
        if len(pickles) != 1:
            raise CheckpointReadError(f'{path}: no data.pkl in the archive')
        prefix = pickles[0][:-len('data.pkl')]
        data = _read_member(archive, pickles[0], archive.getinfo(pickles[0]).file_size, 'the pickle')
        return _RestrictedUnpickler(data, archive, prefix, max_bytes).load()


def _load_with_torch(path: pathlib.Path, max_bytes: int = MAX_CHECKPOINT_BYTES):
    import torch  # noqa: PLC0415 (optional)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            _check_declared_size(path, archive, max_bytes)
    tree = torch.load(path, map_location='cpu', weights_only=True)
    return _to_numpy(tree, lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t)


def _to_numpy(tree, leaf):
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v, leaf) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_numpy(v, leaf) for v in tree)
    return leaf(tree)


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0] if lines and lines[0] else type(error).__name__


def load_checkpoint(path: str | pathlib.Path, *, max_bytes: int = MAX_CHECKPOINT_BYTES):
    """The object saved in a `.pth`/`.pth.tar` file, tensors as numpy arrays; `max_bytes`
    bounds the uncompressed size of the file and the size of its tensors."""
    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointReadError(f'{path}: no such file')
    problem = paths.not_a_regular_file(path)  # a folder; a FIFO would block the reader
    if problem:
        raise CheckpointReadError(f'{path}: {problem}')
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        loader = _load_without_torch
    else:
        loader = _load_with_torch
    try:
        return loader(path, max_bytes)
    except CheckpointReadError:
        raise
    except Exception as error:  # pickle and zip errors (CRC too), torch's weights_only refusal
        raise CheckpointReadError(f'{path}: cannot be read safely: {_first_line(error)}') from None


def _load_npz(path: pathlib.Path, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as archive:
            _check_declared_size(path, archive, max_bytes)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except CheckpointReadError:
        raise
    except Exception as error:  # zero bytes, truncated, CRC, bad headers, object arrays
        raise CheckpointReadError(f'{path}: cannot be read as .npz: {_first_line(error)}') from None


def load_state_dict(path: str | pathlib.Path, *, max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict[str, np.ndarray]:
    """The `state_dict` of a checkpoint (a dict holding one, or the state_dict itself);
    `.npz` files (key -> array) are read too. `max_bytes` as in `load_checkpoint`."""
    path = pathlib.Path(path)
    if path.suffix == '.npz':
        return _load_npz(path, max_bytes)
    tree = load_checkpoint(path, max_bytes=max_bytes)
    if isinstance(tree, Mapping) and isinstance(tree.get('state_dict'), Mapping):
        tree = tree['state_dict']
    if not isinstance(tree, Mapping) or not all(isinstance(v, np.ndarray) for v in tree.values()):
        raise CheckpointReadError(f'{path}: holds no state_dict (a mapping of names to tensors)')
    return dict(tree)
