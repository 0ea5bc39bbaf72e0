"""Conversion of original PyTorch state_dicts (sollynoay/MMP-RNN, princeton-vl/RAFT) to Flax
variables. Inputs are numpy arrays (`mmp_jax.torch_pickle` reads the files), so torch is not
needed here.

The Flax modules are named after the PyTorch attributes, a Sequential/ModuleList index
`name.i` becoming `name_i`, so a key maps to a path by a fixed rule:

    cell.F_R.RDBs.3.dense_layers.1.conv.weight  -> params/cell/F_R/RDBs_3/dense_layers_1/conv/kernel
    cell.prior.inc.double_conv.1.running_var    -> batch_stats/cell/prior/inc/double_conv_1/var

Conv and transposed-conv weights (`[O, I, k, k]`, `[I, O, k, k]`) both become
`weight.transpose(2, 3, 1, 0)`; BatchNorm `weight` becomes `scale`; `num_batches_tracked`
has no counterpart and is dropped.

Key prefixes of the forms the original writes (`unwrap`):
    module.model.cell.F_B0.weight   the trainer (`train/dp.py`, `ddp.py`): nn.DataParallel(Model(para)),
                                    `model/model.py`'s Model holding the network as `self.model`
    module.cell.F_B0.weight         nn.DataParallel of the network itself
    model.cell.F_B0.weight          `Model(para)` saved without DataParallel
    cell.F_B0.weight                the network's own state_dict
MMP-Net's file (`model_best.pth.tar` of the repository) holds `UNet().state_dict()`: bare keys
such as `conv9x9.weight`, `inc.double_conv.0.weight`.
"""
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from mmp_jax.errors import UserError
from mmp_jax.models.mmp_rnn import PRIOR_PATH

WRAPPER_PREFIXES = ('module.model.', 'module.', 'model.', '')
MMP_RNN_ANCHOR = 'cell.F_B0.weight'      # a key every MMP-RNN state_dict has
MMP_NET_ANCHOR = 'inc.double_conv.0.weight'  # ... and every MMP-Net (UNet) state_dict
RAFT_ANCHOR = 'fnet.conv1.weight'
PRIOR_PREFIX = '.'.join(PRIOR_PATH) + '.'  # MMP-Net's weights inside MMP-RNN (the same module path)
_STATS = {'running_mean': 'mean', 'running_var': 'var'}

# Channel order of the frames the released checkpoints were trained on, with the evidence
# (files of sollynoay/MMP-RNN, outer copy `MMP-RNN/`).
TRAINED_ON = {
    'gopro': ('rgb', "gopro_lmdb is built by data/make_dataset_lmdb.ipynb with PIL.Image.open + np.asarray "
                     "(RGB); train/test.py _test_lmdb flips [:, :, [2, 1, 0]] only to cv2.imwrite"),
    'bsd': ('bgr', 'data/BSD.py and train/test.py _test_torch read frames with cv2.imread (BGR)'),
}
CHANNEL_ORDERS = ('rgb', 'bgr')


class ConversionError(UserError):
    """A state_dict that is not of the expected network, with what was found instead."""


def _prefixes_found(keys, shown: int = 6) -> str:
    heads = sorted({'.'.join(k.split('.')[:2]) + '.' for k in keys})
    return ', '.join(heads[:shown]) + (f' (and {len(heads) - shown} more)' if len(heads) > shown else '')


def unwrap(state_dict: Mapping[str, np.ndarray], anchor: str, what: str, source: str) -> dict[str, np.ndarray]:
    """The state_dict with the wrapper prefix under which `anchor` sits removed (one of
    `WRAPPER_PREFIXES`); ConversionError naming `source`, the prefixes found and the expected key."""
    for prefix in WRAPPER_PREFIXES:
        if prefix + anchor in state_dict:
            stray = [k for k in state_dict if not k.startswith(prefix)]
            if stray:
                raise ConversionError(f'{source}: keys under {prefix!r} and outside it ({stray[0]!r}): '
                                      f'not one {what} state_dict')
            return {k[len(prefix):]: v for k, v in state_dict.items()}
    expected = ', '.join(repr(p + anchor) for p in WRAPPER_PREFIXES)
    raise ConversionError(f'{source}: not {what} state_dict: expected a key {expected}; its '
                          f'{len(state_dict)} keys start with {_prefixes_found(state_dict) or "nothing"}')


