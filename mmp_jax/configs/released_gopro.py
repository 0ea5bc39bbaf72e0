"""Stage 2 on GOPRO as the authors' released code trains it (sollynoay/MMP-RNN `MMP-RNN/main.py`,
`train/dp.py`), rather than as the paper describes (configs/gopro.py):

- 8-frame sequences (`para.frames = 8`) of 512 x 512 patches (`para.patch_size`), batch 8,
  Adam 5e-4 with cosine annealing, 1000 epochs (`para.end_epoch`);
- the cosine stepped once per epoch (`opt.lr_schedule()` after each epoch) down to
  `eta_min=1e-8` (train/optimizer.py): `lr_steps_per_epoch`, `lr_floor`;
- gradients clipped at global norm 20 (`clip_grad_norm_(..., max_norm=20)` in train/dp.py);
- loss `1*L1_Charbonnier_loss_color|0.5*L1GradientLoss`: no motion magnitude term;
- MMP-Net, where this job trains it (`--config.stages=mmpnet,mmprnn`), with L1 + 0.5 gradient
  on a random half of the training pairs (`config.mmpnet.train_fraction=0.5`, drawn from
  `config.seed`: `train_test_split(..., train_size=0.5)`, 22,417 -> 11,208) as
  LearningMMP/MMPtraining.ipynb; its data as PrepareGTMMP/MMP-generate.ipynb made them, blurred
  through the authors' camera response: `--camera-response crf.npy` to tools.export_tfrecords, the file
  `PrepareGTMMP/crf.npy` of sollynoay/MMP-RNN (without it, a 2.2 gamma); configs/mmpnet_gopro.py
  reads those records from the files (raw GOPRO at 720p is tens of GB in memory). The notebook scores
  stage 1 on GOPRO_Large's `blur_gamma` test frames with their MMPs; here `eval_records` is
  whatever was exported, e.g. `--source gopro_raw --split test` (blurred here, not `blur_gamma`);
- the frozen MMP-Net's BatchNorm on batch statistics in training, its running statistics
  updated (`model.prior_batch_norm = 'batch'`): `model.train()` in train/dp.py reaches it.
  Evaluation and the exported model use the running statistics, as the original's `model.eval()`.

Not reproduced: nn.DataParallel over 4 GPUs normalised each GPU's 2 sequences on their own
statistics (and kept GPU 0's running statistics); here the statistics are the global batch's.

    python -m mmp_jax.main --config=configs/released_gopro.py --workdir=/runs/gopro_released \\
        --config.data.train_records=/data/records/gopro_train \\
        --config.data.eval_records=/data/records/gopro_test \\
        --config.mmpnet.checkpoint=/weights/model_best.pth.tar --config.mmpnet.channel_order=rgb

An epoch is every 8-frame window: 2,103 frames in 22 sequences give 1,949 windows, 243 steps of 8,
so 1000 epochs are 243,000 steps.
"""
from mmp_jax.configs import gopro


def released(config, steps_per_epoch: int):
    """`config` with the released code's recipe (the module's docstring), epochs of `steps_per_epoch`."""
    config.mmprnn.update(lr_steps_per_epoch=steps_per_epoch, lr_floor=1e-8)
    config.mmpnet.loss_weights.gradient = 0.5
    config.mmpnet.train_fraction = 0.5
    config.mmprnn.update(patch=512, clip_norm=20.0)  # 8 frames: the variant's F8
    config.mmprnn.loss_weights.motion_magnitude = 0.0
    config.model.prior_batch_norm = 'batch'
    return config


def get_config():
    config = released(gopro.get_config(), steps_per_epoch=243)
    config.mmprnn.num_steps = 243_000
    return config
