"""Conversion of original PyTorch state_dicts (sollynoay/MMP-RNN) to Flax variables.

The Flax modules are named after the PyTorch attributes, a Sequential/ModuleList index
`name.i` becoming `name_i`, so a key maps to a path by a fixed rule:

    cell.F_R.RDBs.3.dense_layers.1.conv.weight  -> params/cell/F_R/RDBs_3/dense_layers_1/conv/kernel
    cell.prior.inc.double_conv.1.running_var    -> batch_stats/cell/prior/inc/double_conv_1/var

Conv and transposed-conv weights (`[O, I, k, k]`, `[I, O, k, k]`) both become
`weight.transpose(2, 3, 1, 0)`; BatchNorm `weight` becomes `scale`; `num_batches_tracked`
has no counterpart and is dropped. Inputs are numpy arrays, so torch is not needed here.
"""
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

DATA_PARALLEL_PREFIX = 'module.'
_STATS = {'running_mean': 'mean', 'running_var': 'var'}


def torch_key_to_path(key: str, ndim: int) -> tuple[str, tuple[str, ...]] | None:
    """(collection, path) of one state_dict key in our variables; None if it has no place."""
    *modules, leaf = key.split('.')
    path: list[str] = []
    for segment in modules:
        if segment.isdigit() and path:
            path[-1] = f'{path[-1]}_{segment}'
        else:
            path.append(segment)
    if leaf == 'num_batches_tracked':
        return None
    if leaf in _STATS:
        return 'batch_stats', (*path, _STATS[leaf])
    if leaf == 'weight':
        return 'params', (*path, 'kernel' if ndim == 4 else 'scale')
    if leaf == 'bias':
        return 'params', (*path, 'bias')
    raise ValueError(f'state_dict key {key!r}: unknown parameter kind {leaf!r}')


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries under `prefix` (e.g. 'cell.prior.'), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def convert_state_dict(state_dict: Mapping[str, np.ndarray],
                       drop_prefixes: tuple[str, ...] = ()) -> dict[str, dict]:
    """Original state_dict (numpy values) -> `{'params': ..., 'batch_stats': ...}` (nested).

    `module.` prefixes of DataParallel checkpoints are removed; keys starting with one of
    `drop_prefixes` (weights of parts a configuration switches off, such as `fusion.ca.`)
    are left out.
    """
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for key, value in state_dict.items():
        if key.startswith(DATA_PARALLEL_PREFIX):
            key = key[len(DATA_PARALLEL_PREFIX):]
        if key.startswith(drop_prefixes):
            continue
        value = np.asarray(value)
        where = torch_key_to_path(key, value.ndim)
        if where is None:
            continue
        collection, path = where
        flat[(collection, *path)] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
    return traverse_util.unflatten_dict(flat)


def check_same_structure(converted: Mapping, expected: Mapping, source: str) -> None:
    """Raises ValueError naming `source` and every missing, unexpected or mis-shaped tensor."""
    got = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(converted, sep='/').items()}
    want = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(expected, sep='/').items()}
    problems = [f'missing {k}' for k in sorted(want.keys() - got.keys())]
    problems += [f'unexpected {k}' for k in sorted(got.keys() - want.keys())]
    problems += [f'{k}: shape {got[k]}, model expects {want[k]}'
                 for k in sorted(got.keys() & want.keys()) if got[k] != want[k]]
    if problems:
        shown = '; '.join(problems[:5]) + (f'; and {len(problems) - 5} more' if len(problems) > 5 else '')
        raise ValueError(f'{source}: does not fit the model: {shown}')
