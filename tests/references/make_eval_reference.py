"""Makes the original's trainer-saved checkpoint and its test figures, for
`tests/cli/test_original_protocol.py`, by running the original code.

    git clone https://github.com/sollynoay/MMP-RNN /tmp/MMP-RNN   # or the search tool's fetch
    pip install torch==2.13.0 thop numpy opencv-python-headless scikit-image
    python tests/references/make_eval_reference.py --original /tmp/MMP-RNN/MMP-RNN

Writes, under tests/references/:
- `original_trainer_checkpoint.pth.tar`: what `train/dp.py` saves after one training step of
  `nn.DataParallel(Model(para))` (`model/model.py`), A2B2C8 with the seeded random weights of
  `tests/original_reference.py`: `epoch`, `model`, `state_dict` (`module.model.` keys),
  `register_dict` (the original `utils/logger.py` Logger's), `optimizer` (Adam state after the
  step, gradients clipped at norm 20 as dp.py does) and `scheduler` (cosine annealing).
  The step runs in `train()` mode, so the frozen MMP-Net's BatchNorm statistics move, as in the
  original's stage 2.
- `original_test_figures.json`: what the original's `train/test.py::_test_torch` prints for that
  file on the BSD-layout test set of `original_reference.bsd_test_set` (2 sequences of 150
  frames, 36x44): frames scored, PSNR, SSIM.
- `original_test_outputs.npz`: some of the deblurred frames `_test_torch` wrote (uint8, as
  cv2.imread reads its PNGs).

Run on the CPU: `.cuda()` is the identity while the original runs, the network's CUDA device
for its zero states is the CPU, and the MMP-Net file its constructor loads is replaced by fresh
weights (overwritten by the checkpoint's). Two shims for today's libraries, each reproducing
what the authors' versions did: numpy 1.x's `np.float` (= float, used by `train/metrics.py`),
and scikit-image <= 0.18's `structural_similarity(..., multichannel=True)`, which is today's
`channel_axis=-1`. lmdb (imported by test.py, used only for GOPRO) is stubbed.
"""
import argparse
import importlib
import json
import pathlib
import re
import sys
import tempfile
import types

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import original_reference as ref  # noqa: E402

SAVED_FRAMES = range(2, 148, 8)  # of sequence '000'


def original_para(data_root: str, save_dir: str) -> types.SimpleNamespace:
    """The parameters `para/parameter.py` would give, for the tiny variant on BSD."""
    return types.SimpleNamespace(
        model='MMPRNN', dataset='BSD', ds_config='2ms16ms', data_format='RGB', data_root=data_root,
        save_dir=save_dir, test_save_dir=save_dir, test_frames=20, video=False,
        n_features=ref.TINY['n_features'], n_blocks_a=ref.TINY['n_blocks_a'], n_blocks_b=ref.TINY['n_blocks_b'],
        past_frames=2, future_frames=2, activation='gelu', do_skip=True, centralize=True, normalize=True,
        optimizer='Adam', lr=5e-4, lr_scheduler='cosine', end_epoch=500, milestones=[200, 400], decay_gamma=0.5,
        loss='1*L1_Charbonnier_loss_color|0.5*L1GradientLoss', frames=8)


def import_original(original: pathlib.Path) -> dict[str, types.ModuleType]:
    """The original's modules, its folder left on sys.path (model.Model imports by name)."""
    for name in list(sys.modules):
        if name.split('.')[0] in ref.ORIGINAL_PACKAGES:
            del sys.modules[name]
    sys.modules['lmdb'] = types.ModuleType('lmdb')
    sys.path.insert(0, str(original))
    train = types.ModuleType('train')  # without train/__init__.py (it imports the whole trainer)
    train.__path__ = [str(original / 'train')]
    sys.modules['train'] = train
    return {name: importlib.import_module(name) for name in
            ('model.model', 'model.UNet', 'train.optimizer', 'train.test', 'train.metrics', 'utils.logger')}


