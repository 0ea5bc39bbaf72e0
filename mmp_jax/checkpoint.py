"""Checkpoints on disk, all of the project's orbax I/O: the model folder `tools.deblur --checkpoint`
reads (written by `tools.convert_checkpoint` and at the end of training), its model config and
variables; and the training checkpoints of each stage (`training_manager`), restored with their
shardings, a damaged one set aside. Each may be a local folder or a URL: orbax writes local
folders and gs:// itself, any other scheme through a local staging folder
(`mmp_jax.io.staging`, which says what holds there). The mapping of PyTorch names is
`mmp_jax.convert`.
"""
import contextlib
import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import serialization
from jax.experimental import multihost_utils

from mmp_jax.errors import UserError
from mmp_jax import sharding
from mmp_jax.io import paths, staging
from mmp_jax.convert import check_same_structure
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_config


class CheckpointError(UserError):
    """A missing, unreadable or non-matching checkpoint, with its path and the problem."""


def orbax_folder(directory: str | os.PathLike) -> epath.Path:
    """`directory` as checkpoints take it: a local folder (made absolute) or a URL. A URL that is
    staged (`staging.is_staged`) is a CheckpointError when several processes run:
    each host would stage its own copy."""
    if staging.is_staged(directory) and jax.process_count() > 1:
        raise CheckpointError(f'{os.fspath(directory)}: checkpoints on {paths.scheme(directory)}:// go through a '
                              f'local staging folder, one process only ({jax.process_count()} run); use a local '
                              f'folder or a gs:// URL')
    return paths.as_path(directory)


def save_model(directory: str | os.PathLike, variables: Mapping, model_config: Mapping) -> None:
    """Writes an inference checkpoint: the model config (JSON) and its variables (orbax).

    Orbax writes into a temporary folder and renames it when complete (on a staged URL: the
    local staging folder, then uploaded whole, `io.staging`), so an interrupted save
    leaves no checkpoint behind. `directory` must not exist yet.
    """
    directory = orbax_folder(directory)
    if directory.exists():
        raise CheckpointError(f'{directory}: already exists; choose a new folder')
    with staging.writing(directory) as folder, ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(folder, ocp.args.Composite(
            model=ocp.args.JsonSave(dict(model_config)),
            variables=ocp.args.StandardSave(dict(variables))))


def replace_model(directory: str | os.PathLike, variables: Mapping, model_config: Mapping) -> None:
    """`save_model` into `directory`, replacing the model folder there if any: written beside it
    first, so that an interrupted save leaves the old one (or none) whole (on a staged URL, where
    folders move file by file: an interrupted move leaves no folder taken for whole, the old one in
    `.<name>.old`). Process 0 moves."""
    directory = orbax_folder(directory)
    fresh, old = (directory.with_name(f'.{directory.name}.{kind}') for kind in ('new', 'old'))
    for leftover in (fresh, old):  # of an earlier replacement that was killed
        if leftover.exists() and jax.process_index() == 0:
            leftover.rmtree()
    save_model(fresh, variables, model_config)
    if jax.process_index() == 0:
        if directory.exists():
            staging.move(directory, old)
        staging.move(fresh, directory)
        with contextlib.suppress(OSError):  # the new one is in place; a leftover goes at the next replacement
            old.rmtree()
    multihost_utils.sync_global_devices(f'{directory} replaced')  # before the others look at it


def model_folder(directory: str | os.PathLike) -> epath.Path:
    """The model folder of `directory`: itself (written by `save_model`) or, for a training
    workdir, its `model/`; CheckpointError naming what was expected where, or a staged one
    uploaded in part."""
    directory = orbax_folder(directory)
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: no such checkpoint folder')
    if (directory / 'model' / 'variables').is_dir():
        directory = directory / 'model'  # a training workdir: the model it exported
    elif not (directory / 'model').is_dir() or not (directory / 'variables').is_dir():
        hint = ('a training workdir whose run has not finished: its model/ is written at the end of training'
                if (directory / 'checkpoints').is_dir() else
                'make one with `python -m tools.convert_checkpoint`, or give a training workdir')
        raise CheckpointError(f'{directory}: not a model checkpoint: expected {directory}/model (the model '
                              f'config) and {directory}/variables; {hint}')
    if staging.is_staged(directory) and not staging.is_complete(directory):
        raise CheckpointError(f'{directory}: written in part (no {staging.MARKER} file: its upload was cut short); '
                              f'write it again')
    return directory


def _restore(directory: epath.Path, **items) -> dict:
    """Orbax items of a model folder (a staged URL's through a local copy); a damaged folder is a
    CheckpointError naming it."""
    try:
        with staging.reading(directory) as folder, ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            return checkpointer.restore(folder, ocp.args.Composite(**items))
    except (OSError, ValueError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f'{directory}: cannot be read: {problem}') from None


def load_model_config(directory: str | os.PathLike) -> dict:
    """The model config stored by `save_model` (a `config.model`-style dict)."""
    directory = model_folder(directory)
    config = _restore(directory, model=ocp.args.JsonRestore())['model']
    if not isinstance(config, dict):
        raise CheckpointError(f'{directory}/model: not a model config')
    return dict(config)


def load_variables(directory: str | os.PathLike, expected: Mapping) -> dict:
    """Variables stored by `save_model`, checked against `expected` (a tree of shapes,
    e.g. from `jax.eval_shape(model.init, ...)`)."""
    directory = model_folder(directory)
    restored = _restore(directory, variables=ocp.args.StandardRestore())['variables']
    check_same_structure(restored, expected, str(directory))
    return dict(restored)