def mmp_rnn_state(state_dict: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """An original MMP-RNN state_dict in any of the forms above, with bare keys. An MMP-Net
    state_dict is recognised and named (it belongs to `--mmp-net`)."""
    if not any(k.endswith(MMP_RNN_ANCHOR) for k in state_dict) and \
            any(k.endswith(MMP_NET_ANCHOR) and PRIOR_PREFIX not in k for k in state_dict):
        raise ConversionError(f'{source}: this is an MMP-Net (UNet) state_dict, not MMP-RNN: pass it '
                              f'with --mmp-net, and the MMP-RNN checkpoint with --mmp-rnn')
    return unwrap(state_dict, MMP_RNN_ANCHOR, 'an MMP-RNN', source)


def mmp_net_state(state_dict: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """An original MMP-Net (UNet) state_dict with bare keys (an MMP-RNN one is named as such)."""
    if any(k.endswith(MMP_RNN_ANCHOR) for k in state_dict):
        raise ConversionError(f'{source}: this is an MMP-RNN state_dict, not MMP-Net: pass it with --mmp-rnn')
    return unwrap(state_dict, MMP_NET_ANCHOR, 'an MMP-Net (UNet)', source)


def channel_order(trained_on: str | None, order: str | None) -> str:
    """'rgb' or 'bgr': the frames' colour order the weights were trained on, from the data set
    (`TRAINED_ON`) or said outright; ConversionError when neither or both disagree."""
    if order is not None and order not in CHANNEL_ORDERS:
        raise ConversionError(f'unknown channel order {order!r}; accepted: {", ".join(CHANNEL_ORDERS)}')
    if trained_on is not None:
        if trained_on not in TRAINED_ON:
            raise ConversionError(f'unknown data set {trained_on!r}; accepted: {", ".join(TRAINED_ON)} '
                                  f'(for other weights give --channel-order)')
        implied = TRAINED_ON[trained_on][0]
        if order is not None and order != implied:
            raise ConversionError(f'--trained-on {trained_on} means channel order {implied}, '
                                  f'--channel-order says {order}')
        return implied
    if order is None:
        reasons = '; '.join(f'{name} -> {o}: {why}' for name, (o, why) in TRAINED_ON.items())
        raise ConversionError('say which frames the weights were trained on: --trained-on gopro|bsd, or '
                              '--channel-order rgb|bgr; the released checkpoints differ ('
                              f'{reasons}), and the wrong one gives worse output without an error')
    return order


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


def convert_state_dict(state_dict: Mapping[str, np.ndarray],
                       drop_prefixes: tuple[str, ...] = ()) -> dict[str, dict]:
    """Original state_dict with bare keys (numpy values) -> `{'params': ..., 'batch_stats': ...}`
    (nested). Keys starting with one of `drop_prefixes` (weights of parts a configuration
    switches off, such as `fusion.ca.`) are left out."""
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for key, value in state_dict.items():
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
        raise UserError(f'{source}: does not fit the model: {shown}')


# Tensors that touch the colour channels: (key, flip input channels, flip output channels).
_COLOUR_TENSORS = (('cell.F_B0.weight', True, False), ('cell.prior.conv9x9.weight', True, False),
                   ('conv9x9.weight', True, False), ('skip.weight', True, True),
                   ('skip.bias', False, True), ('recons.model.2.weight', False, True),
                   ('recons.model.2.bias', False, True))


def bgr_to_rgb(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights (bare keys) trained on BGR frames made to take and give RGB frames: colour
    axes of the first and last layers reversed. The result on RGB frames equals the
    original's on the same frames in BGR, channels reversed."""
    out = dict(state_dict)
    for key, flip_in, flip_out in _COLOUR_TENSORS:
        if key in out:
            value = np.asarray(out[key])
            if flip_in:
                value = value[:, ::-1]
            if flip_out:
                value = value[::-1]
            out[key] = np.ascontiguousarray(value)
    return out


def infer_variant(state_dict: Mapping[str, np.ndarray]) -> str:
    """'A<n_a>B<n_b>C<n_c>' of an original MMP-RNN state_dict with bare keys."""
    count = lambda prefix: len({k[len(prefix):].split('.')[0] for k in state_dict if k.startswith(prefix)})
    channels = np.shape(state_dict[MMP_RNN_ANCHOR])[0]
    return f'A{count("cell.F_R.RDBs.")}B{count("recons.D_Net.RDBs.")}C{channels}'


def convert_raft_state_dict(state_dict: Mapping[str, np.ndarray], source: str = 'RAFT') -> dict[str, dict]:
    """Official RAFT state_dict (`raft-things.pth`, `raft-small.pth`, DataParallel `module.`
    keys) -> Flax variables of `mmp_jax.models.raft.RAFT`. A strided block's `downsample.1`
    is the same module as its `norm3` (`norm4` in bottlenecks), so the state_dict holds it
    twice; PyTorch loads the `downsample.1` copy last, so that one is kept."""
    state = unwrap(state_dict, RAFT_ANCHOR, 'a RAFT', source)
    for key in [k for k in state if '.downsample.1.' in k]:
        block, leaf = key.split('.downsample.1.')
        norm = 'norm4' if f'{block}.norm4.{leaf}' in state else 'norm3'
        state[f'{block}.{norm}.{leaf}'] = state.pop(key)
    return convert_state_dict(state)
