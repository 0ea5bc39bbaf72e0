"""The training loop of both stages: `train_and_evaluate(config, workdir)`.

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
import datetime
import itertools
import json
import os
import signal
import sys
import threading

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from clu import metric_writers, periodic_actions
from etils import epath

from mmp_jax.errors import UserError
from mmp_jax import checkpoint, sharding, stages, train_step
from mmp_jax.data import atomic, input_pipeline, paths, prefetch
from mmp_jax.stages import TrainingError
from mmp_jax.visualize import write_png


class Preempted(Exception):
    """SIGTERM or a preemption notice: a checkpoint of `step` was saved."""

    def __init__(self, step: int):
        super().__init__(f'stopped at step {step} on request (SIGTERM / preemption); its checkpoint is '
                         f'saved: run the same command to resume')


def _fresh_state(config, stage: stages.Stage):
    """(model, optimizer, state initialised from config.seed) of a stage."""
    model = stage.model(config)
    optimizer = stage.optimizer(config)
    return model, optimizer, stage.create_state(stage.init(config, model), optimizer)


def _restore(manager, state: train_step.TrainState, mesh):
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


def _variables(state: train_step.TrainState) -> dict:
    params = train_step.merge(state.params, state.frozen) if state.frozen else state.params
    return {'params': params, 'batch_stats': state.batch_stats}


def _train_windows(config, length: int, fraction: float = 1.0) -> input_pipeline.Windows:
    """The windows of `config.data.train_records` ('a' or 'a,b,...': folders mixed in one run,
    by `config.data.train_weights` 'w_a,w_b,...' where given: `input_pipeline.mix`), of each folder
    a `fraction` drawn from `config.seed` (`input_pipeline.keep_fraction`)."""
    folders = [f for f in config.data.train_records.split(',') if f.strip()]
    if not folders:
        raise UserError('training needs records: set --config.data.train_records (a folder, or folders a,b)')
    parts = [input_pipeline.keep_fraction(input_pipeline.load_windows(
        input_pipeline.record_files(f.strip()), length, config.data.records_in_memory), fraction, config.seed)
             for f in folders]
    weights = None
    if config.data.train_weights:
        try:
            weights = [float(w) for w in config.data.train_weights.split(',')]
        except ValueError:
            raise UserError(f'config.data.train_weights={config.data.train_weights!r}: not numbers '
                            f'separated by commas') from None
    try:
        return input_pipeline.mix(parts, weights)
    except ValueError as error:
        raise UserError(f'config.data.train_weights={config.data.train_weights!r}: {error}') from None


def _batches(config, stage: stages.Stage, start_step: int):
    settings = stage.settings(config)
    windows = _train_windows(config, stage.frames(config), settings.get('train_fraction', 1.0))
    if stage.name == 'mmpnet' and not windows.has_mmp:
        raise TrainingError(f'{config.data.train_records}: the records hold no MMP; stage 1 needs data exported '
                            f'from sharp high-frame-rate video (--source gopro_raw or synthetic)')
    kwargs = dict(seed=config.seed, start_step=start_step, process_index=jax.process_index(),
                  process_count=jax.process_count())
    if config.data.reader == 'tf':
        return input_pipeline.train_dataset(windows, settings.patch, settings.batch_size, **kwargs).as_numpy_iterator()
    if config.data.reader == 'numpy':
        return input_pipeline.numpy_train_batches(windows, settings.patch, settings.batch_size, **kwargs)
    raise UserError(f"unknown config.data.reader {config.data.reader!r}; accepted: 'tf', 'numpy'")


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


def _record_evaluation(workdir: epath.Path, stage: str, step: int, report: dict, strips: dict,
                       writer: metric_writers.MetricWriter) -> None:
    scalars = {f'{stage}/eval_{k}': v for k, v in report.items() if isinstance(v, float)}
    writer.write_scalars(step, scalars)
    if strips:
        writer.write_images(step, {f'{stage}/{name}': strip[None] for name, strip in strips.items()})
    writer.flush()
    logging.info('%s step %d evaluation: %s', stage, step, ', '.join(f'{k} {v:.4f}' for k, v in scalars.items()))
    if jax.process_index() == 0:
        for name, strip in strips.items():
            write_png(workdir / 'eval' / f'{stage}_{name}.png', strip)
        everything = _read_metrics(workdir)
        everything[stage] = {'step': step, **report}
        atomic.write_json(workdir / 'eval' / 'metrics.json', everything)


def _read_metrics(workdir: epath.Path) -> dict:
    """`eval/metrics.json` of `workdir` ({} if none); a TrainingError naming it if it is not JSON."""
    path = workdir / 'eval' / 'metrics.json'
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as error:
        raise TrainingError(f'{path}: not valid JSON ({error}); repair or delete it') from error


def _record_run(workdir: epath.Path, config: ml_collections.ConfigDict, mode: str) -> None:
    """Appends this run (its mode: train, eval or export, its resolved config and command line) to
    `workdir/config.json`, a list of runs, rewritten whole (`atomic`); a TrainingError naming it if
    it is not such a list."""
    path = workdir / 'config.json'
    try:
        runs = json.loads(path.read_text()) if path.exists() else []
    except json.JSONDecodeError as error:
        raise TrainingError(f'{path}: not valid JSON ({error}); repair or move it') from error
    if not isinstance(runs, list):
        raise TrainingError(f'{path}: not a list of runs; repair or move it')
    run = {'mode': mode, 'config': json.loads(config.to_json_best_effort()), 'command': sys.argv,
           'time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    if jax.process_index() == 0:
        atomic.write_json(path, runs + [run])


def _eval_sequences(config):
    if not config.data.eval_records:
        return None
    return input_pipeline.read_sequences(input_pipeline.record_files(config.data.eval_records))


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
    model, optimizer, state = _fresh_state(config, stage)
    sharding.check_global_batch(settings.batch_size, mesh)
    step_fn = train_step.checked(stage.step(config, model, optimizer))
    evaluator = stage.evaluator(config, model, workdir)
    sequences = _eval_sequences(config)
    with checkpoint.training_manager(workdir, stage.name, config.keep_checkpoints) as manager, \
            contextlib.ExitStack() as stack:
        meta = {}
        if manager.latest_step() is not None:
            state, meta = _restore(manager, state, mesh)
            _check_resume(manager.directory, meta, stage.resume_settings(config))
        else:
            variables = stage.starting_variables(config, workdir, model, _variables(state))
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
                    report, strips = evaluator(_variables(state), sequences, mesh)
                    _keep_best(workdir, config, stage, step, report, state)
                    _record_evaluation(workdir, stage.name, step, report, strips, writer)
            manager.wait_until_finished()
    report = {}
    if sequences:
        report, strips = evaluator(_variables(state), sequences, mesh)
        report['train'] = last_train
        _keep_best(workdir, config, stage, settings.num_steps, report, state)
        _record_evaluation(workdir, stage.name, settings.num_steps, report, strips, writer)
    if stage.exports_model:
        best = report.get('best')
        variables = (checkpoint.load_model(_best_folder(workdir, stage))[1] if best
                     else jax.device_get(_variables(state)))
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
    best = _read_metrics(workdir).get(stage.name, {}).get('best')
    if best is None or report['psnr'] > best['psnr'] or step == best['step']:
        best = {'step': step, 'psnr': report['psnr']}
        checkpoint.replace_model(_best_folder(workdir, stage), jax.device_get(_variables(state)), dict(config.model))
    report['best'] = best


def _run_stages(config: ml_collections.ConfigDict) -> list[stages.Stage]:
    """The stages of `config.stages`, after checking the config's field names."""
    stages.check_config(config)
    return [stages.get(name) for name in config.stages]


