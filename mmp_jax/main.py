"""Entry point: trains and evaluates MMP-RNN, or evaluates the latest checkpoints.

    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd [--config.train.num_steps=40]
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd --mode=eval
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd_authors --mode=eval \\
        --config.eval.checkpoint=/weights/bsd_converted --config.data.eval_records=/data/records/bsd_test
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mmp_jax import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'job configuration (configs/*.py)', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'where checkpoints, logs and metrics go')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (then evaluate) or evaluate only')
flags.mark_flags_as_required(['config', 'workdir'])


def summary(stage: str, report: dict) -> str:
    """One line per evaluated stage: the figures a user looks for first."""
    if stage == 'mmpnet':
        return f'mmpnet: L1 of the prior {report["l1"]:.4f} over {report["count"]} frames'
    speed = (f'; {report["seconds_per_frame"]:.4f} s per frame on {report["devices"]}'
             if report.get('seconds_per_frame') is not None else '')
    return (f'mmprnn: PSNR {report["psnr"]:.2f} dB, SSIM {report["ssim"]:.4f}; the blurry input: '
            f'PSNR {report["blurry_psnr"]:.2f} dB, SSIM {report["blurry_ssim"]:.4f}. Scored: {report["count"]} '
            f'frames, {report["scored_frames"]}{speed}')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(lambda record: '/orbax/' not in record.pathname)  # per-file chatter
    run = train.train_and_evaluate if _MODE.value == 'train' else train.evaluate_checkpoints
    try:
        reports = run(_CONFIG.value, _WORKDIR.value)
    except train.Preempted as stop:
        sys.exit(f'mmp_jax: {stop}')
    except (train.TrainingError, ValueError, FileNotFoundError) as error:
        print(f'mmp_jax: error: {error}', file=sys.stderr)
        sys.exit(2)
    for stage, report in reports.items():
        if report:
            print(summary(stage, report))


if __name__ == '__main__':
    app.run(main)
