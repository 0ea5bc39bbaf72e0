"""MMP-RNN (sollynoay/MMP-RNN `MMP-RNN/model/MMPRNN.py`) in Flax, channels-last.

Frames are `[B, T, H, W, 3]` in [0, 1], H and W multiples of 4. Internally they are
normalised as the original's data loader does (`centralize`: minus 0.5, `normalize`: kept
in units of 1/255; both on by default), and the prior is computed by MMP-Net from that same
normalised frame, as the original's cell does. Outputs are mapped back to [0, 1] units
(not clipped).

MMP-Net inside MMP-RNN has its owner here: `PRIOR_PATH` is where its variables sit,
`prior_variables` / `with_prior_variables` read and replace them, and `InputScaling` is how
its input is scaled; stage 1, the motion magnitude loss, the evaluation and the converter all
go through these.

Data flow per frame t (the cell, scanned over time with shared weights):
    x_t -> F_B0 (5x5) -> MMAM(prior_t) -> F_B1, F_B2 (RDB + stride-2 conv each) = l_t
    a_t = concat(l_t, l_{t-1}, h_{t-1}) -> F_R (RDNet, n_a RDBs) = f_t -> F_h = h_t
Then for each frame with `past_frames` before and `future_frames` after it:
    concat(f_{t-2..t+2}) -> channel attention -> 1x1 -> RDNet (n_b RDBs) -> two
    transposed convs -> 5x5 to RGB, plus a 9x9 conv of x_t (global skip).

`dtype` is the compute dtype of every layer (`COMPUTE_DTYPES`; parameters and statistics stay
float32, outputs are float32); the submodules' `dtype` None computes in the inputs' dtype.
`remat` rematerialises the cell in `encode_sequence` (`REMAT_POLICIES`): the backward pass
recomputes what the policy does not save, trading compute for training memory; it needs the
recurrence as a loop (`scan_unroll=False`, see benchmarks/train_step_memory.py).

`prior_batch_norm` is how the frozen MMP-Net's BatchNorm runs in training (`train=True`;
evaluation and inference always use the running statistics): 'running' (the paper's frozen
prior) on its running statistics, left unchanged; 'batch' (the released code, whose
`model.train()` in train/dp.py reaches the prior) on each frame's batch statistics, the
running statistics updated frame by frame as PyTorch does (`layers.TrainingBatchNorm`; apply
with `mutable=['batch_stats']`). Under data parallelism the statistics are the global batch's,
where the original's nn.DataParallel normalised each GPU's share on its own.
"""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from mmp_jax.errors import UserError
from mmp_jax.models.layers import GlobalAvgPool, activation, conv, conv_transpose
from mmp_jax.models.mmp_net import MIN_SIZE, MMPNet
from mmp_jax.models.rdb import RDB, RDBDownsample, RDNet
from mmp_jax.models.parts import channel_bounds, parts_of

PRIOR_SOURCES = ('mmpnet', 'given')
PRIOR_BATCH_NORMS = ('running', 'batch')  # the prior's BatchNorm in training (see the module's doc)
DOWNSAMPLE = 4  # the cell works at 1/4 of the frame size

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# What the backward pass keeps of the cell ('none': no rematerialisation, everything is kept).
REMAT_POLICIES = {'none': None, 'full': jax.checkpoint_policies.nothing_saveable}

Carry = tuple[jax.Array, jax.Array]  # (h: [B, H/4, W/4, C], l: [B, H/4, W/4, 2C])
PRIOR_PATH = ('cell', 'prior')  # MMP-Net's variables inside MMP-RNN's, in each collection
COLLECTIONS = ('params', 'batch_stats')


@dataclasses.dataclass(frozen=True)
class InputScaling:
    """Frames in [0, 1] <-> the units the network (and MMP-Net inside it) works in, as the
    original's data loader: `centralize` subtracts 0.5, `normalize` keeps units of 1/255
    (off: values times 255)."""
    centralize: bool = True
    normalize: bool = True

    def to_model(self, frames: jax.Array) -> jax.Array:
        x = frames - 0.5 if self.centralize else frames
        return x if self.normalize else x * 255.0

    def from_model(self, x: jax.Array) -> jax.Array:
        x = x if self.normalize else x / 255.0
        return x + 0.5 if self.centralize else x


