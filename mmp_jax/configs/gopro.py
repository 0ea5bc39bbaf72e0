"""Stage 2 on the GOPRO benchmark: MMP-RNN with a stage-1 MMP-Net frozen inside it.

    python -m tools.export_tfrecords --source gopro --input /data/GOPRO --split train --out /data/records/gopro_train
    python -m tools.export_tfrecords --source gopro --input /data/GOPRO --split test --out /data/records/gopro_test
    python -m mmp_jax.main --config=configs/gopro.py --workdir=/runs/gopro \\
        --config.data.train_records=/data/records/gopro_train \\
        --config.data.eval_records=/data/records/gopro_test --config.mmpnet.checkpoint=/runs/mmpnet

Scoring the authors' released GOPRO weights instead (the original's test protocol):

    python -m tools.convert_checkpoint --mmp-rnn MMP-RNN_GOPRO.pth.tar --trained-on gopro \\
        --variant A9B10C18F8 --out /weights/gopro_authors
    python -m mmp_jax.main --config=configs/gopro.py --workdir=/runs/gopro_authors --mode=eval \\
        --config.eval.checkpoint=/weights/gopro_authors --config.data.eval_records=/data/records/gopro_test

Paper: Adam 5e-4, cosine annealing, batch 8 of 256 x 256 sequences of F = 8 frames, 1000 epochs.
An epoch is every 8-frame window (as the original's loader): 2,103 frames in 22 sequences
give 1,949 windows, 243 steps of 8, so 1000 epochs are 243,000 steps.
"""
from mmp_jax.configs import default


def get_config():
    config = default.get_config()
    config.mmprnn.num_steps = 243_000
    return config
