"""What the stored reference of the original PyTorch MMP-RNN was made from.

Shared by `tests/references/make_reference.py` (which runs the original code) and the tests (which
run ours): the tiny variant, the input size, and the seeded random weights, generated from
the recorded key list so that no weights need to be stored.
"""
import contextlib
import importlib.util
import json
import pathlib
import sys
import types
import zlib

import numpy as np

REFERENCES_DIR = pathlib.Path(__file__).parent / 'references'
KEYS_FILE = REFERENCES_DIR / 'original_keys.json'
REFERENCE_FILE = REFERENCES_DIR / 'original_reference.npz'
THOP_FILE = REFERENCES_DIR / 'original_thop.json'
TORCH_FIXTURE = REFERENCES_DIR / 'small_torch_save.pth'
# The original's test protocol (tests/references/make_eval_reference.py): a checkpoint saved as its
# trainer saves one, the figures its `train/test.py::_test_torch` printed for it on the tiny
# BSD-layout test set below, and some of the frames it wrote.
TRAINER_CHECKPOINT = REFERENCES_DIR / 'original_trainer_checkpoint.pth.tar'
TEST_FIGURES = REFERENCES_DIR / 'original_test_figures.json'
TEST_OUTPUTS = REFERENCES_DIR / 'original_test_outputs.npz'
# The original in training mode, MMP-Net's BatchNorm on batch statistics
# (tests/references/make_prior_batch_norm_reference.py), on `prior_batch_frames()`.
PRIOR_BATCH_NORM_FILE = REFERENCES_DIR / 'original_prior_batch_norm.npz'

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


PRIOR_BATCH_SHAPE = (2, 5, 32, 32)  # B, T, H, W: MMP-Net's coarsest level has 2 x 2 x 2 values


def prior_batch_frames(seed: int = SEED) -> np.ndarray:
    """8-bit frames `[B, T, H, W, 3]` (uint8) of `PRIOR_BATCH_SHAPE`: uniform noise, each frame
    brighter than the last, so that every frame's batch statistics differ."""
    rng = np.random.default_rng([seed, 2])
    batch, frames, height, width = PRIOR_BATCH_SHAPE
    noise = rng.integers(0, 160, (batch, frames, height, width, 3))
    return (noise + 20 * np.arange(frames)[None, :, None, None, None]).astype(np.uint8)


BSD_SEQUENCES = ('000', '001')
BSD_TEST_FRAMES = 150  # `_test_torch` assumes 150 frames per test sequence (BSD's test split)


def bsd_test_set(seed: int = SEED) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{sequence: (blurry, sharp)}`, uint8 `[BSD_TEST_FRAMES, HEIGHT, WIDTH, 3]`: a noise
    texture moving one pixel per frame diagonally (sharp) and the mean of five neighbouring
    positions (blurry). The arrays are what the PNG files hold, in the order cv2 writes them."""
    out = {}
    for number, name in enumerate(BSD_SEQUENCES):
        rng = np.random.default_rng([seed, number])
        size = BSD_TEST_FRAMES + 4
        texture = rng.uniform(0, 255, (HEIGHT + size, WIDTH + size, 3))
        texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3  # some correlation
        crop = lambda t: texture[t:t + HEIGHT, t:t + WIDTH]
        sharp = np.stack([crop(t + 2) for t in range(BSD_TEST_FRAMES)])
        blurry = np.stack([np.mean([crop(t + d) for d in range(5)], axis=0) for t in range(BSD_TEST_FRAMES)])
        out[name] = (np.round(blurry).astype(np.uint8), np.round(sharp).astype(np.uint8))
    return out


def write_bsd_test_set(root: str | pathlib.Path) -> pathlib.Path:
    """Writes `bsd_test_set()` as BSD lays it out, `root/test/<seq>/{Blur,Sharp}/RGB/%08d.png`;
    returns `root`. Needs cv2."""
    import cv2  # noqa: PLC0415
    root = pathlib.Path(root)
    for name, (blurry, sharp) in bsd_test_set().items():
        for kind, frames in (('Blur', blurry), ('Sharp', sharp)):
            folder = root / 'test' / name / kind / 'RGB'
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(frames):
                cv2.imwrite(str(folder / f'{t:08d}.png'), frame)
    return root


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


ORIGINAL_LOSS = '1*L1_Charbonnier_loss_color|0.5*L1GradientLoss'  # the released code's (train/dp.py's para.loss)


@contextlib.contextmanager
def cuda_as_identity():
    """Inside, a tensor's `.cuda()` returns the tensor itself: the original's constructors that
    move their tensors to CUDA build on the CPU."""
    import torch  # noqa: PLC0415 (only where the original is run)
    real_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = real_cuda


def import_original_loss(path: str | pathlib.Path) -> types.ModuleType:
    """The original's `train/loss.py` (of the outer MMP-RNN/ folder `path`), loaded from its file:
    `train/__init__.py` imports the whole trainer. Where torchvision is absent it is stubbed (the
    module imports it for a perceptual loss not used here). Its gradient loss moves its kernels
    to CUDA when built: on the CPU build it inside `cuda_as_identity()`."""
    if 'torchvision' not in sys.modules and importlib.util.find_spec('torchvision') is None:
        sys.modules.setdefault('torchvision', types.ModuleType('torchvision'))
        sys.modules.setdefault('torchvision.models', types.ModuleType('torchvision.models'))
    spec = importlib.util.spec_from_file_location('original_loss', pathlib.Path(path) / 'train' / 'loss.py')
    loss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loss)
    return loss


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


# The original's training loop (tests/references/make_trainer_reference.py): the tiny variant trained
# TRAINER_STEPS steps on `trainer_batches()`, TRAINER_STEPS_PER_EPOCH steps per epoch.
TRAINER_FILE = REFERENCES_DIR / 'original_trainer_steps.npz'
TRAINER_SHAPE = (2, 5, 32, 32)  # B, T, H, W
TRAINER_STEPS, TRAINER_STEPS_PER_EPOCH = 6, 2
TRAINER_LEARNING_RATE, TRAINER_FLOOR = 5e-4, 1e-8
TRAINER_LOSS = '1*L1_Charbonnier_loss_color|0.5*L1GradientLoss'
# The released max_norm=20 never bites on the tiny model's gradients (global norm 0.29-0.43):
# clipped at 0.35 instead, it bites on the first four steps and not on the last two.
TRAINER_CLIP_NORM = 0.35


def trainer_batches(seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """TRAINER_STEPS (blurry, sharp) pairs, uint8 `[B, T, H, W, 3]` of TRAINER_SHAPE: smooth
    noise (sharp) and its mean with a shifted copy (blurry)."""
    rng = np.random.default_rng([seed, 3])
    batches = []
    for _ in range(TRAINER_STEPS):
        sharp = rng.uniform(0, 255, TRAINER_SHAPE + (3,))
        sharp = (sharp + np.roll(sharp, 1, 2) + np.roll(sharp, 1, 3)) / 3
        blurry = (sharp + np.roll(sharp, 2, 3)) / 2
        batches.append((np.round(blurry).astype(np.uint8), np.round(sharp).astype(np.uint8)))
    return batches
