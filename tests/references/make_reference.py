"""Regenerates `original_keys.json` and `original_reference.npz` by running the original code.

    git clone https://github.com/sollynoay/MMP-RNN /tmp/MMP-RNN   # or the search tool's fetch
    pip install torch==2.13.0 thop pillow opencv-python-headless numpy
    git clone https://github.com/princeton-vl/RAFT /tmp/RAFT
    python tests/references/make_reference.py --original /tmp/MMP-RNN/MMP-RNN --raft /tmp/RAFT/core [--paper-sizes]

`--original` is the outer copy (`MMP-RNN/`, whose fusion applies channel attention); its
inner copy `MMP-RNN/MMP-RNN/` (attention line commented out) is run as well. The original
loads an MMP-Net checkpoint in its constructor and allocates on CUDA; this script replaces
`torch.load` during construction and moves the model's zero states to the CPU. No code of
the original is copied here: it is imported from the given path.

It also records thop's parameter and MAC counts of the original (`original_thop.json`):
MMP-Net on one frame and MMP-RNN per frame by the original's `profile_forward` over 3
frames divided by 3, at the reference size and, with `--paper-sizes`, at 1280x720 for the
paper's variants (slow: minutes on a CPU).
"""
import argparse
import collections
import json
import pathlib
import sys

import cv2
import numpy as np
import thop
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import original_reference as ref  # noqa: E402

def shapes_of(module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def load_random(module, shapes):
    state = ref.random_state_dict(shapes)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})


def tiny_original(doc: str):
    """The original's tiny MMP-RNN (`ref.TINY`, seeded random weights) and the `--original` folder
    it was imported from, that folder read from the command line of a script documented by `doc`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--original', type=pathlib.Path, required=True,
                        help='the outer MMP-RNN/ folder of sollynoay/MMP-RNN')
    original = parser.parse_args().original
    model = ref.build_original(*ref.import_original(original), **ref.TINY)
    load_random(model, ref.load_keys()['mmp_rnn_tiny'])
    return model, original


def thop_counts(model, x, **kwargs) -> dict[str, float]:
    """thop's MACs and params; for MMP-RNN per frame of a 3-frame `profile_forward`."""
    macs, params = thop.profile(model, inputs=(x,) + tuple(kwargs.values()), verbose=False)
    frames = x.shape[1] if x.ndim == 5 else 1
    return {'macs': float(macs) / frames, 'params': float(params),
            'height': x.shape[-2], 'width': x.shape[-1]}


def profile_all(mmprnn, unet, paper_sizes: bool) -> dict[str, dict]:
    sizes = [('tiny', ref.HEIGHT, ref.WIDTH, {'tiny': ref.TINY})]
    if paper_sizes:
        sizes.append(('paper', 720, 1280, ref.PAPER))
    counts = {}
    for label, height, width, variants in sizes:
        counts[f'mmp_net_{label}'] = thop_counts(unet.UNet().eval(), torch.zeros(1, 3, height, width))
        for name, fields in variants.items():
            model = ref.build_original(mmprnn, unet, **fields)
            counts[f'mmp_rnn_{name}'] = thop_counts(model, torch.zeros(1, 3, 3, height, width),
                                                   profile_flag=True)
    return counts


def write_torch_fixture() -> None:
    """A small `torch.save` file for the torch-free reader: nested dict, `module.` prefixes,
    several dtypes, a non-contiguous tensor, a Parameter."""
    state = collections.OrderedDict([
        ('module.a.weight', torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)),
        ('module.a.bias', torch.nn.Parameter(torch.tensor([0.5, -1.5]))),
        ('module.b.running_mean', torch.arange(6, dtype=torch.float64).reshape(2, 3).t()),
        ('module.b.num_batches_tracked', torch.tensor(7)),
        ('module.c', torch.ones(3, dtype=torch.float16)),
    ])
    torch.save({'epoch': 3, 'state_dict': state, 'best': [1.0, 'x']}, ref.TORCH_FIXTURE)


def build_losses(original: pathlib.Path, build):
    """`build(module)` of the original's `train/loss.py` module (e.g. its losses), the module loaded
    by `original_reference.import_original_loss` and `build` run with `.cuda()` as the identity (the
    gradient loss moves its kernels to CUDA when built)."""
    loss = ref.import_original_loss(original)
    with ref.cuda_as_identity():
        return build(loss)


