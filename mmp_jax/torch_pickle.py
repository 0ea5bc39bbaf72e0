"""Reads PyTorch checkpoints (`torch.save` zip format) as numpy arrays without running code.

Where torch is installed, `torch.load(weights_only=True)` reads the file. Elsewhere a restricted
unpickler accepts only tensors, their storages and plain containers (dict, OrderedDict, list,
tuple, numbers, strings); any other global in the pickle, such as a `__reduce__` that calls
`os.system`, is refused before anything runs. torch is never required.
"""
import collections
import io
import pathlib
import pickle
import zipfile
from collections.abc import Mapping

import numpy as np

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class CheckpointReadError(ValueError):
    """A file that is not a readable, code-free PyTorch checkpoint."""


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return _rebuild_tensor
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f'refuses to load {module}.{name} (only tensors and '
                                     f'plain containers are accepted)')

    def persistent_load(self, pid):
        kind, storage, key, _location, _numel = pid
        if kind != 'storage' or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
        raw = self._archive.read(f'{self._prefix}data/{key}')
        return np.frombuffer(raw, dtype=storage.dtype)


def _load_without_torch(path: pathlib.Path):
    if not zipfile.is_zipfile(path):
        raise CheckpointReadError(f'{path}: not a PyTorch zip checkpoint (files saved by torch '
                                  f'older than 1.6 need torch to read: re-save them with torch.save)')
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
        if len(pickles) != 1:
            raise CheckpointReadError(f'{path}: no data.pkl in the archive')
        prefix = pickles[0][:-len('data.pkl')]
        return _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix).load()


def _load_with_torch(path: pathlib.Path):
    import torch  # noqa: PLC0415 (optional)
    tree = torch.load(path, map_location='cpu', weights_only=True)
    return _to_numpy(tree, lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t)


def _to_numpy(tree, leaf):
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v, leaf) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_numpy(v, leaf) for v in tree)
    return leaf(tree)


def load_checkpoint(path: str | pathlib.Path):
    """The object saved in a `.pth`/`.pth.tar` file, tensors as numpy arrays."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointReadError(f'{path}: no such file')
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        loader = _load_without_torch
    else:
        loader = _load_with_torch
    try:
        return loader(path)
    except CheckpointReadError:
        raise
    except Exception as error:  # pickle and zip errors, torch's weights_only refusal
        raise CheckpointReadError(f'{path}: cannot be read safely: {str(error).splitlines()[0]}') from None


def load_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The `state_dict` of a checkpoint (a dict holding one, or the state_dict itself);
    `.npz` files (key -> array) are read too."""
    path = pathlib.Path(path)
    if path.suffix == '.npz':
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as error:
            raise CheckpointReadError(f'{path}: cannot be read as .npz: {error}') from None
    tree = load_checkpoint(path)
    if isinstance(tree, Mapping) and isinstance(tree.get('state_dict'), Mapping):
        tree = tree['state_dict']
    if not isinstance(tree, Mapping) or not all(isinstance(v, np.ndarray) for v in tree.values()):
        raise CheckpointReadError(f'{path}: holds no state_dict (a mapping of names to tensors)')
    return dict(tree)