def prior_variables(variables: dict) -> dict:
    """MMP-Net's `{'params', 'batch_stats'}` out of MMP-RNN's variables."""
    out = {}
    for collection in COLLECTIONS:
        tree = variables[collection]
        for name in PRIOR_PATH:
            tree = tree[name]
        out[collection] = tree
    return out


def with_prior_variables(variables: dict, mmpnet: dict) -> dict:
    """A copy of MMP-RNN's `variables` (the nesting copied, arrays shared) with MMP-Net's
    `{'params', 'batch_stats'}` in place of its own."""
    out = jax.tree.map(lambda x: x, variables)
    for collection in COLLECTIONS:
        parent = out[collection]
        for name in PRIOR_PATH[:-1]:
            parent = parent[name]
        parent[PRIOR_PATH[-1]] = mmpnet[collection]
    return out


def mmpnet_prior(mmpnet: dict, frames: jax.Array, scaling: InputScaling = InputScaling(),
                 dtype: Dtype | None = None) -> jax.Array:
    """MMP-Net's prior `[N, H, W, 1]` in [0, 1] of frames `[N, H, W, 3]` in [0, 1], with its
    variables `{'params', 'batch_stats'}` (`prior_variables`), as MMP-RNN's cell computes it
    (in compute dtype `dtype`; None: the frames')."""
    return MMPNet(dtype).apply(mmpnet, scaling.to_model(frames), train=False)


