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
