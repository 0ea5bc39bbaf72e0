"""Conversion of original PyTorch state_dicts (sollynoay/MMP-RNN) to Flax variables.

The Flax modules are named after the PyTorch attributes, a Sequential/ModuleList index
`name.i` becoming `name_i`, so a key maps to a path by a fixed rule:

    cell.F_R.RDBs.3.dense_layers.1.conv.weight  -> params/cell/F_R/RDBs_3/dense_layers_1/conv/kernel
    cell.prior.inc.double_conv.1.running_var    -> batch_stats/cell/prior/inc/double_conv_1/var

Conv and transposed-conv weights (`[O, I, k, k]`, `[I, O, k, k]`) both become
`weight.transpose(2, 3, 1, 0)`; BatchNorm `weight` becomes `scale`; `num_batches_tracked`
has no counterpart and is dropped. Inputs are numpy arrays, so torch is not needed here.
"""
import pathlib
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_config

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


def without_data_parallel_prefix(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state_dict with DataParallel's `module.` key prefixes removed."""
    return {k.removeprefix(DATA_PARALLEL_PREFIX): v for k, v in state_dict.items()}


def convert_state_dict(state_dict: Mapping[str, np.ndarray],
                       drop_prefixes: tuple[str, ...] = ()) -> dict[str, dict]:
    """Original state_dict (numpy values) -> `{'params': ..., 'batch_stats': ...}` (nested).

    `module.` prefixes of DataParallel checkpoints are removed; keys starting with one of
    `drop_prefixes` (weights of parts a configuration switches off, such as `fusion.ca.`)
    are left out.
    """
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for key, value in without_data_parallel_prefix(state_dict).items():
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


class CheckpointError(ValueError):
    """A missing, unreadable or non-matching checkpoint, with its path and the problem."""


def save_model(directory: str | pathlib.Path, variables: Mapping, model_config: Mapping) -> None:
    """Writes an inference checkpoint: the model config (JSON) and its variables (orbax).

    Orbax writes into a temporary folder and renames it when complete, so an interrupted
    save leaves no checkpoint behind. `directory` must not exist yet.
    """
    directory = pathlib.Path(directory).absolute()
    if directory.exists():
        raise CheckpointError(f'{directory}: already exists; choose a new folder')
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(directory, ocp.args.Composite(
            model=ocp.args.JsonSave(dict(model_config)),
            variables=ocp.args.StandardSave(dict(variables))))


def load_model_config(directory: str | pathlib.Path) -> dict:
    """The model config stored by `save_model` (a `config.model`-style dict)."""
    directory = pathlib.Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: no such checkpoint folder')
    if not (directory / 'model').is_dir():
        raise CheckpointError(f'{directory}: not a model checkpoint (no model config in it); '
                              f'make one with `python -m tools.convert_checkpoint`')
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        return dict(checkpointer.restore(directory, ocp.args.Composite(
            model=ocp.args.JsonRestore()))['model'])


def load_variables(directory: str | pathlib.Path, expected: Mapping) -> dict:
    """Variables stored by `save_model`, checked against `expected` (a tree of shapes,
    e.g. from `jax.eval_shape(model.init, ...)`)."""
    directory = pathlib.Path(directory).absolute()
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        restored = checkpointer.restore(directory, ocp.args.Composite(
            variables=ocp.args.StandardRestore()))['variables']
    check_same_structure(restored, expected, str(directory))
    return dict(restored)


# Tensors that touch the colour channels: (key, flip input channels, flip output channels).
_COLOUR_TENSORS = (('cell.F_B0.weight', True, False), ('cell.prior.conv9x9.weight', True, False),
                   ('conv9x9.weight', True, False), ('skip.weight', True, True),
                   ('skip.bias', False, True), ('recons.model.2.weight', False, True),
                   ('recons.model.2.bias', False, True))


def bgr_to_rgb(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights trained on BGR frames (the original reads frames with cv2.imread) made to
    take and give RGB frames: colour axes of the first and last layers reversed. The result
    on RGB frames equals the original's on the same frames in BGR, channels reversed."""
    out = without_data_parallel_prefix(state_dict)
    for key, flip_in, flip_out in _COLOUR_TENSORS:
        if key in out:
            value = np.asarray(out[key])
            if flip_in:
                value = value[:, ::-1]
            if flip_out:
                value = value[::-1]
            out[key] = np.ascontiguousarray(value)
    return out


def infer_variant(state_dict: Mapping[str, np.ndarray]) -> str | None:
    """'A<n_a>B<n_b>C<n_c>' of an original MMP-RNN state_dict, None if it is not one."""
    state_dict = without_data_parallel_prefix(state_dict)
    if 'cell.F_B0.weight' not in state_dict:
        return None
    count = lambda prefix: len({k[len(prefix):].split('.')[0] for k in state_dict if k.startswith(prefix)})
    channels = np.shape(state_dict['cell.F_B0.weight'])[0]
    return f'A{count("cell.F_R.RDBs.")}B{count("recons.D_Net.RDBs.")}C{channels}'


def expected_variables(model: MMPRNN) -> dict:
    """Shapes of the model's variables (`jax.ShapeDtypeStruct` leaves), without computing."""
    frames = jax.ShapeDtypeStruct((1, model.window, 16, 16, 3), jnp.float32)
    priors = jax.ShapeDtypeStruct((1, model.window, 16, 16, 1), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), frames, priors)


def load_model(directory: str | pathlib.Path) -> tuple[MMPRNN, dict, dict]:
    """(model, variables, model config) of a checkpoint written by `save_model`."""
    config = load_model_config(directory)
    try:
        model = model_from_config(config)
    except (ValueError, KeyError) as error:
        raise CheckpointError(f'{directory}: unusable model config: {error}') from None
    return model, load_variables(directory, expected_variables(model)), config


def convert_raft_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Official RAFT state_dict (`raft-things.pth`, `raft-small.pth`) -> Flax variables of
    `mmp_jax.models.raft.RAFT`. A strided block's `downsample.1` is the same module as its
    `norm3` (`norm4` in bottlenecks), so the state_dict holds it twice; PyTorch loads the
    `downsample.1` copy last, so that one is kept."""
    state = without_data_parallel_prefix(state_dict)
    for key in [k for k in state if '.downsample.1.' in k]:
        block, leaf = key.split('.downsample.1.')
        norm = 'norm4' if f'{block}.norm4.{leaf}' in state else 'norm3'
        state[f'{block}.{norm}.{leaf}'] = state.pop(key)
    return convert_state_dict(state)
