"""Model checkpoints on disk: the orbax folder `tools.deblur --checkpoint` reads (written by
`tools.convert_checkpoint` and at the end of training), its model config and variables.
The mapping of PyTorch names is `mmp_jax.convert`.
"""
import pathlib
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from mmp_jax.convert import check_same_structure
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_config


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


def model_folder(directory: str | pathlib.Path) -> pathlib.Path:
    """The model folder of `directory`: itself (written by `save_model`) or, for a training
    workdir, its `model/`; CheckpointError naming what was expected where."""
    directory = pathlib.Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: no such checkpoint folder')
    if (directory / 'model' / 'variables').is_dir():
        return directory / 'model'  # a training workdir: the model it exported
    if not (directory / 'model').is_dir() or not (directory / 'variables').is_dir():
        hint = ('a training workdir whose run has not finished: its model/ is written at the end of training'
                if (directory / 'checkpoints').is_dir() else
                'make one with `python -m tools.convert_checkpoint`, or give a training workdir')
        raise CheckpointError(f'{directory}: not a model checkpoint: expected {directory}/model (the model '
                              f'config) and {directory}/variables; {hint}')
    return directory


def _restore(directory: pathlib.Path, **items) -> dict:
    """Orbax items of a model folder; a damaged folder is a CheckpointError naming it."""
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            return checkpointer.restore(directory, ocp.args.Composite(**items))
    except (OSError, ValueError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f'{directory}: cannot be read: {problem}') from None


def load_model_config(directory: str | pathlib.Path) -> dict:
    """The model config stored by `save_model` (a `config.model`-style dict)."""
    directory = model_folder(directory)
    config = _restore(directory, model=ocp.args.JsonRestore())['model']
    if not isinstance(config, dict):
        raise CheckpointError(f'{directory}/model: not a model config')
    return dict(config)


def load_variables(directory: str | pathlib.Path, expected: Mapping) -> dict:
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


def load_model(directory: str | pathlib.Path) -> tuple[MMPRNN, dict, dict]:
    """(model, variables, model config) of a checkpoint written by `save_model`."""
    directory = model_folder(directory)
    config = load_model_config(directory)
    try:
        model = model_from_config(config)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f'{directory}: unusable model config: {error}') from None
    return model, load_variables(directory, expected_variables(model)), config
