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

Paper: Adam 5e-4, cosine annealing, batch 8 of 10-frame 256 x 256 sequences, 1000 epochs.
An epoch is every 10-frame window (as the original's loader): 2,103 frames in 22 sequences
give 1,905 windows, 238 steps of 8, so 1000 epochs are 238,000 steps.
"""
from configs import default


def get_config():
    config = default.get_config()
    config.mmprnn.num_steps = 238_000
    return config
