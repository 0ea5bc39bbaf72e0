"""Stage 2 on BSD 2ms-16ms: MMP-RNN with a stage-1 MMP-Net frozen inside it.

    python -m tools.export_tfrecords --source bsd --input /data/BSD_2ms16ms --split train --out /data/records/bsd_train
    python -m tools.export_tfrecords --source bsd --input /data/BSD_2ms16ms --split test --out /data/records/bsd_test
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd \\
        --config.data.train_records=/data/records/bsd_train \\
        --config.data.eval_records=/data/records/bsd_test --config.mmpnet.checkpoint=/runs/mmpnet

Scoring the authors' released BSD weights instead (the original's test protocol):

    python -m tools.convert_checkpoint --mmp-rnn MMP-RNN_BSD.pth.tar --trained-on bsd \\
        --variant A9B10C18F8 --out /weights/bsd_authors
    python -m mmp_jax.main --config=configs/bsd.py --workdir=/runs/bsd_authors --mode=eval \\
        --config.eval.checkpoint=/weights/bsd_authors --config.data.eval_records=/data/records/bsd_test

Paper: Adam 5e-4, cosine annealing, batch 8 of 256 x 256 sequences of F = 8 frames, 500 epochs.
An epoch is every 8-frame window (as the original's loader): 60 sequences of 100 frames
give 5,580 windows, 697 steps of 8, so 500 epochs are 348,500 steps.
"""
from mmp_jax.configs import default


def get_config():
    config = default.get_config()
    config.mmprnn.num_steps = 348_500
    return config
