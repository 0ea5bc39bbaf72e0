"""The training step, the same for every stage, jitted with explicit shardings (data parallel).

A stage (`mmp_jax.stages`) gives its loss (`LossFunction`), its learning-rate schedule and the
path of its frozen parameters; here they become a state (`create_state`: the frozen ones kept
apart, neither differentiated nor updated), an optimizer (`make_optimizer`: Adam, optionally
after global-norm clipping) and a step (`make_step`): the loss's gradient with respect to the
trained parameters, an optimizer update, and the batch statistics the loss returns.

`checked` adds a scalar bool to the step's outputs: whether the state it stepped from is sound
(see `sound`), reduced on the device so that the training loop reads it only when it logs or saves.
"""
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

# (params, frozen, batch_stats, batch) -> (loss, (batch_stats, terms)): a stage's loss of the
# trained and frozen parameters on a batch, the batch statistics after it, its named terms
LossFunction = Callable[[dict, dict, dict, dict], tuple[jax.Array, tuple[dict, dict]]]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict          # trained
    frozen: dict          # not trained (MMP-Net's params in stage 2); empty where none are
    batch_stats: dict
    opt_state: optax.OptState


def split_frozen(params: dict, frozen_path: tuple[str, ...] | None) -> tuple[dict, dict]:
    """(trainable, frozen): the parameters under `frozen_path` are frozen (none where None)."""
    flat = traverse_util.flatten_dict(params)
    is_frozen = lambda key: frozen_path is not None and key[:len(frozen_path)] == frozen_path
    frozen = {k: v for k, v in flat.items() if is_frozen(k)}
    trainable = {k: v for k, v in flat.items() if not is_frozen(k)}
    return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def merge(trainable: dict, frozen: dict) -> dict:
    return traverse_util.unflatten_dict({**traverse_util.flatten_dict(trainable),
                                         **traverse_util.flatten_dict(frozen)})


def make_optimizer(schedule: optax.Schedule, clip_norm: float = 0.0) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8, no weight decay) on `schedule`;
    gradients clipped to a global norm of `clip_norm` first where it is positive (not in the paper;
    PyTorch's `clip_grad_norm_` scales by `clip_norm / (norm + 1e-6)`, optax's by `clip_norm / norm`:
    a relative 5e-8 at norm 20, below float32's resolution)."""
    adam = optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam) if clip_norm > 0 else adam


def create_state(variables: dict, optimizer: optax.GradientTransformation,
                 frozen_path: tuple[str, ...] | None = None) -> TrainState:
    """Step 0 of `variables`, the parameters under `frozen_path` kept frozen."""
    trainable, frozen = split_frozen(variables['params'], frozen_path)
    return TrainState(jnp.zeros((), jnp.int32), trainable, frozen, variables.get('batch_stats', {}),
                      optimizer.init(trainable))


def make_step(loss: LossFunction, optimizer: optax.GradientTransformation) -> Callable:
    """`step(state, batch) -> (state, metrics)` (metrics: the loss and its terms), not yet jitted
    (see `jit_step`)."""

    def step(state: TrainState, batch: dict):
        grad_fn = jax.value_and_grad(loss, has_aux=True)
        (value, (batch_stats, terms)), grads = grad_fn(state.params, state.frozen, state.batch_stats, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
        return new, {'loss': value, **terms}
    return step


def all_finite(tree) -> jax.Array:
    """A scalar bool: every element of every leaf of `tree` is finite."""
    return jnp.array([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)], bool).all()


def sound(state: TrainState, loss: jax.Array, new: TrainState) -> jax.Array:
    """A scalar bool: `state` can be trained on, i.e. its parameters and statistics, its loss
    and the state `new` one step from it are all finite (a state of huge yet finite weights
    fails here: its loss, or the step after it, overflows)."""
    return (jnp.isfinite(loss) & all_finite((state.params, state.batch_stats))
            & all_finite((new.params, new.batch_stats)))


def checked(step: Callable) -> Callable:
    """`step(state, batch) -> (new, (metrics, sound))` of a `make_step` step: `sound` (see
    `sound`) is about the state it steps from."""

    def run(state: TrainState, batch: dict):
        new, metrics = step(state, batch)
        return new, (metrics, sound(state, metrics['loss'], new))
    return run


def jit_step(step: Callable, state_sharding, batch_sharding) -> Callable:
    """The step (of `make_step` or `checked`) jitted with the state replicated and the batch
    split over the data axis; the old state's buffers are donated."""
    return jax.jit(step, in_shardings=(state_sharding, batch_sharding),
                   out_shardings=(state_sharding, None), donate_argnums=0)
