"""What the stored reference of the original PyTorch MMP-RNN was made from.

Shared by `tests/data/make_reference.py` (which runs the original code) and the tests (which
run ours): the tiny variant, the input size, and the seeded random weights, generated from
the recorded key list so that no weights need to be stored.
"""
import json
import pathlib
import sys
import types
import zlib

import numpy as np

DATA_DIR = pathlib.Path(__file__).parent / 'data'
KEYS_FILE = DATA_DIR / 'original_keys.json'
REFERENCE_FILE = DATA_DIR / 'original_reference.npz'
THOP_FILE = DATA_DIR / 'original_thop.json'
TORCH_FIXTURE = DATA_DIR / 'small_torch_save.pth'

# A tiny variant (A2B2C8) that still has every layer kind, on frames that exercise the
# UNet's pad-to-size step (36 x 44 -> ... -> 2 x 2 -> 4 x 4 padded to 4 x 5).
TINY = {'n_features': 8, 'n_blocks_a': 2, 'n_blocks_b': 2}
FULL = {'n_features': 18, 'n_blocks_a': 9, 'n_blocks_b': 10}  # A9B10C18F8
PAPER = {  # the paper's variants (Tables 2, 3), counted at 1280x720
    'A3B4C16': {'n_features': 16, 'n_blocks_a': 3, 'n_blocks_b': 4},
    'A7B8C16': {'n_features': 16, 'n_blocks_a': 7, 'n_blocks_b': 8},
    'A8B9C18': {'n_features': 18, 'n_blocks_a': 8, 'n_blocks_b': 9},
    'A9B10C18': FULL,
}
FRAMES, HEIGHT, WIDTH = 7, 36, 44
RAFT_ITERS = 3
SEED = 20221023


def load_thop() -> dict[str, dict[str, float]]:
    """thop's counts of the original: `{name: {'macs', 'params', 'height', 'width'}}`."""
    return json.loads(THOP_FILE.read_text())


def load_keys() -> dict[str, dict[str, list[int]]]:
    """`{'mmp_net' | 'mmp_rnn_full' | 'mmp_rnn_tiny': {state_dict key: shape}}`."""
    return json.loads(KEYS_FILE.read_text())


def random_state_dict(shapes: dict[str, list[int]], seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded, well-conditioned random values for every key of an original state_dict.

    Each key has its own generator (seed, crc32(key)), so the values do not depend on the
    order of the keys. Conv weights are U(+-1/sqrt(fan_in)); BatchNorm statistics are
    plausible (variance in [0.5, 1.5]).
    """
    state = {}
    for key, shape in shapes.items():
        rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
        leaf = key.rsplit('.', 1)[-1]
        if leaf == 'num_batches_tracked':
            state[key] = np.zeros(shape, np.int64)
            continue
        if leaf == 'weight' and len(shape) > 1:
            bound = 1.0 / np.sqrt(np.prod(shape[1:]))
            values = rng.uniform(-bound, bound, shape)
        elif leaf in ('running_var', 'weight'):  # BatchNorm variance and scale
            values = rng.uniform(0.5, 1.5, shape)
        else:  # biases, BatchNorm offset and mean
            values = rng.uniform(-0.1, 0.1, shape)
        state[key] = values.astype(np.float32)
    return state


def reference_frames(seed: int = SEED) -> np.ndarray:
    """8-bit frames `[1, T, H, W, 3]` (uint8): a smooth ramp plus noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, WIDTH)[None, None, None, :, None]
    noise = rng.integers(0, 56, (1, FRAMES, HEIGHT, WIDTH, 3))
    return (ramp + noise).astype(np.uint8)


ORIGINAL_PACKAGES = ('model', 'data', 'para', 'train', 'utils')


def import_original(path: str | pathlib.Path):
    """`model.MMPRNN` and `model.UNet` of one copy of the original (its folder on sys.path
    while importing; earlier imports of its packages forgotten). Needs torch, thop, cv2, PIL."""
    for name in list(sys.modules):
        if name.split('.')[0] in ORIGINAL_PACKAGES:
            del sys.modules[name]
    sys.path.insert(0, str(path))
    try:
        import model.MMPRNN as mmprnn  # noqa: PLC0415
        import model.UNet as unet  # noqa: PLC0415
    finally:
        sys.path.remove(str(path))
    return mmprnn, unet


def build_original(mmprnn, unet, n_features: int, n_blocks_a: int, n_blocks_b: int):
    """The original `Model` in eval mode on the CPU. Its constructor loads an MMP-Net
    checkpoint from the working directory: `torch.load` is replaced while it runs (the prior
    gets fresh weights), and its CUDA device for the zero states is set to the CPU."""
    import torch  # noqa: PLC0415 (only where the original is run)
    para = types.SimpleNamespace(
        n_features=n_features, n_blocks_a=n_blocks_a, n_blocks_b=n_blocks_b,
        past_frames=2, future_frames=2, activation='gelu', do_skip=True,
        centralize=True, normalize=True)
    real_load = torch.load
    torch.load = lambda *a, **k: {'state_dict': unet.UNet().state_dict()}
    try:
        model = mmprnn.Model(para)
    finally:
        torch.load = real_load
    model.device = torch.device('cpu')
    return model.eval()
