"""The demo (configs/demo.py) shrunk to seconds, for the tests: a tiny MMP-RNN (A1B1C4F5) trained
on 16-pixel patches for a handful of steps per stage, no evaluation during stage 2. The records
are the demo's paths; the tests point `data.train_records` / `data.eval_records` at their own.

    python -m mmp_jax.main --config=configs/test.py --workdir=/tmp/run \\
        --config.data.train_records=RECORDS/train --config.data.eval_records=RECORDS/eval
"""
from mmp_jax.configs import demo


def get_config():
    config = demo.get_config()
    config.model.variant = 'A1B1C4F6'  # 6-frame training sequences
    config.model.scan_unroll = False  # compiles faster; loop == unrolled: tests/models/test_mmp_rnn.py
    config.eval.chunk_frames = 6
    config.mmpnet.update(batch_size=4, patch=16, num_steps=4, checkpoint_every=2, log_every=2)
    config.mmprnn.update(batch_size=2, patch=16, num_steps=6, checkpoint_every=2, log_every=2,
                        eval_every=0)
    return config
