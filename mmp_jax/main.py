"""Entry point: trains and evaluates MMP-RNN, or evaluates the latest checkpoints.

    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd [--config.train.num_steps=40]
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd --mode=eval
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mmp_jax import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'job configuration (configs/*.py)', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'where checkpoints, logs and metrics go')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (then evaluate) or evaluate only')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda record: '/orbax/' not in record.pathname)  # per-file chatter
    run = train.train_and_evaluate if _MODE.value == 'train' else train.evaluate_checkpoints
    try:
        run(_CONFIG.value, _WORKDIR.value)
    except train.Preempted as stop:
        sys.exit(f'mmp_jax: {stop}')
    except (train.TrainingError, ValueError, FileNotFoundError) as error:
        print(f'mmp_jax: error: {error}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    app.run(main)