@sharding.failing_fast(but=(Preempted,))  # all processes stop at the same step
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """Runs the stages in `config.stages` in `workdir`; returns {stage: evaluation report}."""
    run = _run_stages(config)
    sharding.initialize(config)
    # a staged URL with several processes stops the run before anything is written
    workdir = checkpoint.orbax_folder(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _read_metrics(workdir)  # a damaged metrics file stops the run now, not after training
    _record_run(workdir, config, 'train')
    mesh = sharding.make_mesh()
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    try:
        with _stop_on_sigterm() as stop:
            return {stage.name: train_stage(config, stage, workdir, mesh, writer, stop) for stage in run}
    finally:
        writer.close()


@sharding.failing_fast()
def evaluate_checkpoints(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """`--mode=eval`: evaluates the model folder `config.eval.checkpoint` (a converted original
    checkpoint or an exported model, as MMP-RNN), or else the latest checkpoint of each stage in
    `config.stages`; returns {stage: report} and records them in `workdir/eval/`."""
    run = _run_stages(config)
    sharding.initialize(config)
    workdir = paths.as_path(workdir) if config.eval.checkpoint else checkpoint.orbax_folder(workdir)
    sequences = _eval_sequences(config)
    if sequences is None:
        raise UserError('evaluation needs held-back sequences: set --config.data.eval_records')
    workdir.mkdir(parents=True, exist_ok=True)
    _record_run(workdir, config, 'eval')
    mesh = sharding.make_mesh()
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    reports = {}
    try:
        if config.eval.checkpoint:
            model, variables, _ = checkpoint.load_model(config.eval.checkpoint)
            stage = stages.get('mmprnn')
            report, strips = stage.evaluator(config, model, workdir)(variables, sequences, mesh)
            report['checkpoint'] = str(paths.as_path(config.eval.checkpoint))
            _record_evaluation(workdir, stage.name, 0, report, strips, writer)
            return {stage.name: report}
        for stage in run:
            model, _, state = _fresh_state(config, stage)
            with checkpoint.training_manager(workdir, stage.name, config.keep_checkpoints) as manager:
                if manager.latest_step() is None:
                    raise TrainingError(f'{manager.directory}: no checkpoint to evaluate (to score a converted '
                                        f'or exported model, set --config.eval.checkpoint)')
                state, meta = _restore(manager, state, mesh)
            report, strips = stage.evaluator(config, model, workdir)(_variables(state), sequences, mesh)
            report['train'] = meta['train']
            _record_evaluation(workdir, stage.name, int(state.step), report, strips, writer)
            reports[stage.name] = report
    finally:
        writer.close()
    return reports


def export_checkpoint(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """`--mode=export`: writes `workdir/model` (replacing it) from stage 2's checkpoint of step
    `config.export.step` (0: the latest), at any step of the run; returns {}."""
    sharding.initialize(config)
    workdir = checkpoint.orbax_folder(workdir)
    stage = stages.get('mmprnn')
    model, _, state = _fresh_state(config, stage)
    mesh = sharding.make_mesh()
    with checkpoint.training_manager(workdir, stage.name, config.keep_checkpoints) as manager:
        steps = sorted(manager.all_steps())
        step = config.export.step or (steps[-1] if steps else None)
        if step not in steps:
            raise TrainingError(f'{manager.directory}: no checkpoint of step {step} to export (steps kept: '
                                f'{", ".join(map(str, steps)) or "none"}); set --config.export.step to one of them')
        try:
            state, _ = checkpoint.restore_training_step(manager, step, state, mesh)
        except Exception as error:  # pylint: disable=broad-exception-caught
            if not checkpoint.is_damage(error):
                raise
            raise TrainingError(f'{manager.directory / str(step)}: damaged, cannot be exported '
                                f'({checkpoint.damage_summary(error)}); choose another --config.export.step') from None
    _record_run(workdir, config, 'export')
    checkpoint.replace_model(workdir / 'model', jax.device_get(_variables(state)), dict(config.model))
    logging.info('%s: exported %s step %d', workdir / 'model', stage.name, step)
    return {}
