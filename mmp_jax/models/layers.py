"""PyTorch-equivalent building blocks, channels-last.

Every layer here reproduces one PyTorch layer of the original implementation exactly
(padding, output sizes, activation variants), so converted weights give the original's
outputs. Feature maps are `[N, H, W, C]`; the convs of `conv` also take a list of such maps
(parts, `winograd.parts_of`) standing for their channel concatenation.
"""
import functools
import operator
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype

from mmp_jax.models.winograd import channel_bounds, concatenated, direct_conv3x3, parts_of, winograd_conv3x3

# PyTorch's default Conv2d weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_like_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (torch.nn.GELU()), through `lax.erf`: XLA's
    CPU backend runs it faster than the erfc form `nn.gelu(approximate=False)` lowers to."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * 0.5 ** 0.5))


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'gelu': gelu,
    'relu': nn.relu,
    'leakyrelu': functools.partial(nn.leaky_relu, negative_slope=0.1),
    'elu': nn.elu,
    'tanh': jnp.tanh,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The original's `actFunc(name)` as a function; unknown names raise ValueError."""
    try:
        return _ACTIVATIONS[name.lower()]
    except KeyError:
        raise ValueError(
            f'unknown activation {name!r}; accepted: {", ".join(sorted(_ACTIVATIONS))}') from None


