"""Seconds per training step of the original PyTorch MMP-RNN, as its trainer (`train/dp.py`) steps:
`model.train()` (the frozen MMP-Net's BatchNorm on batch statistics), its loss
(`1*L1_Charbonnier_loss_color|0.5*L1GradientLoss`, `train/loss.py`'s `Loss`), Adam 5e-4 over
all parameters (MMP-Net's have no gradients), gradients clipped at global norm 20. Used by
`benchmarks.gpu_suite` beside our step (`benchmarks.train_step_speed`), on the same batch shape.
Needs torch and the original's code (the outer MMP-RNN/ folder)."""
import types

import numpy as np

from benchmarks.infer_speed import OriginalMode, original_model
from benchmarks.report import median_seconds
from tests.original_reference import ORIGINAL_LOSS, cuda_as_identity, import_original_loss

LEARNING_RATE = 5e-4
CLIP_NORM = 20.0


def _nctchw(frames: np.ndarray, mode: OriginalMode, device):
    """`[B, T, H, W, 3]` in [0, 1] -> the original's `[B, T, 3, H, W]` in [-0.5, 0.5] on `device`,
    each frame `[B, 3, H, W]` channels-last in memory where `mode` says (the permuted view's strides)."""
    import torch  # noqa: PLC0415
    x = torch.from_numpy(frames - np.float32(0.5)).permute(0, 1, 4, 2, 3)
    return x.to(device) if mode.channels_last else x.contiguous().to(device)


def original_step_seconds(path: str, variant: str, batch: dict[str, np.ndarray], device: str = 'cpu',
                          mode: OriginalMode = OriginalMode(), repeats: int = 3) -> float:
    """Median seconds of one training step of the original `variant` on `batch` (`blurry`, `sharp`
    `[B, T, P, P, 3]` in [0, 1]) on `device`, in `mode` (autocast float16 with a gradient scaler),
    after one warm-up step; each step waits for the device."""
    import torch  # noqa: PLC0415 (only where the original runs)

    model = original_model(path, variant, device, mode).train()
    device = model.device
    loss = import_original_loss(path)
    if device.type == 'cpu':
        with cuda_as_identity():
            criterion = loss.Loss(types.SimpleNamespace(loss=ORIGINAL_LOSS))
    else:
        criterion = loss.Loss(types.SimpleNamespace(loss=ORIGINAL_LOSS))
    blurry, sharp = (_nctchw(batch[key], mode, device) for key in ('blurry', 'sharp'))
    labels = sharp[:, model.num_fb:sharp.shape[1] - model.num_ff]
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scaler = torch.amp.GradScaler(device.type, enabled=mode.autocast == 'float16')
    wait = torch.cuda.synchronize if device.type == 'cuda' else lambda: None

    def step():
        with mode.autocast_context(device):
            losses = criterion(model(blurry), labels)
        optimizer.zero_grad()
        scaler.scale(losses['all']).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=CLIP_NORM, norm_type=2)
        scaler.step(optimizer)
        scaler.update()
        wait()
    return median_seconds(step, repeats)
