"""The two training stages, one unit each: name, settings, model, loss, learning-rate schedule,
frozen parameters, starting variables, evaluator and summary line. `train.py` runs any stage
through this interface, and `train_step` makes any stage's step.

- `mmpnet` (stage 1): MMP-Net regresses the MMP of blurry frames (windows of one frame, frame
  0 used), L1 (paper Sec. 4.1) plus the gradient term (`losses.gradient_l1` of the MMP,
  uncentred) weighted by `weights['gradient']` where given, as the authors' notebook trains it;
  its BatchNorm statistics update from the batch; lr halved half-way. Settings `config.mmpnet`;
  evaluated by `MMPNetEvaluator` (L1 of the prior).
- `mmprnn` (stage 2): MMP-RNN with stage 1's MMP-Net frozen inside it (its weights neither
  differentiated nor updated; with the model's `prior_batch_norm` 'running' it runs on its
  running statistics, with 'batch' on the batch's, its running statistics updated in the state
  as the released code's); loss `losses.total_loss` (whose motion magnitude term takes the prior
  on the running statistics); cosine annealing per step (the paper's) or per epoch (the
  released code's). Settings `config.mmprnn`; evaluated as the original's test
  (`MMPRNNEvaluator`); its model is exported.

Batches: `blurry`, `sharp` `[B, T, P, P, 3]`, `mmp` `[B, T, P, P, 1]`, float32 in [0, 1]. Both
stages scale MMP-Net's input the same way: `InputScaling` of `config.model` (stage 1 as stage
2's model will scale it).
"""
from collections.abc import Callable

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from etils import epath

from mmp_jax.errors import UserError
from mmp_jax import evaluate, losses, starting_points, train_step
from mmp_jax.convert import check_same_structure
from mmp_jax.io import paths
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import (PRIOR_PATH, InputScaling, mmpnet_prior, prior_variables,
                                    with_prior_variables)
from mmp_jax.models.variants import model_from_config, parse_variant

RENAMED = {'train': 'mmprnn'}  # config sections of earlier versions -> their names now
RETIRED = {'mmprnn.frames': "the variant's F (config.model.variant: A9B10C18F8 trains 8-frame sequences)"}


class TrainingError(UserError):
    """A run that cannot go on (the message says why and what to do)."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """A ValueError naming the new field for a config that still uses an old name."""
    for old, new in RENAMED.items():
        if old in config:
            raise UserError(f'config.{old} is now config.{new} (the settings of stage {new!r}, beside '
                            f'config.mmpnet): rename it in the config file and in --config.{old}.* overrides')
    for field, now in RETIRED.items():
        section, name = field.split('.')
        if section in config and name in config[section]:
            raise UserError(f'config.{field} is now {now}: remove it from the config file')


def scaling(config: ml_collections.ConfigDict) -> InputScaling:
    """MMP-Net's (and MMP-RNN's) input scaling of `config.model`."""
    return InputScaling(config.model.centralize, config.model.normalize)


def _schedule_fields(settings: ml_collections.ConfigDict) -> tuple[int, float]:
    """(steps_per_epoch, floor) of a stage's learning rate schedule; 0 and 0.0 where not set."""
    return settings.get('lr_steps_per_epoch', 0), settings.get('lr_floor', 0.0)


