"""The modes of `mmp_jax.main` beside training: `--mode=eval` (`evaluate_checkpoints`: a model
folder, or each stage's latest checkpoint, scored as the original's test) and `--mode=export`
(`export_checkpoint`: `<workdir>/model` from any kept checkpoint of stage 2). Both record their
run in the workdir's `config.json` (`mmp_jax.workdir_records`).
"""
import os

import jax
import ml_collections
from absl import logging
from clu import metric_writers

from mmp_jax import checkpoint, sharding, stages, train, workdir_records
from mmp_jax.io import paths
from mmp_jax.errors import UserError
from mmp_jax.stages import TrainingError


@sharding.failing_fast()
def evaluate_checkpoints(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """`--mode=eval`: evaluates the model folder `config.eval.checkpoint` (a converted original
    checkpoint or an exported model, as MMP-RNN), or else the latest checkpoint of each stage in
    `config.stages`; returns {stage: report} and records them in `workdir/eval/`."""
    run = train.run_stages(config)
    sharding.initialize(config)
    workdir = paths.as_path(workdir) if config.eval.checkpoint else checkpoint.orbax_folder(workdir)
    sequences = train.eval_sequences(config)
    if sequences is None:
        raise UserError('evaluation needs held-back sequences: set --config.data.eval_records')
    workdir.mkdir(parents=True, exist_ok=True)
    workdir_records.record_run(workdir, config, 'eval')
    mesh = sharding.make_mesh()
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    reports = {}
    try:
        if config.eval.checkpoint:
            model, variables, _ = checkpoint.load_model(config.eval.checkpoint)
            stage = stages.get('mmprnn')
            report, strips = stage.evaluator(config, model, workdir)(variables, sequences, mesh)
            report['checkpoint'] = str(paths.as_path(config.eval.checkpoint))
            workdir_records.record_evaluation(workdir, stage.name, 0, report, strips, writer)
            return {stage.name: report}
        for stage in run:
            model, _, state = train.fresh_state(config, stage)
            with checkpoint.training_manager(workdir, stage.name, config.keep_checkpoints) as manager:
                if manager.latest_step() is None:
                    raise TrainingError(f'{manager.directory}: no checkpoint to evaluate (to score a converted '
                                        f'or exported model, set --config.eval.checkpoint)')
                state, meta = train.restore(manager, state, mesh)
            report, strips = stage.evaluator(config, model, workdir)(train.variables_of(state), sequences, mesh)
            report['train'] = meta['train']
            workdir_records.record_evaluation(workdir, stage.name, int(state.step), report, strips, writer)
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
    model, _, state = train.fresh_state(config, stage)
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
    workdir_records.record_run(workdir, config, 'export')
    checkpoint.replace_model(workdir / 'model', jax.device_get(train.variables_of(state)), dict(config.model))
    logging.info('%s: exported %s step %d', workdir / 'model', stage.name, step)
    return {}