def build(modules, para) -> nn.Module:
    """`nn.DataParallel(Model(para))` on the CPU, as the trainer and the test build it."""
    unet = modules['model.UNet']
    real_load = torch.load
    torch.load = lambda *a, **k: {'state_dict': unet.UNet().state_dict()}
    try:
        wrapper = modules['model.model'].Model(para)
    finally:
        torch.load = real_load
    wrapper.model.device = torch.device('cpu')
    return nn.DataParallel(wrapper)


def trainer_checkpoint(modules, para) -> dict:
    """One training step as `train/dp.py` takes it, then the dict it saves."""
    net = build(modules, para)
    shapes = ref.load_keys()['mmp_rnn_tiny']
    net.load_state_dict({f'module.model.{k}': torch.from_numpy(v)
                         for k, v in ref.random_state_dict(shapes).items()})
    opt = modules['train.optimizer'].Optimizer(para, net)
    net.train()
    rng = np.random.default_rng(ref.SEED)
    frames = torch.from_numpy(rng.uniform(-0.5, 0.5, (2, para.frames, 3, ref.HEIGHT, ref.WIDTH)).astype(np.float32))
    output = net([frames])
    loss = (output - frames[:, para.past_frames:para.frames - para.future_frames]).abs().mean()
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), max_norm=20, norm_type=2)
    opt.step()
    opt.lr_schedule()
    logger = modules['utils.logger'].Logger(para)
    logger.register(para.loss + '_train', 1, loss.item())
    logger.register(para.loss + '_valid', 1, loss.item())
    return {'epoch': 1, 'model': para.model, 'state_dict': net.state_dict(),
            'register_dict': logger.register_dict, 'optimizer': opt.optimizer.state_dict(),
            'scheduler': opt.scheduler.state_dict()}


def run_original_test(modules, para, checkpoint_path: pathlib.Path) -> str:
    """`train/test.py`'s loading and `_test_torch`, as `test()` does them; returns its log."""
    net = build(modules, para)
    checkpoint = torch.load(checkpoint_path, map_location='cpu', weights_only=False)
    net.load_state_dict(checkpoint['state_dict'])
    np.float = float  # numpy 1.x, for train/metrics.py
    modules['train.metrics'].compare_ssim = lambda x, y, multichannel, **kw: structural_similarity(
        x, y, channel_axis=-1 if multichannel else None, **kw)  # scikit-image <= 0.18
    logger = modules['utils.logger'].Logger(para)
    real_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with torch.no_grad():
            modules['train.test']._test_torch(para, logger, net, 'test')
    finally:
        torch.Tensor.cuda = real_cuda
    logger.logger.close()
    return pathlib.Path(logger.save_dir, 'log.txt').read_text()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--original', type=pathlib.Path, required=True,
                        help='the outer MMP-RNN/ folder of sollynoay/MMP-RNN')
    args = parser.parse_args()
    torch.manual_seed(ref.SEED)
    modules = import_original(args.original)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        ref.write_bsd_test_set(scratch / 'BSD' / 'BSD_2ms16ms')
        para = original_para(str(scratch), str(scratch / 'results'))
        torch.save(trainer_checkpoint(modules, para), ref.TRAINER_CHECKPOINT)
        log = run_original_test(modules, para, ref.TRAINER_CHECKPOINT)
        figure = lambda label: re.search(rf'{label} : (\S+)', log).group(1)
        figures = {'count': int(figure('Test images')), 'psnr': float(figure('Test PSNR')),
                   'ssim': float(figure('Test SSIM')), 'sequences': list(ref.BSD_SEQUENCES),
                   'frames_per_sequence': ref.BSD_TEST_FRAMES, 'test_frames': para.test_frames,
                   'made_by': 'tests/references/make_eval_reference.py (train/test.py::_test_torch of '
                              f'sollynoay/MMP-RNN, torch {torch.__version__}, CPU)'}
        ref.TEST_FIGURES.write_text(json.dumps(figures, indent=1) + '\n')
        written = scratch / 'results' / 'BSD_MMPRNN_test' / ref.BSD_SEQUENCES[0]
        outputs = {f'{t:08d}': cv2.imread(str(written / f'{t:08d}_mmprnn.png')) for t in SAVED_FRAMES}
        np.savez_compressed(ref.TEST_OUTPUTS, **outputs)
    print(figures)


if __name__ == '__main__':
    main()