def halving_schedule(learning_rate: float, num_steps: int) -> optax.Schedule:
    """Stage 1's learning rate: halved half-way."""
    return optax.piecewise_constant_schedule(learning_rate, {num_steps // 2: 0.5})


def cosine_schedule(learning_rate: float, num_steps: int, steps_per_epoch: int = 0,
                    floor: float = 0.0) -> optax.Schedule:
    """Stage 2's learning rate, cosine-annealed to `floor`: every step where `steps_per_epoch` is 0
    (the paper's); otherwise constant within an epoch and moved once per epoch of
    `steps_per_epoch` steps over `num_steps // steps_per_epoch` epochs, as the released code's
    `CosineAnnealingLR(T_max=end_epoch, eta_min=1e-8)` stepped after each epoch (train/dp.py)."""
    if not steps_per_epoch:
        return optax.cosine_decay_schedule(learning_rate, num_steps, alpha=floor / learning_rate)
    epochs = max(num_steps // steps_per_epoch, 1)
    by_epoch = optax.cosine_decay_schedule(learning_rate, epochs, alpha=floor / learning_rate)
    return lambda step: by_epoch(step // steps_per_epoch)


def prior_function(model: nn.Module, variables: dict) -> Callable[[jax.Array], jax.Array]:
    """Frames `[N, H, W, 3]` in [0, 1] -> MMP-Net's prior `[N, H, W, 1]`, with the MMP-Net inside
    MMP-RNN's `variables`, scaled as `model` scales it (the motion magnitude loss's `prior_of`)."""
    return lambda frames: mmpnet_prior(prior_variables(variables), frames, model.scaling)


def mmpnet_loss(model: nn.Module, weights: dict[str, float], scaling: InputScaling) -> train_step.LossFunction:
    """Stage 1's loss (the module doc) of MMP-Net `model` on frame 0 of each window."""

    def loss(params, frozen, batch_stats, batch):
        frames = scaling.to_model(batch['blurry'][:, 0])
        prior, updates = model.apply({'params': params, 'batch_stats': batch_stats}, frames, train=True,
                                     mutable=['batch_stats'])
        target = batch['mmp'][:, 0]
        terms = {'l1': jnp.mean(jnp.abs(prior - target))}
        if weights.get('gradient', 0):  # the notebook's (LearningMMP/MMPtraining.ipynb) L1 + 0.5 gradient
            terms['gradient'] = losses.gradient_l1(prior, target, centre=0.0)
        value = terms['l1'] + weights.get('gradient', 0) * terms.get('gradient', 0.0)
        return value, (updates['batch_stats'], terms)
    return loss


def mmprnn_loss(model: nn.Module, weights: dict[str, float]) -> train_step.LossFunction:
    """Stage 2's loss (the module doc) of MMP-RNN `model`, its MMP-Net frozen."""

    def loss(params, frozen, batch_stats, batch):
        variables = {'params': train_step.merge(params, frozen), 'batch_stats': batch_stats}
        priors = batch['mmp'] if model.needs_prior else None
        if model.trains_prior_statistics:
            output, updates = model.apply(variables, batch['blurry'], priors, train=True, mutable=['batch_stats'])
            batch_stats = jax.lax.stop_gradient(updates['batch_stats'])
        else:
            output = model.apply(variables, batch['blurry'], priors)
        target = batch['sharp'][:, model.past_frames:batch['sharp'].shape[1] - model.future_frames]
        prior_of = prior_function(model, variables) if frozen else None
        value, terms = losses.total_loss(output, target, prior_of, weights)
        return value, (batch_stats, terms)
    return loss


class Stage:
    """One stage; subclasses set `name` and what differs. The methods of `config` run the stage
    as a config says; `make_optimizer`, `create_state` and `make_step` take their settings as
    arguments (tests and benchmarks use them)."""
    name: str
    evaluator_class: type    # its `summary(report)` is the stage's line; `REPORT_KEYS` its report
    exports_model = False
    needs_mmp = False        # trains on the records' MMP (high-frame-rate exports only)
    frozen_path: tuple[str, ...] | None = None   # parameters not trained

    def schedule(self, learning_rate: float, num_steps: int, steps_per_epoch: int = 0,
                 floor: float = 0.0) -> optax.Schedule:
        raise NotImplementedError

    def loss(self, model, weights: dict[str, float], scaling: InputScaling) -> train_step.LossFunction:
        raise NotImplementedError

    def make_optimizer(self, learning_rate: float, num_steps: int, clip_norm: float = 0.0,
                       steps_per_epoch: int = 0, floor: float = 0.0) -> optax.GradientTransformation:
        """Adam on the stage's schedule (`train_step.make_optimizer`)."""
        return train_step.make_optimizer(self.schedule(learning_rate, num_steps, steps_per_epoch, floor), clip_norm)

    def create_state(self, variables: dict, optimizer: optax.GradientTransformation) -> train_step.TrainState:
        """Step 0 of `variables`, the stage's frozen parameters kept apart."""
        return train_step.create_state(variables, optimizer, self.frozen_path)

    def make_step(self, model, optimizer: optax.GradientTransformation, weights: dict[str, float] = losses.WEIGHTS,
                  scaling: InputScaling = InputScaling()) -> Callable:
        """The training step of the stage's loss (not jitted; `train_step.make_step`)."""
        return train_step.make_step(self.loss(model, weights, scaling), optimizer)

    def settings(self, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
        return config[self.name]

    def frames(self, config) -> int:
        """Frames per training window."""
        raise NotImplementedError

    def model(self, config):
        raise NotImplementedError

    def init(self, config, model) -> dict:
        """The model's variables initialised from `config.seed`."""
        raise NotImplementedError

    def loss_weights(self, config) -> dict:
        return {}

    def optimizer(self, config):
        settings = self.settings(config)
        return self.make_optimizer(settings.learning_rate, settings.num_steps, settings.clip_norm,
                                   *_schedule_fields(settings))

    def learning_rate(self, config, step: int) -> float:
        """The optimizer's learning rate at `step` (the one step `step` + 1 takes)."""
        settings = self.settings(config)
        return float(self.schedule(settings.learning_rate, settings.num_steps, *_schedule_fields(settings))(step))

    def model_fields(self, config) -> dict:
        """The `config.model` fields the stage's weights depend on (a resume must keep them)."""
        return {k: v for k, v in config.model.items() if k not in starting_points.NOT_MODEL_FIELDS}

    def resume_settings(self, config) -> dict:
        """'section.field' -> value of the settings a resume must keep: the seed, the model's, the
        training data and the shape of the batches (which, with the seed, fix the data plan)."""
        settings = self.settings(config)
        fields = {'seed': config.seed, **{f'model.{k}': v for k, v in self.model_fields(config).items()},
                  'data.train_records': config.data.train_records, 'data.train_weights': config.data.train_weights,
                  f'{self.name}.batch_size': settings.batch_size, f'{self.name}.patch': settings.patch,
                  f'{self.name}.frames': self.frames(config)}
        if 'train_fraction' in settings:
            fields[f'{self.name}.train_fraction'] = settings.train_fraction
        return json.loads(json.dumps(fields))  # as a checkpoint's JSON gives them back (lists, not tuples)

    def step(self, config, model, optimizer):
        """The training step as `config` says (not jitted)."""
        return self.make_step(model, optimizer, self.loss_weights(config), scaling(config))

    def starting_variables(self, config, workdir: epath.Path, model, variables: dict) -> dict:
        """The variables a run without checkpoints starts from (default: `variables`, fresh)."""
        return variables

    def evaluator(self, config, model, workdir: epath.Path):
        raise NotImplementedError


class MMPNetStage(Stage):
    name = 'mmpnet'
    evaluator_class = evaluate.MMPNetEvaluator
    needs_mmp = True

    def schedule(self, learning_rate, num_steps, steps_per_epoch=0, floor=0.0) -> optax.Schedule:
        return halving_schedule(learning_rate, num_steps)

    def loss(self, model, weights, scaling) -> train_step.LossFunction:
        return mmpnet_loss(model, weights, scaling)

    def frames(self, config) -> int:
        return 1

    def model(self, config):
        return MMPNet()

    def model_fields(self, config) -> dict:
        return {k: config.model[k] for k in ('centralize', 'normalize')}  # its input scaling

    def loss_weights(self, config) -> dict:
        return dict(self.settings(config).loss_weights)

    def init(self, config, model) -> dict:
        return jax.jit(model.init)(jax.random.key(config.seed), jnp.zeros((1, 16, 16, 3)))

    def evaluator(self, config, model, workdir: epath.Path) -> evaluate.MMPNetEvaluator:
        return evaluate.MMPNetEvaluator(scaling(config), config.eval.sample_images)


class MMPRNNStage(Stage):
    name = 'mmprnn'
    evaluator_class = evaluate.MMPRNNEvaluator
    exports_model = True
    frozen_path = PRIOR_PATH  # MMP-Net inside MMP-RNN is not trained

    def schedule(self, learning_rate, num_steps, steps_per_epoch=0, floor=0.0) -> optax.Schedule:
        return cosine_schedule(learning_rate, num_steps, steps_per_epoch, floor)

    def loss(self, model, weights, scaling) -> train_step.LossFunction:
        return mmprnn_loss(model, weights)  # the model scales MMP-Net's input itself

    def frames(self, config) -> int:
        """The variant's F: the paper's "length of the input image sequence", the original's
        `para.frames`."""
        return parse_variant(config.model.variant).frames

    def model(self, config):
        return model_from_config(config.model)

    def init(self, config, model) -> dict:
        return jax.jit(model.init)(jax.random.key(config.seed), jnp.zeros((1, model.window, 16, 16, 3)),
                                   jnp.zeros((1, model.window, 16, 16, 1)))

    @staticmethod
    def has_mmpnet(model) -> bool:
        return model.use_mmam and not model.needs_prior

    def loss_weights(self, config) -> dict:
        weights = dict(self.settings(config).loss_weights)
        if weights.get('motion_magnitude') and not self.has_mmpnet(self.model(config)):
            raise TrainingError('the motion magnitude loss needs MMP-Net, which this model has not (use_mmam off or '
                             'prior_source given): set --config.mmprnn.loss_weights.motion_magnitude=0')
        return weights

    def starting_variables(self, config, workdir: epath.Path, model, variables: dict) -> dict:
        """The fresh variables, or those of `config.mmprnn.init_checkpoint` (fine-tuning); with
        MMP-Net in the model, stage 1's MMP-Net put in them (from this job or
        `config.mmpnet.checkpoint`; optional after an init_checkpoint, which holds one)."""
        init = self.settings(config).init_checkpoint
        if init:
            loaded = starting_points.mmprnn_variables(init, config.model)
            check_same_structure(loaded, variables, f'config.mmprnn.init_checkpoint={init}')
            variables = jax.tree.map(jnp.asarray, loaded)
        if not self.has_mmpnet(model) or (init and not _mmpnet_source(config, workdir)):
            return variables
        mmpnet = _stage_one_mmpnet(config, workdir)
        for collection, tree in prior_variables(variables).items():
            check_same_structure(mmpnet[collection], tree, 'stage-1 MMP-Net')
        return with_prior_variables(variables, jax.tree.map(jnp.asarray, mmpnet))

    def evaluator(self, config, model, workdir: epath.Path) -> evaluate.MMPRNNEvaluator:
        outputs_dir = workdir / 'eval' / 'outputs' if config.eval.save_outputs else None
        if outputs_dir is not None and config.eval.save_videos and paths.is_url(workdir):
            raise TrainingError(f'{outputs_dir}: comparison videos are encoded to local files (PyAV); with a URL '
                                f'workdir set --config.eval.save_videos=False (the PNGs are written)')
        return evaluate.MMPRNNEvaluator(model, config.eval.chunk_frames, config.eval.sample_images,
                                        config.eval.quantization, outputs_dir, config.eval.save_videos)


STAGES = {stage.name: stage for stage in (MMPNetStage(), MMPRNNStage())}


def get(name: str) -> Stage:
    """The stage called `name`; a ValueError listing them for another name."""
    if name not in STAGES:
        raise UserError(f"unknown stage {name!r} in config.stages; accepted: {', '.join(STAGES)}")
    return STAGES[name]


def _mmpnet_source(config, workdir: epath.Path) -> str:
    """Where stage 1's MMP-Net is: this job's workdir, or config.mmpnet.checkpoint ('' if neither)."""
    return str(workdir) if 'mmpnet' in config.stages else config.mmpnet.checkpoint


def _stage_one_mmpnet(config, workdir: epath.Path) -> dict:
    """MMP-Net's variables from stage 1 of this job, or from config.mmpnet.checkpoint (a stage-1
    workdir, a model folder or an original MMP-Net file: `starting_points.mmpnet_variables`)."""
    source = _mmpnet_source(config, workdir)
    if not source:
        raise TrainingError("stage 'mmprnn' needs a trained MMP-Net: add 'mmpnet' to config.stages, or set "
                            "--config.mmpnet.checkpoint to the workdir of a stage-1 run (configs/mmpnet_gopro.py), "
                            "a model folder or the original MMP-Net file (model_best.pth.tar), or start from "
                            "--config.mmprnn.init_checkpoint")
    channel_order = '' if 'mmpnet' in config.stages else config.mmpnet.channel_order
    return starting_points.mmpnet_variables(source, channel_order)
