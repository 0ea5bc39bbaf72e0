"""The training loop of both stages: `train_and_evaluate(config, workdir)` (the other modes of
`mmp_jax.main`, eval and export: `mmp_jax.modes`).

Stage 1 (`mmpnet`) trains MMP-Net on blurry frames and their MMP; stage 2 (`mmprnn`) trains
MMP-RNN with the stage-1 MMP-Net frozen inside it (`config.stages` lists which run, in order).
Each stage resumes from its latest checkpoint: the train state and the step, which is also
the data position (batches are a function of `config.seed` and the step, see
`mmp_jax.data.input_pipeline`; training draws no other random numbers), so a resumed run
ends bit-identical to one that never stopped. A resume with other model, data or batch settings
(`Stage.resume_settings`) is refused, naming them.

`workdir` (absolute or relative):
    checkpoints/<stage>/<step>/  orbax, every `checkpoint_every` steps, the last, and on SIGTERM
                                 or a preemption notice, of sound states only (`train_stage`);
                                 the latest `keep_checkpoints` kept; a damaged one that does not
                                 restore is reported and set aside as <step>.damaged
    checkpoints/mmprnn_best/     the model folder of the state with the best evaluation PSNR so far
    model/                       the trained MMP-RNN for `tools.deblur --checkpoint`: the best
                                 evaluated state when evaluation runs, else the last
                                 (`--mode=export`: of any kept checkpoint)
    config.json                  every run in this workdir (training, --mode=eval, --mode=export):
                                 its mode, resolved config and command line
    eval/metrics.json            the latest evaluation of each stage (and its last train losses);
                                 stage 2's `best`: the step and PSNR of the best evaluation
    eval/outputs/<seq>/<i>.png   every scored frame, with config.eval.save_outputs (and <seq>.mp4
                                 input | output | sharp with config.eval.save_videos)
    eval/<stage>_<sample>.png    blurry | output | sharp | prior (stage 1: blurry | prior | GT)
    events.out.tfevents.*        TensorBoard: losses, steps/s, evaluation scalars and images
"""
import contextlib
import itertools
import os
import signal
import threading

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from clu import metric_writers, periodic_actions
from etils import epath

from mmp_jax import checkpoint, sharding, stages, train_step, workdir_records
from mmp_jax.data import input_pipeline, prefetch
from mmp_jax.stages import TrainingError


class Preempted(Exception):
    """SIGTERM or a preemption notice: a checkpoint of `step` was saved."""

    def __init__(self, step: int):
        super().__init__(f'stopped at step {step} on request (SIGTERM / preemption); its checkpoint is '
                         f'saved: run the same command to resume')


def fresh_state(config, stage: stages.Stage):
    """(model, optimizer, state initialised from config.seed) of a stage."""
    model = stage.model(config)
    optimizer = stage.optimizer(config)
    return model, optimizer, stage.create_state(stage.init(config, model), optimizer)


def restore(manager, state: train_step.TrainState, mesh):
    """`checkpoint.restore_training_state`; none restoring is a TrainingError."""
    try:
        return checkpoint.restore_training_state(manager, state, mesh)
    except checkpoint.CheckpointError as error:
        raise TrainingError(str(error)) from error


def _diverged(stage: str, step: int, values: dict, manager) -> TrainingError:
    """The error of a run that is not sound at `step` (`train_step.sound`), naming the checkpoint kept."""
    manager.wait_until_finished()
    good = manager.latest_step()
    kept = (f'the last good checkpoint (step {good}) is kept in {manager.directory / str(good)}'
            if good is not None else 'no checkpoint had been saved yet')
    return TrainingError(f'{stage} step {step}: the loss is not finite or a step from it overflows ({values}); '
                         f'stopped, {kept}; lower the learning rate or check the data')


def _host_values(stage: str, step: int, metrics: dict, sound: jax.Array, manager) -> dict:
    """The metrics of `step` as floats on the host; a TrainingError (`_diverged`) where the state
    is not sound. This is the loop's only wait for the device: at log and save cadence."""
    values, ok = jax.device_get((metrics, sound))
    values = {k: float(v) for k, v in values.items()}
    if not ok:
        raise _diverged(stage, step, values, manager)
    return values


def _probe(step_fn, state: train_step.TrainState, batch: dict) -> tuple[dict, jax.Array]:
    """(metrics, sound) of `state` itself, before it is saved: one step from a copy of it (the
    step donates its input) on `batch`, whose result is thrown away."""
    _, (metrics, sound) = step_fn(jax.tree.map(jnp.copy, state), batch)
    return metrics, sound