def conv(features: int, kernel: int | tuple[int, int], stride: int = 1,
         name: str | None = None, dtype: Dtype | None = None) -> nn.Conv:
    """`nn.Conv2d(k, stride, padding=k // 2, bias=True)`: symmetric PyTorch padding
    (a `(kh, kw)` kernel gets `(kh // 2, kw // 2)`); 3x3 stride 1 as `WinogradConv`, 1x1
    stride 1 as `PointwiseConv` (both also take parts, `winograd.parts_of`). Computes
    in `dtype` (None: the inputs' and parameters' promoted dtype); parameters are float32
    either way."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cls = {(3, 3, 1): WinogradConv, (1, 1, 1): PointwiseConv}.get((kh, kw, stride), nn.Conv)
    return cls(features, (kh, kw), strides=(stride, stride),
               padding=((kh // 2, kh // 2), (kw // 2, kw // 2)), kernel_init=torch_like_init,
               dtype=dtype, name=name)


def _conv_valid(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
    """Unpadded stride-1 conv, x `[N, H, W, C]`, kernel `[kh, kw, C, out]`."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'VALID', precision=precision,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _parts_and_parameters(module: nn.Conv, x) -> tuple[list[jax.Array], jax.Array, jax.Array]:
    """x's parts (`winograd.parts_of`) and the conv's kernel `[kh, kw, C, features]` (C: the
    parts' channels together) and bias `[features]`, declared as `nn.Conv` declares them, all
    promoted to the compute dtype. Parts must be `[N, H, W, C_i]` with one N, H, W, and the
    module's fields those `layers.conv` gives it (ValueError otherwise: fields it would ignore)."""
    padding = tuple((k // 2, k // 2) for k in module.kernel_size)
    if (module.kernel_size != module.KERNEL_SIZE or tuple(np.broadcast_to(module.strides or 1, 2)) != (1, 1)
            or tuple(map(tuple, module.padding)) != padding or not module.use_bias
            or module.feature_group_count != 1 or module.kernel_dilation not in (None, 1, (1, 1))):
        raise ValueError(f'{type(module).__name__} is a {module.KERNEL_SIZE} stride-1 conv with bias and '
                         f'"same" padding (build it with layers.conv); got {module}')
    parts = parts_of(x)
    if any(part.ndim != 4 or part.shape[:3] != parts[0].shape[:3] for part in parts):
        raise ValueError(f'{type(module).__name__} takes [N, H, W, C] maps of one N, H, W; '
                         f'got shapes {[tuple(part.shape) for part in parts]}')
    channels = int(channel_bounds(parts)[-1])
    kernel = module.param('kernel', module.kernel_init, (*module.kernel_size, channels, module.features),
                          module.param_dtype)
    bias = module.param('bias', module.bias_init, (module.features,), module.param_dtype)
    *parts, kernel, bias = module.promote_dtype(*parts, kernel, bias, dtype=module.dtype)
    return parts, kernel, bias


# Feature maps smaller than this (H x W) keep XLA's convolution of the concatenated parts on the
# CPU too: Winograd's and the parts' many small ops there save little time and cost compile time
# (the test suite, tiny shapes: 28 minutes in CI with Winograd on every map, 20 with this bound).
# A 640x480 frame's smallest map is 30x40.
WINOGRAD_MIN_PIXELS = 1024


class WinogradConv(nn.Conv):
    """`nn.Conv2d(3, stride=1, padding=1)` with `nn.Conv`'s parameters (kernel
    `[3, 3, C, features]`, bias `[features]`): x `[N, H, W, C]` -> `[N, H, W, features]`. x may
    be parts (`winograd.parts_of`): the conv of their channel concatenation.

    Compiled for the CPU backend with at least `min_channels` input channels and maps of at
    least `WINOGRAD_MIN_PIXELS` pixels, the conv is
    `winograd_conv3x3`, faster there than XLA's convolution (below `min_channels` the
    transforms cost more than the multiplies saved; `benchmarks.layer_speed` times both, layer
    by layer), and the forward pass never concatenates parts (the backward pass, the direct
    conv's gradients, does). Compiled for any other backend (cuDNN on
    GPU, TPU), or with fewer channels, it is XLA's convolution of the concatenation. The
    backend is the one the computation is lowered for (`jax.lax.platform_dependent`), not the
    default one, and the compiled program holds only the branch chosen.
    """
    min_channels: int = 64
    KERNEL_SIZE = (3, 3)

    def uses_winograd(self, channels: int, pixels: int | None = None) -> bool:
        """Whether an input of `channels` channels and H x W = `pixels` (None: just enough)
        takes `winograd_conv3x3` on the CPU backend."""
        return channels >= self.min_channels and (pixels is None or pixels >= WINOGRAD_MIN_PIXELS)

    @nn.compact
    def __call__(self, x) -> jax.Array:
        parts, kernel, bias = _parts_and_parameters(self, x)
        channels = kernel.shape[2]
        direct = functools.partial(direct_conv3x3, precision=self.precision)
        if not self.uses_winograd(channels, parts[0].shape[-3] * parts[0].shape[-2]):
            return direct(parts, kernel) + bias
        winograd = functools.partial(winograd_conv3x3, precision=self.precision)
        return jax.lax.platform_dependent(parts, kernel, cpu=winograd, default=direct) + bias


class PointwiseConv(nn.Conv):
    """`nn.Conv2d(1)` with `nn.Conv`'s parameters (kernel `[1, 1, C, features]`, bias
    `[features]`): x `[N, H, W, C]` -> `[N, H, W, features]`. x may be parts
    (`winograd.parts_of`): the conv of their channel concatenation.

    Compiled for the CPU backend, parts on maps of at least `WINOGRAD_MIN_PIXELS` pixels are
    not concatenated (in the forward pass): the output is the sum of each part's conv with its rows of the kernel (a
    dense block's last layer reads all its layers' outputs; their concatenation is a copy of
    them all). Otherwise (other backends, small maps, one part) it is XLA's convolution of the
    concatenation, as `nn.Conv`.
    """

    KERNEL_SIZE = (1, 1)

    @nn.compact
    def __call__(self, x) -> jax.Array:
        parts, kernel, bias = _parts_and_parameters(self, x)
        whole = lambda parts, kernel: _conv_valid(concatenated(parts), kernel, self.precision)
        if len(parts) == 1 or parts[0].shape[-3] * parts[0].shape[-2] < WINOGRAD_MIN_PIXELS:
            return whole(parts, kernel) + bias
        bounds = channel_bounds(parts)
        by_part = lambda parts, kernel: functools.reduce(operator.add, (
            _conv_valid(part, kernel[:, :, start:end], self.precision)
            for part, start, end in zip(parts, bounds[:-1], bounds[1:])))
        return jax.lax.platform_dependent(parts, kernel, cpu=by_part, default=whole) + bias


class SubPixelConvTranspose(nn.ConvTranspose):
    """`nn.ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)` as four small convs,
    one per phase `(a, b)` of the output pixels `(2i + a, 2j + b)`, interleaved (sub-pixel
    convolution): `[N, H, W, C] -> [N, 2H, 2W, features]`, the same 9 taps per pixel pair
    as the transposed conv, which XLA's CPU backend runs slower as an input-dilated conv.
    Phase 0 takes kernel tap 1 at input offset 0; phase 1 taps 2 and 0 at offsets 0 and 1
    (the input zero-padded by one row and column at the end). Same parameters as
    `nn.ConvTranspose(transpose_kernel=True)`: kernel `[3, 3, features, C]`, bias `[features]`."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param('kernel', self.kernel_init, (3, 3, self.features, x.shape[-1]),
                            self.param_dtype)
        bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = self.promote_dtype(x, kernel, bias, dtype=self.dtype)
        n, h, w, _ = x.shape
        kernel = jnp.swapaxes(kernel, 2, 3)  # [3, 3, C, features]
        taps = (slice(1, 2), slice(2, None, -2))  # phase 0: tap 1; phase 1: taps 2, 0
        padded = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
        rows = [[_conv_valid(padded[:, :h + a, :w + b], kernel[taps[a], taps[b]], self.precision)
                 for b in (0, 1)] for a in (0, 1)]
        y = jnp.stack([jnp.stack(row, axis=3) for row in rows], axis=2)  # [N, H, 2, W, 2, F]
        return y.reshape(n, 2 * h, 2 * w, self.features) + bias


def conv_transpose(features: int, kernel: int, stride: int, padding: int, output_padding: int,
                   name: str | None = None, dtype: Dtype | None = None) -> nn.ConvTranspose:
    """`nn.ConvTranspose2d(k, stride, padding, output_padding)`, output size
    `(H - 1) * stride - 2 * padding + k + output_padding` as in PyTorch; (3, 2, 1, 1) as
    `SubPixelConvTranspose`.

    The kernel is `[k, k, out, in]`: the PyTorch weight `[in, out, k, k]` transposed by
    `(2, 3, 1, 0)`. `dtype` as in `conv`.
    """
    lo = kernel - 1 - padding
    cls = SubPixelConvTranspose if (kernel, stride, padding, output_padding) == (3, 2, 1, 1) else nn.ConvTranspose
    return cls(features, (kernel, kernel), strides=(stride, stride),
               padding=((lo, lo + output_padding),) * 2, transpose_kernel=True,
               kernel_init=torch_like_init, dtype=dtype, name=name)


def _align_corners_matrix(n_in: int, n_out: int) -> np.ndarray:
    """`[n_out, n_in]` linear interpolation weights with align_corners=True."""
    weights = np.zeros((n_out, n_in), np.float32)
    if n_in == 1 or n_out == 1:
        weights[:, 0] = 1.0
        return weights
    src = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.minimum(np.floor(src).astype(int), n_in - 2)
    frac = (src - lo).astype(np.float32)
    weights[np.arange(n_out), lo] = 1.0 - frac
    weights[np.arange(n_out), lo + 1] += frac
    return weights


class UpsampleBilinear(nn.Module):
    """`nn.Upsample(scale_factor, mode='bilinear', align_corners=True)` on `[N, H, W, C]`."""
    scale: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, h, w, _ = x.shape
        rows = jnp.asarray(_align_corners_matrix(h, h * self.scale), x.dtype)
        cols = jnp.asarray(_align_corners_matrix(w, w * self.scale), x.dtype)
        x = jnp.einsum('oh,nhwc->nowc', rows, x, precision=jax.lax.Precision.HIGHEST)
        return jnp.einsum('pw,nowc->nopc', cols, x, precision=jax.lax.Precision.HIGHEST)


class GlobalAvgPool(nn.Module):
    """`nn.AdaptiveAvgPool2d(1)`: `[N, H, W, C] -> [N, 1, 1, C]`; of parts
    (`winograd.parts_of`), the means of their concatenation."""

    @nn.compact
    def __call__(self, x) -> jax.Array:
        return concatenated([jnp.mean(part, axis=(1, 2), keepdims=True) for part in parts_of(x)])


class TrainingBatchNorm(nn.Module):
    """`nn.BatchNorm2d(momentum=0.1, eps=1e-5)` in PyTorch's training mode on `[N, H, W, C]`.

    Normalises with the batch's mean and biased variance over N, H, W (computed in float32),
    then scales and shifts. Where `batch_stats` is mutable, the running statistics move towards
    the batch's, `running = (1 - momentum) running + momentum batch`, the variance's as PyTorch
    keeps it: the unbiased estimate (biased times n / (n - 1), n = N H W), where flax's
    `nn.BatchNorm` keeps the biased one. The variables are `nn.BatchNorm`'s (`scale`, `bias`;
    `mean`, `var`), so the two read each other's. Output in `dtype` (None: the input's).
    """
    momentum: float = 0.1
    epsilon: float = 1e-5
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        count = x.size // features
        if count < 2:
            raise ValueError(f'batch statistics need more than one value per channel; got input {x.shape}')
        scale = self.param('scale', nn.initializers.ones, (features,), jnp.float32)
        bias = self.param('bias', nn.initializers.zeros, (features,), jnp.float32)
        running_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,), jnp.float32)
        running_var = self.variable('batch_stats', 'var', jnp.ones, (features,), jnp.float32)
        x32 = x.astype(jnp.float32)
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x32, axes)
        var = jnp.mean(jnp.square(x32 - mean), axes)
        if self.is_mutable_collection('batch_stats') and not self.is_initializing():
            keep = 1.0 - self.momentum
            running_mean.value = keep * running_mean.value + self.momentum * mean
            running_var.value = keep * running_var.value + self.momentum * var * (count / (count - 1))
        y = (x32 - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
        return y.astype(self.dtype or x.dtype)
