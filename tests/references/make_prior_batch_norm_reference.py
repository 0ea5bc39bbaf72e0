"""Regenerates `original_prior_batch_norm.npz`: the original MMP-RNN in training mode, where
`model.train()` (train/dp.py) reaches the frozen MMP-Net inside the cell, so its BatchNorm
normalises each frame with the batch's statistics and updates its running statistics.

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy thop pillow opencv-python-headless
    git clone https://github.com/sollynoay/MMP-RNN /tmp/MMP-RNN   # or the search tool's fetch
    /tmp/torchenv/bin/python tests/references/make_prior_batch_norm_reference.py --original /tmp/MMP-RNN/MMP-RNN

The tiny variant (tests/original_reference.py: A2B2C8) with the seeded random weights of
`original_reference.random_state_dict` (MMP-Net's BatchNorm running statistics included) is
built as `make_reference.py` builds it (the original imported from `--original`, its
constructor's `torch.load` and CUDA device replaced; no code of the original is copied), put
in training mode and run once, without gradients, on `prior_batch_frames()`. Recorded:

    frames          uint8 [B, T, H, W, 3], the input (the original's normalize(): (x - 127.5) / 255)
    prior           float32 [B, T, H, W, 1] in [0, 1], MMP-Net's output at each frame (a hook)
    output          float32 [B, T - 4, H, W, 3], the network's output (normalised: minus 0.5)
    <key>           float32 [C], MMP-Net's running_mean / running_var after the forward, under
                    their state_dict keys (`cell.prior.inc.double_conv.1.running_mean`, ...)
"""
import pathlib
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import original_reference as ref  # noqa: E402
from tests.references.make_reference import tiny_original  # noqa: E402


def main():
    torch.set_grad_enabled(False)
    model, _ = tiny_original(__doc__)
    model.train()                                                     # as train/dp.py's train()
    priors = []
    model.cell.prior.register_forward_hook(lambda module, inputs, out: priors.append(out.clone()))

    frames = ref.prior_batch_frames()                                 # [B, T, H, W, 3] uint8
    x = (torch.from_numpy(frames).float() - 127.5) / 255.0
    out = model(x.permute(0, 1, 4, 2, 3).contiguous())                # [B, T - 4, 3, H, W]

    outputs = {'frames': frames,
               'prior': torch.stack(priors, 1).permute(0, 1, 3, 4, 2).numpy(),
               'output': out.permute(0, 1, 3, 4, 2).numpy()}
    for key, value in model.state_dict().items():
        if key.startswith('cell.prior.') and key.endswith(('running_mean', 'running_var')):
            outputs[key] = value.numpy()
    np.savez_compressed(ref.PRIOR_BATCH_NORM_FILE, **outputs)
    print({k: v.shape for k, v in outputs.items() if not k.startswith('cell.')},
          sum(k.startswith('cell.') for k in outputs), 'statistics')


if __name__ == '__main__':
    main()
