"""The embedded demo (`make demo`): synthetic scenes from scikit-image's bundled photos with
exact flow, MMP-Net (stage 1) then a small MMP-RNN (stage 2), evaluated on held-back scenes.
Sized for a 2-core CPU. `make demo` first writes the records:

    python -m tools.export_tfrecords --source synthetic --flow exact --out demo_out/records/train \\
        --num-sequences 8 --frames-per-sequence 120 --height 64 --width 96
    python -m tools.export_tfrecords --source synthetic --flow exact --out demo_out/records/eval \\
        --num-sequences 3 --frames-per-sequence 150 --height 64 --width 96 --seed 1000
    python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out
"""
from configs import default


def get_config():
    config = default.get_config()
    config.stages = ('mmpnet', 'mmprnn')
    config.model.variant = 'A2B2C8F5'
    config.data.train_records = 'demo_out/records/train'
    config.data.eval_records = 'demo_out/records/eval'
    config.mmpnet.update(batch_size=8, patch=48, learning_rate=1e-3, num_steps=300,
                         checkpoint_every=100, eval_every=100, log_every=20)
    # Charbonnier + gradient as the released code trains (the motion magnitude term costs a
    # second MMP-Net pass per output, time this CPU budget does not have)
    config.train.update(batch_size=4, frames=10, patch=32, learning_rate=2e-3, num_steps=500,
                        checkpoint_every=100, eval_every=250, log_every=25,
                        loss_weights={'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 0.0})
    return config
