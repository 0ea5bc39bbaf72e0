"""Stage 1: MMP-Net regresses the MMP of blurry frames synthesised from raw high-fps GOPRO.

    python -m tools.export_tfrecords --source gopro_raw --input /data/GOPRO_Large_all --split train \\
        --flow raft --raft-checkpoint /weights/raft-things.pth --camera-response /weights/crf.npy --out /data/records/mmp_gopro_train
    python -m tools.export_tfrecords --source gopro_raw --input /data/GOPRO_Large_all --split test \\
        --flow raft --raft-checkpoint /weights/raft-things.pth --camera-response /weights/crf.npy --out /data/records/mmp_gopro_test
    python -m mmp_jax.main --config=configs/mmpnet_gopro.py --workdir=/runs/mmpnet \\
        --config.data.train_records=/data/records/mmp_gopro_train \\
        --config.data.eval_records=/data/records/mmp_gopro_test

Paper: 400 epochs, batch 8, Adam 3e-4 halved after 200 epochs, 512 x 512 patches, L1
(`config.mmpnet` in default.py: ~22,500 blurry frames per epoch, the notebook's stride-1 windows,
/ 8 x 400 = 1,125,000 steps).

`crf.npy` is the authors' camera response, `PrepareGTMMP/crf.npy` of sollynoay/MMP-RNN, which
PrepareGTMMP/MMP-generate.ipynb blurs with (without `--camera-response`, a 2.2 gamma: not the authors' data).
The records are read from the files when a batch needs them (`config.data.records_in_memory`
False here): held in memory, raw GOPRO's 720p frames would take tens of GB per host. The
authors trained on a random half of the pairs (`--config.mmpnet.train_fraction=0.5`, as
configs/released_gopro.py sets it) and scored on GOPRO_Large's `blur_gamma` test frames with
their MMPs; the test records above are blurred here instead.
"""
from mmp_jax.configs import default


def get_config():
    config = default.get_config()
    config.stages = ('mmpnet',)
    config.data.records_in_memory = False
    return config
