"""The embedded demo (`make demo`): synthetic scenes from scikit-image's bundled photos and dead
leaves pictures with exact flow, MMP-Net (stage 1) then a small MMP-RNN (stage 2), evaluated on
held-back scenes drawn as the training scenes are and, after training, on scenes of photos no
training scene shows (`synthetic.PHOTOS['held_out']`), eight scenes each. Sized for a 2-core
CPU (about 10 minutes from a fresh clone, install included). `make demo` first writes the records
(cameras and objects move at most 1 px per sharp frame, so a blurry frame averages 7-13 frames
over up to ~13 px of motion):

    python -m tools.export_tfrecords --source synthetic --flow exact --max-speed 1.0 \\
        --out demo_out/records/train --num-sequences 64 --frames-per-sequence 120 --height 64 --width 96
    python -m tools.export_tfrecords --source synthetic --flow exact --max-speed 1.0 \\
        --out demo_out/records/eval --num-sequences 8 --frames-per-sequence 150 --height 64 --width 96 --seed 1000
    python -m tools.export_tfrecords --source synthetic --flow exact --max-speed 1.0 --photos held_out \\
        --out demo_out/records/heldout --num-sequences 8 --frames-per-sequence 150 --height 64 --width 96 --seed 2000
    python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out
    python -m mmp_jax.main --config=configs/demo.py --workdir=demo_out/heldout --mode=eval \\
        --config.eval.checkpoint=demo_out/model --config.data.eval_records=demo_out/records/heldout
"""
from mmp_jax.configs import default


def get_config():
    config = default.get_config()
    config.stages = ('mmpnet', 'mmprnn')
    config.model.variant = 'A2B2C8F10'  # 10-frame training sequences
    config.data.train_records = 'demo_out/records/train'
    config.data.eval_records = 'demo_out/records/eval'
    config.mmpnet.update(batch_size=8, patch=48, learning_rate=1e-3, num_steps=150,
                         checkpoint_every=150, eval_every=50, log_every=10)
    # Charbonnier + gradient as the released code trains (the motion magnitude term costs a
    # second MMP-Net pass per output, time this CPU budget does not have). 2e-3 is the
    # largest rate tried that stays finite (3e-3 diverges near step 300).
    config.mmprnn.update(batch_size=4, patch=32, learning_rate=2e-3, num_steps=1800,
                        checkpoint_every=600, eval_every=1800, log_every=100,
                        loss_weights={'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 0.0})
    return config
