"""The training step of both stages, jitted with explicit shardings (data parallel).

Stage 1 (`stage='mmpnet'`): MMP-Net regresses the prior, L1 (paper Sec. 4.1), plus the gradient
term (`losses.gradient_l1` of the MMP, uncentred) weighted by `weights['gradient']` where given, as
the authors' notebook trains it; its BatchNorm statistics update from the batch. Stage 2
(`stage='mmprnn'`): MMP-RNN with MMP-Net frozen (its weights are not differentiated or updated;
with the model's `prior_batch_norm` 'running' it runs on its running statistics, with 'batch' on
the batch's, its running statistics updated in the state as the released code's), loss
`losses.total_loss` (whose motion magnitude term takes the prior on the running statistics).
Optimisers: Adam with step halving (stage 1: lr halved half-way) or cosine annealing over
`num_steps` (stage 2), as the paper trains.

Batches: `blurry`, `sharp` `[B, T, P, P, 3]`, `mmp` `[B, T, P, P, 1]`, float32 in [0, 1];
stage 1 uses frame 0 of each window (windows of T = 1 suffice), scaled for MMP-Net as stage 2's
model will scale it (`InputScaling`, from the model config's centralize / normalize).

`checked` adds a scalar bool to the step's outputs: whether the state it stepped from is sound
(see `sound`), reduced on the device so that the training loop reads it only when it logs or saves.
"""
from collections.abc import Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from mmp_jax import losses
from mmp_jax.models.mmp_rnn import PRIOR_PATH, InputScaling, mmpnet_prior, prior_variables

FROZEN = PRIOR_PATH  # MMP-Net inside MMP-RNN is not trained in stage 2


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict          # trained
    frozen: dict          # not trained: MMP-Net's params in stage 2; empty in stage 1
    batch_stats: dict
    opt_state: optax.OptState


def split_frozen(params: dict) -> tuple[dict, dict]:
    """(trainable, frozen): MMP-Net's parameters inside MMP-RNN are frozen."""
    flat = traverse_util.flatten_dict(params)
    frozen = {k: v for k, v in flat.items() if k[:len(FROZEN)] == FROZEN}
    trainable = {k: v for k, v in flat.items() if k[:len(FROZEN)] != FROZEN}
    return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def merge(trainable: dict, frozen: dict) -> dict:
    return traverse_util.unflatten_dict({**traverse_util.flatten_dict(trainable),
                                         **traverse_util.flatten_dict(frozen)})


def schedule(stage: str, learning_rate: float, num_steps: int, steps_per_epoch: int = 0,
             floor: float = 0.0) -> optax.Schedule:
    """The learning rate of a step: halved half-way (stage 1) or cosine-annealed to `floor` (stage 2).

    Stage 2's cosine moves every step where `steps_per_epoch` is 0 (the paper's); otherwise it is
    constant within an epoch and moves once per epoch of `steps_per_epoch` steps over
    `num_steps // steps_per_epoch` epochs, as the released code's `CosineAnnealingLR(T_max=end_epoch,
    eta_min=1e-8)` stepped after each epoch (train/dp.py)."""
    if stage == 'mmpnet':
        return optax.piecewise_constant_schedule(learning_rate, {num_steps // 2: 0.5})
    if stage == 'mmprnn':
        if not steps_per_epoch:
            return optax.cosine_decay_schedule(learning_rate, num_steps, alpha=floor / learning_rate)
        epochs = max(num_steps // steps_per_epoch, 1)
        by_epoch = optax.cosine_decay_schedule(learning_rate, epochs, alpha=floor / learning_rate)
        return lambda step: by_epoch(step // steps_per_epoch)
    raise ValueError(f"unknown stage {stage!r}; accepted: 'mmpnet', 'mmprnn'")


def make_optimizer(stage: str, learning_rate: float, num_steps: int, clip_norm: float = 0.0,
                   steps_per_epoch: int = 0, floor: float = 0.0) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8, no weight decay) on `schedule`;
    gradients clipped to a global norm of `clip_norm` first where it is positive (not in the paper;
    PyTorch's `clip_grad_norm_` scales by `clip_norm / (norm + 1e-6)`, optax's by `clip_norm / norm`:
    a relative 5e-8 at norm 20, below float32's resolution)."""
    adam = optax.adam(schedule(stage, learning_rate, num_steps, steps_per_epoch, floor))
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam) if clip_norm > 0 else adam


def create_state(variables: dict, optimizer: optax.GradientTransformation, stage: str) -> TrainState:
    trainable, frozen = split_frozen(variables['params']) if stage == 'mmprnn' else (variables['params'], {})
    return TrainState(jnp.zeros((), jnp.int32), trainable, frozen, variables.get('batch_stats', {}),
                      optimizer.init(trainable))


def prior_function(model: nn.Module, variables: dict) -> Callable[[jax.Array], jax.Array]:
    """Frames `[N, H, W, 3]` in [0, 1] -> MMP-Net's prior `[N, H, W, 1]`, with the MMP-Net inside
    MMP-RNN's `variables`, scaled as `model` scales it (the motion magnitude loss's `prior_of`)."""
    return lambda frames: mmpnet_prior(prior_variables(variables), frames, model.scaling)


def make_step(model: nn.Module, optimizer: optax.GradientTransformation, stage: str,
              weights: dict[str, float] = losses.WEIGHTS, scaling: InputScaling = InputScaling()) -> Callable:
    """`step(state, batch) -> (state, metrics)`, not yet jitted (see `jit_step`). `scaling`:
    MMP-Net's input in stage 1 (stage 2 takes the model's own)."""

    def mmpnet_loss(params, batch_stats, batch):
        frames = scaling.to_model(batch['blurry'][:, 0])
        prior, updates = model.apply({'params': params, 'batch_stats': batch_stats}, frames, train=True,
                                     mutable=['batch_stats'])
        target = batch['mmp'][:, 0]
        terms = {'l1': jnp.mean(jnp.abs(prior - target))}
        if weights.get('gradient', 0):  # the notebook's (LearningMMP/MMPtraining.ipynb) L1 + 0.5 gradient
            terms['gradient'] = losses.gradient_l1(prior, target, centre=0.0)
        loss = terms['l1'] + weights.get('gradient', 0) * terms.get('gradient', 0.0)
        return loss, (updates['batch_stats'], terms)

    def mmprnn_loss(params, frozen, batch_stats, batch):
        variables = {'params': merge(params, frozen), 'batch_stats': batch_stats}
        priors = batch['mmp'] if model.needs_prior else None
        if model.trains_prior_statistics:
            output, updates = model.apply(variables, batch['blurry'], priors, train=True, mutable=['batch_stats'])
            batch_stats = jax.lax.stop_gradient(updates['batch_stats'])
        else:
            output = model.apply(variables, batch['blurry'], priors)
        target = batch['sharp'][:, model.past_frames:batch['sharp'].shape[1] - model.future_frames]
        prior_of = prior_function(model, variables) if frozen else None
        loss, terms = losses.total_loss(output, target, prior_of, weights)
        return loss, (batch_stats, terms)

    def step(state: TrainState, batch: dict):
        if stage == 'mmpnet':
            grad_fn = jax.value_and_grad(mmpnet_loss, has_aux=True)
            (loss, (batch_stats, terms)), grads = grad_fn(state.params, state.batch_stats, batch)
        else:
            grad_fn = jax.value_and_grad(mmprnn_loss, has_aux=True)
            (loss, (batch_stats, terms)), grads = grad_fn(state.params, state.frozen, state.batch_stats, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
        return new, {'loss': loss, **terms}
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
