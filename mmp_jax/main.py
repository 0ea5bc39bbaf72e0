"""Entry point: trains and evaluates MMP-RNN, or evaluates the latest checkpoints.

    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd [--config.mmprnn.num_steps=40]
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd --mode=eval \\
        --config.data.eval_records=/data/records/bsd_test
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd_authors --mode=eval \\
        --config.eval.checkpoint=/weights/bsd_converted --config.data.eval_records=/data/records/bsd_test
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd --mode=export [--config.export.step=N]

Installed, `mmp-train` takes the same flags; the configs are installed with the package
(`mmp_jax/configs/`, where `configs/*.py` of a checkout lead), so a path to one of them, or to a
copy, works from any folder:

    mmp-train --config="$(python -c 'import mmp_jax.configs as c; print(c.__path__[0])')/bsd.py" ...
"""
import sys
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from mmp_jax.errors import run_command
from mmp_jax import modes, stages, train
from mmp_jax.cli import absl_help

_CONFIG = config_flags.DEFINE_config_file('config', None, 'job configuration: a config file (configs/*.py in a '
                                          'checkout, installed as mmp_jax/configs/*.py)', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'where checkpoints, logs and metrics go')
_MODES = {'train': train.train_and_evaluate, 'eval': modes.evaluate_checkpoints, 'export': modes.export_checkpoint}
_MODE = flags.DEFINE_enum('mode', 'train', list(_MODES), 'train (then evaluate), evaluate only, or export '
                          '<workdir>/model from a checkpoint (--config.export.step, default the latest)')
flags.mark_flags_as_required(['config', 'workdir'])


def _fail(problem: str) -> NoReturn:
    """The one-line error of the command line: `mmp_jax: error: <problem>`, exit status 2."""
    absl_help.fail('mmp_jax', problem)


def _missing_field(error: Exception, argv: list[str]) -> str:
    """What is wrong with the `--config.` override naming the field that config_flags did not find
    (`error` names only the last part of its path): a renamed field's new name, or no such field."""
    name = str(error).strip('"\'')
    overrides = [arg.split('=')[0] for arg in argv if arg.startswith('--config.')]
    override = next((arg for arg in overrides if name in arg.split('.')), name)
    path = override.removeprefix('--config.')
    if path in stages.RETIRED:
        return f'{override}: config.{path} is now {stages.RETIRED[path]}'
    old = override.split('.')[1] if override.startswith('--config.') else None
    if old in stages.RENAMED:
        new = override.replace(f'--config.{old}.', f'--config.{stages.RENAMED[old]}.', 1)
        return f'{override}: config.{old} is now config.{stages.RENAMED[old]}; use {new}'
    return f'{override}: no such field in the config'


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors and config_flags' unknown fields (AttributeError,
    KeyError, raised before `main` runs) as one line (`_fail`)."""
    try:
        return absl_help.parse_flags('mmp_jax', argv)
    except (AttributeError, KeyError) as error:
        _fail(_missing_field(error, argv))


def _config():
    """The config; a config file that did not load is `_fail` (config_flags parses it into an
    object that raises OSError at its first use)."""
    config = _CONFIG.value
    try:
        config.get('stages')
    except OSError as error:
        _fail(f'--config={config_flags.get_config_filename(flags.FLAGS["config"])}: {absl_help.last_line(error)}')
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda record: '/orbax/' not in record.pathname)  # per-file chatter
    run, config = _MODES[_MODE.value], _config()

    def run_mode() -> int:
        try:
            reports = run(config, _WORKDIR.value)
        except train.Preempted as stop:
            sys.exit(f'mmp_jax: {stop}')
        for name, report in reports.items():
            if report:
                print(stages.get(name).evaluator_class.summary(report))
        return 0
    # a UserError (TrainingError among them) or an OSError (its file, where it names one): one line,
    # exit 2; a bug: its traceback
    return run_command('mmp_jax', run_mode)


def console_main():
    """The `mmp-train` console script: the flags as `parse_flags` reads them, then `main`."""
    absl_help.describe_in_help(__name__)
    app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
    console_main()
