"""Shared defaults: model switches (the paper's Table 4 / 5), data, both training stages,
checkpoints and evaluation. Job configs (gopro.py, bsd.py, mmpnet_gopro.py, demo.py) change
what differs.

    python -m mmp_jax.main --config=configs/default.py --workdir=/tmp/run \\
        --config.data.train_records=/data/gopro_train --config.mmpnet.checkpoint=/runs/mmpnet
"""
import ml_collections

from mmp_jax.models.variants import MODEL_DEFAULTS


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0                   # model initialisation and the data plan
    config.multi_host = False         # True: jax.distributed.initialize() first (TPU pods, SLURM: docs/training.md)
    config.distributed = ml_collections.ConfigDict({  # with multi_host; the defaults read the cluster
        'coordinator_address': '',    # 'host:port' of process 0 ('' = the cluster's, or $JAX_COORDINATOR_ADDRESS)
        'num_processes': 0,           # 0 = the cluster's
        'process_id': -1,             # this process, 0 .. num_processes - 1 (-1 = the cluster's)
        'heartbeat_timeout_seconds': 100,  # a process silent this long is dead: the others stop
    })
    config.stages = ('mmprnn',)       # in order; 'mmpnet' (stage 1) and/or 'mmprnn' (stage 2)
    config.keep_checkpoints = 3       # per stage, the latest N

    config.model = ml_collections.ConfigDict(MODEL_DEFAULTS)  # mmp_jax/models/variants.py

    config.data = ml_collections.ConfigDict({
        'train_records': '',          # folder written by `python -m tools.export_tfrecords`, or folders
                                      # 'a,b' whose records mix in one run
        'train_weights': '',          # with several folders: their shares 'w_a,w_b' ('' = by window count)
        'eval_records': '',           # the same for held-back sequences ('' = no evaluation)
        'reader': 'tf',               # 'tf' (tf.data) or 'numpy' (machines without TensorFlow)
        'records_in_memory': True,    # False: keep each frame's place in the files and read it when a
                                      # batch needs it (training data larger than memory)
        'device_prefetch': 2,         # training batches placed on the devices ahead of their step, by a
                                      # thread, while the current one runs (0 = off; the same batches)
    })

    # Stage 1, MMP-Net (the paper: 400 epochs, batch 8, Adam 3e-4 halved after 200 epochs,
    # 512 x 512 patches, L1). Steps: ~22,500 blurry frames per epoch (raw GOPRO exported as the
    # original notebook: stride-1 windows, each sequence's own N) / 8 per batch x 400.
    config.mmpnet = ml_collections.ConfigDict({
        'batch_size': 8, 'patch': 512, 'learning_rate': 3e-4, 'num_steps': 1_125_000,
        'checkpoint_every': 5_000, 'eval_every': 25_000, 'log_every': 100, 'clip_norm': 0.0,
        'train_fraction': 1.0,        # < 1: train on this share of each records folder's windows, drawn
                                      # from config.seed (the authors' notebook: 0.5)
        'loss_weights': {'gradient': 0.0},  # the L1 term plus this times the gradient term (the
                                            # authors' notebook: 0.5; configs/released_*.py)
        'checkpoint': '',             # stage 2 without stage 1 in the same job: a stage-1 workdir, a model
                                      # folder (its prior) or the original MMP-Net file (model_best.pth.tar)
        'channel_order': '',          # that original file's frames: 'rgb' (the repository's) or 'bgr'
    })

    # Stage 2, MMP-RNN (the paper: Adam 5e-4, cosine annealing, 256 x 256 sequences, batch 8,
    # flips and rot90). num_steps is set per data set (gopro.py, bsd.py). A training sequence
    # has the variant's F frames (config.model.variant A9B10C18F8: 8): the paper defines F as
    # "the length of the input image sequence" and the released code trains para.frames = 8
    # (the paper's "10-frame" in its implementation details disagrees with its own names).
    config.mmprnn = ml_collections.ConfigDict({
        'batch_size': 8, 'patch': 256, 'learning_rate': 5e-4, 'num_steps': 240_000,
        'clip_norm': 0.0,             # > 0: clip gradients to this global norm (not in the paper)
        'lr_steps_per_epoch': 0,      # > 0: the cosine moves once per epoch of this many steps (released code)
        'lr_floor': 0.0,              # the cosine's final learning rate (released code: 1e-8)
        'checkpoint_every': 5_000, 'eval_every': 25_000, 'log_every': 100,
        'init_checkpoint': '',        # fine-tuning: start from this model folder (converted or exported
                                      # MMP-RNN of the same config.model) instead of fresh weights
        # paper Eq. 8; 0 switches a term off (Table 4). The released code trains with
        # charbonnier 1, gradient 0.5 and no motion magnitude term.
        'loss_weights': {'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 1.0},
    })

    # Evaluation as the original's test (train/test.py): chunks of `chunk_frames` frames, hidden
    # state reset per chunk, chunks overlapping by past + future frames; frames 2..T-3 of every
    # sequence are scored, each once (0 = whole sequences in one chunk); outputs truncated to
    # 8 bits as the original (`quantization='round'` rounds instead).
    config.eval = ml_collections.ConfigDict({
        'chunk_frames': 20, 'sample_images': 2, 'quantization': 'truncate',
        'checkpoint': '',             # --mode=eval: score this model folder (tools.convert_checkpoint,
                                      # or a workdir's model/) instead of the training checkpoints
        'save_outputs': False,        # every scored frame -> <workdir>/eval/outputs/<sequence>/<index>.png
        'save_videos': False,         # with save_outputs: <workdir>/eval/outputs/<sequence>.mp4, input | output | sharp
    })

    # --mode=export: <workdir>/model from stage 2's checkpoint of this step (0: the latest).
    config.export = ml_collections.ConfigDict({'step': 0})
    return config