def expected_variables(model: MMPRNN) -> dict:
    """Shapes of the model's variables (`jax.ShapeDtypeStruct` leaves), without computing."""
    frames = jax.ShapeDtypeStruct((1, model.window, 16, 16, 3), jnp.float32)
    priors = jax.ShapeDtypeStruct((1, model.window, 16, 16, 1), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), frames, priors)


def load_model(directory: str | os.PathLike) -> tuple[MMPRNN, dict, dict]:
    """(model, variables, model config) of a checkpoint written by `save_model`."""
    directory = model_folder(directory)
    config = load_model_config(directory)
    try:
        model = model_from_config(config)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f'{directory}: unusable model config: {error}') from None
    return model, load_variables(directory, expected_variables(model)), config


# Training checkpoints: <workdir>/checkpoints/<stage>/<step>/ with the items `state` and `meta`.

def _manager(directory: epath.Path, options: ocp.CheckpointManagerOptions, **items):
    """Orbax's manager of `directory` (`items`: its item_names or item_handlers), or for a staged
    URL a `staging.StagedManager` over orbax's manager of a staging folder."""
    if not staging.is_staged(directory):
        return ocp.CheckpointManager(directory, options=options, **items)
    return staging.StagedManager(directory, options.max_to_keep,
                                 lambda local: ocp.CheckpointManager(local, options=options, **items))


def training_manager(workdir: str | os.PathLike, stage: str, keep: int) -> ocp.CheckpointManager:
    """The asynchronous manager of `workdir`/checkpoints/`stage` (items `state` and `meta`),
    keeping the latest `keep` steps (a `staging.StagedManager` on a staged URL)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True, create=True)
    return _manager(orbax_folder(workdir) / 'checkpoints' / stage, options, item_names=('state', 'meta'))


def restore_training_step(manager: ocp.CheckpointManager, step: int, state, mesh):
    """(state, meta) of checkpoint `step`: `state` (a `train_step.TrainState`) filled in, replicated
    over `mesh`."""
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.replicated(mesh)),
                          serialization.to_state_dict(state))
    items = ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
    restored = manager.restore(step, args=items)
    return serialization.from_state_dict(state, restored['state']), dict(restored['meta'])


DAMAGE = (KeyError, ValueError, OSError)


def is_damage(error: Exception) -> bool:
    """Whether `error`, raised restoring a checkpoint, says that it is damaged. Orbax raises
    KeyError for a missing item folder (`state/`, `meta/`), json.JSONDecodeError (a ValueError)
    for a truncated metadata file, and a bare Exception from TensorStore's ValueError
    (OUT_OF_RANGE, DATA_LOSS) for a truncated or corrupt array file."""
    return isinstance(error, DAMAGE) or (type(error) is Exception and isinstance(error.__cause__, DAMAGE))


def damage_summary(error: Exception) -> str:
    """One line: what `is_damage` found wrong (TensorStore's own error rather than orbax's wrapper)."""
    cause = error.__cause__ if type(error) is Exception and error.__cause__ is not None else error
    return f'{type(cause).__name__}: {(str(cause).splitlines() or [""])[0]}'


def set_aside(manager: ocp.CheckpointManager, step: int) -> None:
    """Renames the damaged checkpoint `step` to `<step>.damaged` (out of the steps orbax lists,
    so that the step can be saved again; `staging.move`)."""
    if jax.process_index() == 0:
        folder = manager.directory / str(step)
        staging.move(folder, folder.with_name(f'{step}.damaged'))
    multihost_utils.sync_global_devices(f'checkpoint {step} set aside')  # before the others list the steps
    manager.reload()


def restore_training_state(manager: ocp.CheckpointManager, state, mesh):
    """(state, meta) of the latest checkpoint that restores, placed as `state` is. A damaged
    newer one is reported (logging.warning) and set aside (`set_aside`) once an older one
    restored; none restoring is a CheckpointError (and nothing is moved)."""
    damaged = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = restore_training_step(manager, step, state, mesh)
        except Exception as error:  # pylint: disable=broad-exception-caught
            if not is_damage(error):
                raise
            logging.warning('%s: checkpoint damaged, not restored (%s)', manager.directory / str(step),
                            damage_summary(error))
            damaged.append((step, error))
            continue
        for bad, _ in damaged:
            set_aside(manager, bad)
        if damaged:
            logging.warning('%s: resuming from step %d, the latest checkpoint that restores', manager.directory, step)
        return restored
    step, error = damaged[0]
    raise CheckpointError(f'{manager.directory}: no checkpoint restores (step {step}: {damage_summary(error)}); '
                          f'delete the damaged step folders to start over, or use a new workdir')


def save_training_state(manager: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
    """Saves `state` (a `train_step.TrainState`) and `meta` (JSON) as checkpoint `step`, asynchronously."""
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(serialization.to_state_dict(state)),
                                               meta=ocp.args.JsonSave(meta)), force=True)


def latest_saved_state(directory: epath.Path) -> dict | None:
    """The `state` item of the latest training checkpoint in `directory` as saved (nested dicts
    of arrays on this process's first device, whatever devices and processes saved it), or None
    where there is none."""
    handlers = {'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()}
    with _manager(orbax_folder(directory), ocp.CheckpointManagerOptions(), item_handlers=handlers) as manager:
        step = manager.latest_step()
        if step is None:
            return None
        here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here),
                              manager.item_metadata(step)['state'])
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))['state']