class MMAM(nn.Module):
    """Motion magnitude attentive module: `x * (1 + conv1(leaky_relu(conv0(prior), 0.1)))`.

    x `[N, H, W, C]`, prior `[N, H, W, 1]` in [0, 1].
    """
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, prior: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        scale = nn.leaky_relu(conv(channels // 2, 1, name='MMAM_conv0', dtype=self.dtype)(prior), 0.1)
        return x * (conv(channels, 1, name='MMAM_conv1', dtype=self.dtype)(scale) + 1.0)


class RDBCell(nn.Module):
    """Feature extraction cell, one frame: `(carry, (x, prior)) -> (carry', f)`, in two parts:
    `extract` (F_B0, MMP-Net, MMAM, F_B1, F_B2: the frame alone, so any number of frames in
    one call) and `recur` (F_R and F_h on l_t, l_{t-1}, h_{t-1}: frame by frame).

    x `[N, H, W, 3]` normalised; prior `[N, H, W, 1]` or None (then MMP-Net computes it);
    f `[N, H/4, W/4, 5C]`. With `return_prior` the output is `(f, prior)` (prior None
    without MMAM). `train_prior`: MMP-Net in training mode (batch statistics, PyTorch's).
    """
    n_features: int
    n_blocks: int
    act: str = 'gelu'
    use_mmam: bool = True
    prior_source: str = 'mmpnet'
    transmit_ndf: bool = True
    dtype: Dtype | None = None

    def setup(self):
        c, dtype = self.n_features, self.dtype
        self.F_B0 = conv(c, 5, dtype=dtype)
        if self.use_mmam:
            if self.prior_source == 'mmpnet':
                self.prior = MMPNet(dtype, torch_batch_norm=True)
            self.MMAM1 = MMAM(dtype)
        self.F_B1 = RDBDownsample(c, 2 * c, 3, self.act, dtype)
        self.F_B2 = RDBDownsample(3 * c // 2, 2 * c, 3, self.act, dtype)
        self.F_R = RDNet(2 * c, self.n_blocks, 3, self.act, dtype)
        self.F_h_0 = conv(c, 3, dtype=dtype)
        self.F_h_1 = RDB(c, 3, self.act, dtype)
        self.F_h_2 = conv(c, 3, dtype=dtype)

    def extract(self, x: jax.Array, prior: jax.Array | None,
                train_prior: bool = False) -> tuple[jax.Array, jax.Array | None]:
        """x `[N, H, W, 3]` normalised, prior as in the class doc -> (l `[N, H/4, W/4, 2C]`,
        prior `[N, H, W, 1]`, the given one without MMAM)."""
        out = self.F_B0(x)
        if self.use_mmam:
            if self.prior_source == 'mmpnet':
                prior = self.prior(x, train=train_prior)
            out = self.MMAM1(out, prior)
        return self.F_B2(self.F_B1(out)), prior

    def recur(self, carry: Carry, mid: jax.Array) -> tuple[Carry, jax.Array]:
        """(h_{t-1}, l_{t-1}), l_t `[N, H/4, W/4, 2C]` -> ((h_t, l_t), f_t `[N, H/4, W/4, 5C]`)."""
        s_last, mid_last = carry
        if not self.transmit_ndf:
            mid_last = jnp.zeros_like(mid_last)
        out = self.F_R(jnp.concatenate([mid, mid_last, s_last], axis=-1))
        return (self.F_h_2(self.F_h_1(self.F_h_0(out))), mid), out

    def __call__(self, carry: Carry, inputs: tuple[jax.Array, jax.Array | None],
                 return_prior: bool = False, train_prior: bool = False):
        mid, prior = self.extract(*inputs, train_prior)
        carry, out = self.recur(carry, mid)
        return carry, ((out, prior) if return_prior else out)


class ChannelAttention(nn.Module):
    """The original's `CALayer` (reduction 16): x times a per-channel sigmoid gate, x an array
    or parts (`parts.parts_of`), the result as parts (a tuple)."""
    reduction: int = 16
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x) -> tuple[jax.Array, ...]:
        """x `[N, H, W, C]` or parts (`parts.parts_of`) -> the parts, each times its gates."""
        parts = parts_of(x)
        bounds = channel_bounds(parts)
        channels = int(bounds[-1])
        y = GlobalAvgPool()(parts)
        y = nn.relu(conv(channels // self.reduction, 1, name='conv_du_0', dtype=self.dtype)(y))
        gates = nn.sigmoid(conv(channels, 1, name='conv_du_2', dtype=self.dtype)(y))
        return tuple(part * gates[..., start:end] for part, start, end in zip(parts, bounds[:-1], bounds[1:]))


class Fusion(nn.Module):
    """The original's `CAT`: concatenated f(t-P..t+F) `[N, h, w, (P+F+1) 5C]`, or the P+F+1
    maps as parts (`parts.parts_of`) -> optional channel attention -> 1x1 -> `[N, h, w, 5C]`."""
    n_features: int
    attention: bool = True
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x) -> jax.Array:
        if self.attention:
            x = ChannelAttention(dtype=self.dtype, name='ca')(x)
        return conv(5 * self.n_features, 1, name='fusion', dtype=self.dtype)(x)


class Reconstructor(nn.Module):
    """`[N, h, w, 5C]` -> RDNet (n_b RDBs, always GELU as in the original) -> two
    transposed convs (x2 each) -> 5x5 -> `[N, 4h, 4w, 3]`."""
    n_features: int
    n_blocks: int
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, dtype = self.n_features, self.dtype
        x = RDNet(2 * c, self.n_blocks, 3, 'gelu', dtype, name='D_Net')(x)
        x = conv_transpose(2 * c, 3, 2, 1, 1, name='model_0', dtype=dtype)(x)
        x = conv_transpose(c, 3, 2, 1, 1, name='model_1', dtype=dtype)(x)
        return conv(3, 5, name='model_2', dtype=dtype)(x)


def _cell_step(cell: RDBCell, carry: Carry, inputs):
    return cell(carry, inputs)


def _cell_step_training_prior(cell: RDBCell, carry: Carry, inputs):
    return cell(carry, inputs, train_prior=True)


def _recur_step(cell: RDBCell, carry: Carry, mid: jax.Array):
    return cell.recur(carry, mid)


class MMPRNN(nn.Module):
    """The whole network. `__call__` runs a sequence (the cell under `nn.scan`, so any T
    compiles once per shape); `init_carry`, `encode` and `decode` are the step API for
    streaming, with the same parameters and the same outputs; `extract` + `recur` split
    `encode` into the part that needs the frame alone (batched over any number of frames)
    and the recurrence (frame by frame)."""
    n_features: int = 16
    n_blocks_a: int = 7
    n_blocks_b: int = 8
    past_frames: int = 2
    future_frames: int = 2
    activation: str = 'gelu'
    do_skip: bool = True
    fusion_attention: bool = True
    use_mmam: bool = True
    transmit_ndf: bool = True
    prior_source: str = 'mmpnet'
    prior_batch_norm: str = 'running'  # a key of PRIOR_BATCH_NORMS
    centralize: bool = True
    normalize: bool = True
    scan_unroll: bool = True  # True: the scan unrolled over all frames, False: a loop (see encode_sequence)
    dtype: str = 'float32'  # compute dtype, a key of COMPUTE_DTYPES
    remat: str = 'none'  # the cell's rematerialisation in encode_sequence, a key of REMAT_POLICIES

    def setup(self):
        activation(self.activation)  # fail early on an unknown name
        if self.prior_source not in PRIOR_SOURCES:
            raise UserError(f'unknown prior_source {self.prior_source!r}; accepted: {PRIOR_SOURCES}')
        if self.prior_batch_norm not in PRIOR_BATCH_NORMS:
            raise UserError(f'unknown prior_batch_norm {self.prior_batch_norm!r}; accepted: {PRIOR_BATCH_NORMS}')
        if self.remat not in REMAT_POLICIES:
            raise UserError(f'unknown remat {self.remat!r}; accepted: {tuple(REMAT_POLICIES)}')
        if self.remat != 'none' and self.scan_unroll:
            raise UserError(f'remat {self.remat!r} needs scan_unroll=False: in the unrolled recurrence XLA '
                            f'merges the recomputation back into the forward pass and saves nothing')
        dtype = self.compute_dtype
        self.cell = RDBCell(self.n_features, self.n_blocks_a, self.activation, self.use_mmam,
                            self.prior_source, self.transmit_ndf, dtype)
        self.fusion = Fusion(self.n_features, self.fusion_attention, dtype)
        self.recons = Reconstructor(self.n_features, self.n_blocks_b, dtype)
        if self.do_skip:
            self.skip = conv(3, 9, dtype=dtype)

    @property
    def window(self) -> int:
        """Frames whose features one output needs: past + current + future."""
        return self.past_frames + 1 + self.future_frames

    @property
    def compute_dtype(self) -> jnp.dtype:
        try:
            return COMPUTE_DTYPES[self.dtype]
        except KeyError:
            raise UserError(f'unknown dtype {self.dtype!r}; accepted: {tuple(COMPUTE_DTYPES)}') from None

    @property
    def needs_prior(self) -> bool:
        return self.use_mmam and self.prior_source == 'given'

    @property
    def trains_prior_statistics(self) -> bool:
        """Whether training (`train=True`) runs MMP-Net on batch statistics and updates its
        running ones (`prior_batch_norm` 'batch', with MMP-Net in the model)."""
        return self.use_mmam and not self.needs_prior and self.prior_batch_norm == 'batch'

    @property
    def scaling(self) -> InputScaling:
        """How frames are scaled for the network and MMP-Net inside it."""
        return InputScaling(self.centralize, self.normalize)

    @property
    def min_frame_side(self) -> int:
        """The fewest pixels a side of a frame may have (after padding to a multiple of DOWNSAMPLE):
        MIN_SIZE where MMP-Net runs inside the model (its four 2x2 pools), else none (0)."""
        return MIN_SIZE if self.use_mmam and not self.needs_prior else 0

    def _check_frame(self, frame_shape, prior) -> None:
        height, width = frame_shape[-3:-1]
        if height % DOWNSAMPLE or width % DOWNSAMPLE or frame_shape[-1] != 3:
            raise ValueError(f'frames must be [..., H, W, 3] with H and W multiples of '
                             f'{DOWNSAMPLE}; got shape {tuple(frame_shape)}')
        if self.needs_prior and prior is None:
            raise ValueError("prior_source='given' needs a prior [..., H, W, 1]")
        if min(height, width) < self.min_frame_side:
            raise UserError(f'frames of {width}x{height} are too small for MMP-Net '
                            f'(at least {MIN_SIZE}x{MIN_SIZE})')

    def init_carry(self, batch: int, height: int, width: int, dtype=None) -> Carry:
        """Zero hidden state h `[B, H/4, W/4, C]` and non-deblurred features l `[.., 2C]`
        in `dtype` (None: the compute dtype)."""
        shape = (batch, height // DOWNSAMPLE, width // DOWNSAMPLE)
        dtype = self.compute_dtype if dtype is None else dtype
        return (jnp.zeros(shape + (self.n_features,), dtype),
                jnp.zeros(shape + (2 * self.n_features,), dtype))

    def encode(self, carry: Carry, frame: jax.Array, prior: jax.Array | None = None):
        """One frame `[B, H, W, 3]` in [0, 1] (and prior `[B, H, W, 1]` when given) ->
        (carry', f `[B, H/4, W/4, 5C]`, prior `[B, H, W, 1]` or None without MMAM); carry and f
        in the compute dtype, the prior float32."""
        self._check_frame(frame.shape, prior)
        carry, (feats, prior) = self.cell(
            carry, (self.scaling.to_model(frame), prior if self.needs_prior else None),
            return_prior=True)
        return carry, feats, None if prior is None else prior.astype(jnp.float32)

    def extract(self, frames: jax.Array, priors: jax.Array | None = None):
        """Frames `[N, H, W, 3]` in [0, 1], of one or several videos in any order (priors
        `[N, H, W, 1]` when given) -> (l `[N, H/4, W/4, 2C]`, prior `[N, H, W, 1]` or None
        without MMAM, float32): the part of `encode` that depends on the frame alone."""
        self._check_frame(frames.shape, priors)
        mids, priors = self.cell.extract(self.scaling.to_model(frames), priors if self.needs_prior else None)
        return mids, None if priors is None else priors.astype(jnp.float32)

    def recur(self, carry: Carry, mids: jax.Array):
        """The rest of `encode`, over K frames in order: carry `[B, ...]` (as `init_carry`)
        and l `[B, K, H/4, W/4, 2C]` from `extract` -> (carry after the K-th frame,
        f `[B, K, H/4, W/4, 5C]`)."""
        scan = nn.scan(_recur_step, variable_broadcast=['params', 'batch_stats'],
                       split_rngs={'params': False}, in_axes=1, out_axes=1, unroll=self.scan_unroll)
        return scan(self.cell, carry, mids)

    def decode(self, features, frame: jax.Array) -> jax.Array:
        """f(t-P..t+F), concatenated `[N, H/4, W/4, window * 5C]` or a sequence of the `window`
        maps `[N, H/4, W/4, 5C]` (parts, `parts.parts_of`), and frame t
        `[N, H, W, 3]` in [0, 1] -> deblurred frame t `[N, H, W, 3]` in [0, 1] units, float32."""
        out = self.recons(self.fusion(features))
        if self.do_skip:
            out = out + self.skip(self.scaling.to_model(frame))
        return self.scaling.from_model(out.astype(jnp.float32))

    def encode_sequence(self, frames: jax.Array, priors: jax.Array | None = None,
                        train: bool = False) -> jax.Array:
        """Frames `[B, T, H, W, 3]` in [0, 1] -> features f `[B, T, H/4, W/4, 5C]`, the cell
        scanned over T from zero states. Unrolled (`scan_unroll=True`) the program holds one
        cell per frame, whose steps run faster and whose compile time grows with T
        (benchmarks/train_step_speed.py measures both); False keeps one cell for any T. Features
        in the compute dtype. `train`: see `__call__`."""
        self._check_frame(frames.shape, priors)
        batch, _, height, width, _ = frames.shape
        train_prior = train and self.trains_prior_statistics
        step = _cell_step_training_prior if train_prior else _cell_step
        if self.remat != 'none':
            step = nn.remat(step, prevent_cse=False, policy=REMAT_POLICIES[self.remat])
        # MMP-Net's running statistics, where they change, pass from frame to frame as the original's.
        statistics = {'variable_carry': 'batch_stats'} if train_prior else {}
        scan = nn.scan(step, variable_broadcast=['params'] if train_prior else ['params', 'batch_stats'],
                       split_rngs={'params': False}, in_axes=1, out_axes=1,
                       unroll=self.scan_unroll, **statistics)
        _, feats = scan(self.cell, self.init_carry(batch, height, width),
                        (self.scaling.to_model(frames), priors if self.needs_prior else None))
        return feats

    def __call__(self, frames: jax.Array, priors: jax.Array | None = None, train: bool = False) -> jax.Array:
        """Frames `[B, T, H, W, 3]` in [0, 1] (priors `[B, T, H, W, 1]` when given) ->
        outputs `[B, T - P - F, H, W, 3]` for frames P .. T-F-1, as the original's forward.
        `train`: the original's training mode, which changes only MMP-Net's BatchNorm with
        `prior_batch_norm` 'batch' (see the module's doc)."""
        batch, length = frames.shape[:2]
        if length < self.window:
            raise UserError(f'a sequence needs at least {self.window} frames; got {length}')
        feats = self.encode_sequence(frames, priors, train)
        n_out = length - self.window + 1
        windows = [feats[:, k:k + n_out].reshape((batch * n_out,) + feats.shape[2:]) for k in range(self.window)]
        centre = frames[:, self.past_frames:self.past_frames + n_out]
        out = self.decode(windows, centre.reshape((batch * n_out,) + centre.shape[2:]))
        return out.reshape((batch, n_out) + out.shape[1:])
