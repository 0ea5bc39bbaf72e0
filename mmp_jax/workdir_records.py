"""The records a run keeps in its workdir, beside the checkpoints (see `mmp_jax.train` for the
whole layout): `config.json` (every run: its mode, resolved config and command line),
`eval/metrics.json` (the latest evaluation of each stage), `eval/<stage>_<sample>.png` and the
TensorBoard scalars and images of each evaluation. Written by process 0, each file whole
(`mmp_jax.io.atomic`); a damaged one is a TrainingError naming it.
"""
import datetime
import json
import sys

import jax
import ml_collections
from absl import logging
from clu import metric_writers
from etils import epath

from mmp_jax.io import atomic
from mmp_jax.stages import TrainingError
from mmp_jax.visualize import write_png


def record_evaluation(workdir: epath.Path, stage: str, step: int, report: dict, strips: dict,
                      writer: metric_writers.MetricWriter) -> None:
    """An evaluation of `stage` at `step`: its scalars and strips to TensorBoard and the log, the
    strips as PNGs and the report into `eval/metrics.json`."""
    scalars = {f'{stage}/eval_{k}': v for k, v in report.items() if isinstance(v, float)}
    writer.write_scalars(step, scalars)
    if strips:
        writer.write_images(step, {f'{stage}/{name}': strip[None] for name, strip in strips.items()})
    writer.flush()
    logging.info('%s step %d evaluation: %s', stage, step, ', '.join(f'{k} {v:.4f}' for k, v in scalars.items()))
    if jax.process_index() == 0:
        for name, strip in strips.items():
            write_png(workdir / 'eval' / f'{stage}_{name}.png', strip)
        everything = read_metrics(workdir)
        everything[stage] = {'step': step, **report}
        atomic.write_json(workdir / 'eval' / 'metrics.json', everything)


def read_metrics(workdir: epath.Path) -> dict:
    """`eval/metrics.json` of `workdir` ({} if none); a TrainingError naming it if it is not JSON."""
    path = workdir / 'eval' / 'metrics.json'
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as error:
        raise TrainingError(f'{path}: not valid JSON ({error}); repair or delete it') from error


def record_run(workdir: epath.Path, config: ml_collections.ConfigDict, mode: str) -> None:
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