def variables_of(state: train_step.TrainState) -> dict:
    params = train_step.merge(state.params, state.frozen) if state.frozen else state.params
    return {'params': params, 'batch_stats': state.batch_stats}


def _batches(config, stage: stages.Stage, start_step: int):
    settings = stage.settings(config)
    windows = input_pipeline.train_windows(config.data.train_records, config.data.train_weights, stage.frames(config),
                                           config.data.records_in_memory, settings.get('train_fraction', 1.0),
                                           config.seed)
    if stage.needs_mmp and not windows.has_mmp:
        raise TrainingError(f'{config.data.train_records}: the records hold no MMP; stage {stage.name} trains on it: '
                            f'export them from sharp high-frame-rate video (--source gopro_raw or synthetic)')
    return input_pipeline.train_batches(windows, config.data.reader, settings.patch, settings.batch_size, config.seed,
                                        start_step, jax.process_index(), jax.process_count())


def _device_batches(config, stage: stages.Stage, start_step: int, mesh):
    """A context giving the global batches `[B_global, ...]` of steps `start_step + 1` to the
    stage's last on the devices (`sharding.shard_batch`), up to `config.data.device_prefetch` of
    them made ready ahead while the steps run (`prefetch.prefetched`; 0: each when its step comes)."""
    steps = stage.settings(config).num_steps - start_step
    return prefetch.prefetched(itertools.islice(_batches(config, stage, start_step), steps),
                               lambda host: sharding.shard_batch(host, mesh), config.data.device_prefetch)


