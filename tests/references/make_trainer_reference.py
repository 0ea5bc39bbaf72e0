"""Regenerates `original_trainer_steps.npz`: the original's training loop (train/dp.py) run on
the tiny variant for a few steps.

    pip install torch==2.13.0 numpy thop pillow opencv-python-headless
    python tests/references/make_trainer_reference.py --original /tmp/MMP-RNN/MMP-RNN

The loop's pieces as train/dp.py and train/optimizer.py put them together: the tiny MMP-RNN
(tests/original_reference.py, seeded random weights, built as make_reference.py builds it) in
`model.train()` (the frozen MMP-Net's BatchNorm on batch statistics, its running statistics
moving), `Loss(para)` of train/loss.py with the released `--loss` (Charbonnier + 0.5 gradient),
`torch.optim.Adam(model.parameters(), lr)`, `clip_grad_norm_(model.parameters(), max_norm)`
(TRAINER_CLIP_NORM where the released code has 20, which these gradients never reach),
`CosineAnnealingLR(T_max=end_epoch, eta_min=1e-8)` stepped after each epoch of
TRAINER_STEPS_PER_EPOCH steps. The loss module is loaded as make_reference.build_losses loads it
(`.cuda()` the identity); no code of the original is copied. Recorded:

    lr              float64 [steps], the learning rate each step took
    loss            float32 [steps], the loss each step computed (before its update)
    grad_norm       float32 [steps], the gradients' global norm before clipping
    param:<key>     float32, every trained parameter after the last step (state_dict keys)
    stat:<key>      float32, MMP-Net's running_mean / running_var after the last step
"""
import pathlib
import sys
import types

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import original_reference as ref  # noqa: E402
from tests.references.make_reference import build_losses, tiny_original  # noqa: E402


def main():
    model, original = tiny_original(__doc__)
    criterion = build_losses(original, lambda loss: loss.Loss(types.SimpleNamespace(loss=ref.TRAINER_LOSS)))
    optimizer = torch.optim.Adam(model.parameters(), lr=ref.TRAINER_LEARNING_RATE)
    epochs = ref.TRAINER_STEPS // ref.TRAINER_STEPS_PER_EPOCH
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=ref.TRAINER_FLOOR)
    model.train()

    rates, losses, norms = [], [], []
    for number, (blurry, sharp) in enumerate(ref.trainer_batches()):
        x = (torch.from_numpy(blurry).float() - 127.5) / 255.0         # the original's normalize()
        y = (torch.from_numpy(sharp).float() - 127.5) / 255.0
        out = model(x.permute(0, 1, 4, 2, 3).contiguous())
        labels = y.permute(0, 1, 4, 2, 3)[:, 2:-2]                      # past_frames 2, future_frames 2
        loss = criterion(out, labels)['all']
        rates.append(optimizer.param_groups[0]['lr'])
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        norms.append(clip_grad_norm_(model.parameters(), max_norm=ref.TRAINER_CLIP_NORM, norm_type=2).item())
        optimizer.step()
        if (number + 1) % ref.TRAINER_STEPS_PER_EPOCH == 0:
            scheduler.step()

    outputs = {'lr': np.array(rates, np.float64), 'loss': np.array(losses, np.float32),
               'grad_norm': np.array(norms, np.float32)}
    for key, parameter in model.named_parameters():
        if parameter.requires_grad:
            outputs[f'param:{key}'] = parameter.detach().numpy()
    for key, value in model.state_dict().items():
        if key.startswith('cell.prior.') and key.endswith(('running_mean', 'running_var')):
            outputs[f'stat:{key}'] = value.numpy()
    np.savez_compressed(ref.TRAINER_FILE, **outputs)
    print('lr', outputs['lr'], 'loss', outputs['loss'], 'norm', outputs['grad_norm'],
          sum(k.startswith('param:') for k in outputs), 'parameters')


if __name__ == '__main__':
    main()
