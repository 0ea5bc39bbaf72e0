"""Stage 2 on BSD 2ms-16ms with the released code's recipe (configs/released_gopro.py says what
it is and what it leaves out); the data as configs/bsd.py.

    python -m mmp_jax.main --config=configs/released_bsd.py --workdir=/runs/bsd_released \\
        --config.data.train_records=/data/records/bsd_train \\
        --config.data.eval_records=/data/records/bsd_test \\
        --config.mmpnet.checkpoint=/weights/model_best.pth.tar --config.mmpnet.channel_order=rgb

An epoch is every 8-frame window: 60 sequences of 100 frames give 5,580 windows, 697 steps of 8,
so the paper's 500 epochs are 348,500 steps.
"""
from mmp_jax.configs import bsd
from mmp_jax.configs.released_gopro import released


def get_config():
    config = released(bsd.get_config(), steps_per_epoch=697)
    config.mmprnn.num_steps = 348_500
    return config