@contextlib.contextmanager
def _stop_on_sigterm():
    """A flag set by SIGTERM while the block runs (the loop saves and stops at the next step)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_stage(config, stage: stages.Stage, workdir: epath.Path, mesh, writer, stop: threading.Event) -> dict:
    """Trains one stage to `num_steps` (resuming if it has a checkpoint), evaluates it; returns
    the evaluation report (empty without eval records).

    The host waits for the device only at log and save cadence: there it checks that the
    training is sound (`train_step.sound`: finite loss, parameters and next step) and stops
    with a TrainingError if not. A checkpoint is saved only of a state found sound by a probe
    step from it (`_probe`), so the last checkpoint kept after a divergence resumes with a lower
    learning rate. A divergence is sticky (NaN stays NaN), so it stops the run at the next check.
    """
    settings = stage.settings(config)
    model, optimizer, state = fresh_state(config, stage)
    sharding.check_global_batch(settings.batch_size, mesh)
    step_fn = train_step.checked(stage.step(config, model, optimizer))
    evaluator = stage.evaluator(config, model, workdir)
    sequences = eval_sequences(config)
    with checkpoint.training_manager(workdir, stage.name, config.keep_checkpoints) as manager, \
            contextlib.ExitStack() as stack:
        meta = {}
        if manager.latest_step() is not None:
            state, meta = restore(manager, state, mesh)
            _check_resume(manager.directory, meta, stage.resume_settings(config))
        else:
            variables = stage.starting_variables(config, workdir, model, variables_of(state))
            state = stage.create_state(variables, optimizer)
        state = sharding.replicate(state, mesh)
        start = int(state.step)
        last_train = meta.get('train', {})
        if start < settings.num_steps:
            logging.info('%s: training steps %d..%d', stage.name, start + 1, settings.num_steps)
            step_fn = train_step.jit_step(step_fn, sharding.replicated(mesh), sharding.batch_sharding(mesh))
            progress = periodic_actions.ReportProgress(num_train_steps=settings.num_steps, writer=writer,
                                                       every_steps=settings.log_every, every_secs=None)
            batches = stack.enter_context(_device_batches(config, stage, start, mesh))
            for step in range(start + 1, settings.num_steps + 1):
                batch = next(batches)
                state, (metrics, sound) = step_fn(state, batch)
                progress(step)
                logging_now = step % settings.log_every == 0 or step == settings.num_steps
                stopping = stop.is_set() or manager.reached_preemption(step)
                saving = step % settings.checkpoint_every == 0 or step == settings.num_steps or stopping
                if logging_now or saving:
                    values = _host_values(stage.name, step, metrics, sound, manager)
                if logging_now:
                    last_train = values
                    rate = stage.learning_rate(config, step - 1)
                    writer.write_scalars(step, {**{f'{stage.name}/train_{k}': v for k, v in values.items()},
                                                f'{stage.name}/learning_rate': rate})
                    logging.info('%s step %d: %s, learning_rate %.3g', stage.name, step,
                                 ', '.join(f'{k} {v:.5f}' for k, v in values.items()), rate)
                if saving:
                    _host_values(stage.name, step, *_probe(step_fn, state, batch), manager)
                    checkpoint.save_training_state(manager, step, state,
                                                   {'stage': stage.name, 'seed': config.seed, 'train': values,
                                                    'settings': stage.resume_settings(config)})
                if stopping:
                    manager.wait_until_finished()
                    raise Preempted(step)
                if sequences and settings.eval_every and step % settings.eval_every == 0 \
                        and step < settings.num_steps:
                    report, strips = evaluator(variables_of(state), sequences, mesh)
                    _keep_best(workdir, config, stage, step, report, state)
                    workdir_records.record_evaluation(workdir, stage.name, step, report, strips, writer)
            manager.wait_until_finished()
    report = {}
    if sequences:
        report, strips = evaluator(variables_of(state), sequences, mesh)
        report['train'] = last_train
        _keep_best(workdir, config, stage, settings.num_steps, report, state)
        workdir_records.record_evaluation(workdir, stage.name, settings.num_steps, report, strips, writer)
    if stage.exports_model:
        best = report.get('best')
        variables = (checkpoint.load_model(_best_folder(workdir, stage))[1] if best
                     else jax.device_get(variables_of(state)))
        checkpoint.replace_model(workdir / 'model', variables, dict(config.model))
    return report


def _check_resume(directory: epath.Path, meta: dict, settings: dict) -> None:
    """A TrainingError naming every setting of `settings` that differs from the checkpoint's
    (`Stage.resume_settings`; checkpoints of older versions hold only the seed)."""
    stored = meta.get('settings', {'seed': meta['seed']})
    differences = [f'{k}: checkpoint {stored[k]!r}, config {settings.get(k)!r}'
                   for k in sorted(stored) if stored[k] != settings.get(k)]
    if differences:
        raise TrainingError(f'{directory}: the checkpoints were trained with other settings '
                            f'({"; ".join(differences)}); resume with those, or use a new workdir')


def _best_folder(workdir: epath.Path, stage: stages.Stage) -> epath.Path:
    """The model folder of the best evaluated state of a stage that exports its model."""
    return workdir / 'checkpoints' / f'{stage.name}_best'


def _keep_best(workdir: epath.Path, config, stage: stages.Stage, step: int, report: dict, state) -> None:
    """For a stage that exports its model: `report['best']` = {'step', 'psnr'} of the best
    evaluation so far (this one, or the one `eval/metrics.json` records), and the state saved to
    `_best_folder` when this one is the best."""
    if not stage.exports_model:
        return
    best = workdir_records.read_metrics(workdir).get(stage.name, {}).get('best')
    if best is None or report['psnr'] > best['psnr'] or step == best['step']:
        best = {'step': step, 'psnr': report['psnr']}
        checkpoint.replace_model(_best_folder(workdir, stage), jax.device_get(variables_of(state)), dict(config.model))
    report['best'] = best


def run_stages(config: ml_collections.ConfigDict) -> list[stages.Stage]:
    """The stages of `config.stages`, after checking the config's field names."""
    stages.check_config(config)
    return [stages.get(name) for name in config.stages]


def eval_sequences(config):
    """The held-back sequences of `config.data.eval_records` (None where it is not set)."""
    if not config.data.eval_records:
        return None
    return input_pipeline.read_sequences(input_pipeline.record_files(config.data.eval_records))


@sharding.failing_fast(but=(Preempted,))  # all processes stop at the same step
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """Runs the stages in `config.stages` in `workdir`; returns {stage: evaluation report}."""
    run = run_stages(config)
    sharding.initialize(config)
    # a staged URL with several processes stops the run before anything is written
    workdir = checkpoint.orbax_folder(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir_records.read_metrics(workdir)  # a damaged metrics file stops the run now, not after training
    workdir_records.record_run(workdir, config, 'train')
    mesh = sharding.make_mesh()
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    try:
        with _stop_on_sigterm() as stop:
            return {stage.name: train_stage(config, stage, workdir, mesh, writer, stop) for stage in run}
    finally:
        writer.close()