def loss_references(original: pathlib.Path) -> dict[str, np.ndarray]:
    """The original's `L1_Charbonnier_loss_color` and `L1GradientLoss` on random frames."""
    charbonnier, gradient = build_losses(
        original, lambda loss: (loss.L1_Charbonnier_loss_color(None), loss.L1GradientLoss(None)))
    rng = np.random.default_rng(ref.SEED)
    output = rng.uniform(0, 1, (2, 20, 24, 3)).astype(np.float32)  # [N, H, W, 3] in [0, 1]
    target = rng.uniform(0, 1, (2, 20, 24, 3)).astype(np.float32)
    nchw = lambda x: torch.from_numpy(x - 0.5).permute(0, 3, 1, 2)  # the original's range
    return {'loss_output': output, 'loss_target': target,
            'loss_charbonnier': charbonnier(nchw(output), nchw(target)).numpy(),
            'loss_gradient': gradient(nchw(output), nchw(target)).numpy()}


def raft_references(core: pathlib.Path) -> tuple[dict, dict]:
    """Key shapes and outputs of the official RAFT (princeton-vl/RAFT `core/`), small and
    large, seeded random weights, 3 iterations, on a 128x160 pair (the second image is the
    first shifted by (3, 2) pixels). Smaller images make the coarsest correlation level one
    pixel wide, where the official look-up divides by zero."""
    for name in list(sys.modules):
        if name.split('.')[0] in ('raft', 'update', 'extractor', 'corr', 'utils'):
            del sys.modules[name]
    sys.path.insert(0, str(core))
    try:
        import raft  # noqa: PLC0415
    finally:
        sys.path.remove(str(core))
    rng = np.random.default_rng(ref.SEED)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (136, 168, 3)).astype(np.float32), (0, 0), 2)
    image1, image2 = scene[4:132, 4:164], scene[2:130, 1:161]
    keys, outputs = {}, {'raft_image1': image1, 'raft_image2': image2}
    for size in ('small', 'large'):
        args = argparse.Namespace(small=size == 'small', mixed_precision=False, alternate_corr=False, dropout=0)
        model = raft.RAFT(args).eval()
        keys[f'raft_{size}'] = shapes_of(model)
        load_random(model, keys[f'raft_{size}'])
        nchw = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]
        _, flow = model(nchw(image1), nchw(image2), iters=ref.RAFT_ITERS, test_mode=True)
        outputs[f'raft_{size}_flow'] = flow.permute(0, 2, 3, 1).numpy()
    return keys, outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--original', type=pathlib.Path, required=True,
                        help='the outer MMP-RNN/ folder of sollynoay/MMP-RNN')
    parser.add_argument('--raft', type=pathlib.Path, required=True,
                        help='the core/ folder of princeton-vl/RAFT')
    parser.add_argument('--paper-sizes', action='store_true',
                        help='also count MACs of the paper variants at 1280x720')
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    mmprnn, unet = ref.import_original(args.original)
    keys = {'mmp_net': shapes_of(unet.UNet()),
            'mmp_rnn_full': shapes_of(ref.build_original(mmprnn, unet, **ref.FULL)),
            'mmp_rnn_tiny': shapes_of(ref.build_original(mmprnn, unet, **ref.TINY))}
    raft_keys, raft_outputs = raft_references(args.raft)
    keys.update(raft_keys)
    ref.KEYS_FILE.write_text(json.dumps(keys, indent=0, sort_keys=True) + '\n')
    counts = ref.load_thop() if ref.THOP_FILE.exists() else {}  # keeps paper sizes if not redone
    counts.update(profile_all(mmprnn, unet, args.paper_sizes))
    ref.THOP_FILE.write_text(json.dumps(counts, indent=1) + '\n')

    write_torch_fixture()
    frames = ref.reference_frames()                                   # [1, T, H, W, 3] uint8
    x = (torch.from_numpy(frames).float() - 127.5) / 255.0            # the original's normalize()
    x = x.permute(0, 1, 4, 2, 3).contiguous()                         # [1, T, 3, H, W]
    outputs = {'frames': frames, **loss_references(args.original), **raft_outputs}

    prior_net = unet.UNet().eval()
    load_random(prior_net, keys['mmp_net'])
    outputs['mmp_net_prior'] = prior_net(x[0, :2]).permute(0, 2, 3, 1).numpy()

    for name, copy in (('attention', args.original), ('no_attention', args.original / 'MMP-RNN')):
        mmprnn, unet = ref.import_original(copy)
        model = ref.build_original(mmprnn, unet, **ref.TINY)
        load_random(model, keys['mmp_rnn_tiny'])
        out = model(x)                                                # [1, T-4, 3, H, W]
        outputs[f'mmp_rnn_{name}'] = out.permute(0, 1, 3, 4, 2).numpy()
    np.savez_compressed(ref.REFERENCE_FILE, **outputs)
    print({k: v.shape for k, v in outputs.items()})


if __name__ == '__main__':
    main()
