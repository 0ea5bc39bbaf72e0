"""PyTorch-equivalent building blocks, channels-last.

Every layer here reproduces one PyTorch layer of the original implementation exactly
(padding, output sizes, activation variants), so converted weights give the original's
outputs. Feature maps are `[N, H, W, C]`; the convs of `conv` also take a list of such maps
(parts, `parts.parts_of`) standing for their channel concatenation. How each platform computes
them is `formulations`' setting: this module is the only one of the architecture that reads it.
"""
import functools
import operator
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype

from mmp_jax.models import formulations
from mmp_jax.models.channel_padding import channel_padded_conv
from mmp_jax.models.parts import channel_bounds, concatenated, parts_of
from mmp_jax.models.winograd import winograd_conv3x3

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
         name: str | None = None, dtype: Dtype | None = None) -> 'Conv':
    """`nn.Conv2d(k, stride, padding=k // 2, bias=True)`: symmetric PyTorch padding
    (a `(kh, kw)` kernel gets `(kh // 2, kw // 2)`), as `Conv`; 3x3 stride 1 as `WinogradConv`,
    1x1 stride 1 as `PointwiseConv`. Computes in `dtype` (None: the inputs' and parameters'
    promoted dtype); parameters are float32 either way."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cls = {(3, 3, 1): WinogradConv, (1, 1, 1): PointwiseConv}.get((kh, kw, stride), Conv)
    return cls(features, (kh, kw), strides=(stride, stride),
               padding=((kh // 2, kh // 2), (kw // 2, kw // 2)), kernel_init=torch_like_init,
               dtype=dtype, name=name)


def _conv_valid(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
    """Unpadded stride-1 conv, x `[N, H, W, C]`, kernel `[kh, kw, C, out]`."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'VALID', precision=precision,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class Conv(nn.Conv):
    """`nn.Conv2d(k, stride, padding=k // 2)` with `nn.Conv`'s parameters (kernel
    `[kh, kw, C, features]`, bias `[features]`): x `[N, H, W, C]` -> `[N, H', W', features]`.
    x may be parts (`parts.parts_of`): the conv of their channel concatenation.

    Each platform computes it in the formulation `formulations.current()` gives it
    (`formulations.platform_branch`): XLA's convolution of the concatenation by default, with
    channels zero-padded on GPUs with `gpu_channel_multiple` > 1. Subclasses add the CPU's.
    """
    KERNEL_SIZE: tuple[int, int] | None = None  # any kernel and stride; a subclass's: this kernel, stride 1

    def _branches(self, parts: tuple[jax.Array, ...], channels: int) -> dict[str, Callable]:
        """`formulations.platform_branch`'s branches, each `(parts, kernel) -> conv` without
        bias, for parts of `channels` channels together."""
        strides, padding = tuple(self.strides), tuple(map(tuple, self.padding))
        multiple = formulations.current().gpu_channel_multiple
        branches = {'default': lambda parts, kernel: jax.lax.conv_general_dilated(
            concatenated(parts), kernel, strides, padding, precision=self.precision,
            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))}
        if multiple > 1:
            branches['gpu'] = functools.partial(channel_padded_conv, multiple=multiple, strides=strides,
                                                padding=padding, precision=self.precision)
        return branches

    @nn.compact
    def __call__(self, x) -> jax.Array:
        parts, kernel, bias = self._parts_and_parameters(x)
        return formulations.platform_branch(parts, kernel, **self._branches(parts, kernel.shape[2])) + bias

    def _parts_and_parameters(self, x) -> tuple[tuple[jax.Array, ...], jax.Array, jax.Array]:
        """x's parts and the conv's kernel `[kh, kw, C, features]` (C: the parts' channels
        together) and bias `[features]`, declared as `nn.Conv` declares them, all promoted to the
        compute dtype. Parts must be `[N, H, W, C_i]` with one N, H, W, and the fields those
        `conv` gives (ValueError otherwise: fields this class would ignore)."""
        padding = tuple((k // 2, k // 2) for k in self.kernel_size)
        strides = tuple(np.broadcast_to(self.strides or 1, 2))
        other_kind = self.KERNEL_SIZE is not None and (self.kernel_size != self.KERNEL_SIZE or strides != (1, 1))
        if (len(self.kernel_size) != 2 or tuple(map(tuple, self.padding)) != padding or not self.use_bias
                or self.feature_group_count != 1 or self.kernel_dilation not in (None, 1, (1, 1)) or other_kind):
            raise ValueError(f'{type(self).__name__} is a conv with bias and "same" padding of its kind '
                             f'(build it with layers.conv); got {self}')
        parts = parts_of(x)
        if any(part.ndim != 4 or part.shape[:3] != parts[0].shape[:3] for part in parts):
            raise ValueError(f'{type(self).__name__} takes [N, H, W, C] maps of one N, H, W; '
                             f'got shapes {[tuple(part.shape) for part in parts]}')
        channels = int(channel_bounds(parts)[-1])
        kernel = self.param('kernel', self.kernel_init, (*self.kernel_size, channels, self.features),
                            self.param_dtype)
        bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
        *parts, kernel, bias = self.promote_dtype(*parts, kernel, bias, dtype=self.dtype)
        return tuple(parts), kernel, bias


def _pixels(parts: tuple[jax.Array, ...]) -> int:
    return parts[0].shape[-3] * parts[0].shape[-2]


class WinogradConv(Conv):
    """`Conv` of a 3x3 kernel, stride 1. On the CPU, with at least
    `formulations.current().cpu_winograd_min_channels` input channels and maps of at least
    `cpu_min_pixels` pixels, it is `winograd_conv3x3`, faster there than XLA's convolution
    (`benchmarks.layer_speed` times both, layer by layer), and the forward pass never
    concatenates parts (the backward pass, the direct conv's gradients, does)."""
    KERNEL_SIZE = (3, 3)

    @staticmethod
    def uses_winograd(channels: int, pixels: int | None = None) -> bool:
        """Whether an input of `channels` channels and H x W = `pixels` (None: just enough)
        takes `winograd_conv3x3` on the CPU."""
        setting = formulations.current()
        return channels >= setting.cpu_winograd_min_channels and (pixels is None or pixels >= setting.cpu_min_pixels)

    def _branches(self, parts, channels):
        branches = super()._branches(parts, channels)
        if self.uses_winograd(channels, _pixels(parts)):
            branches['cpu'] = functools.partial(winograd_conv3x3, precision=self.precision)
        return branches


class PointwiseConv(Conv):
    """`Conv` of a 1x1 kernel, stride 1. On the CPU, parts on maps of at least
    `formulations.current().cpu_min_pixels` pixels are not concatenated (in the forward pass):
    the output is the sum of each part's conv with its rows of the kernel (a dense block's last
    layer reads all its layers' outputs; their concatenation is a copy of them all)."""
    KERNEL_SIZE = (1, 1)

    def _branches(self, parts, channels):
        branches = super()._branches(parts, channels)
        if len(parts) > 1 and _pixels(parts) >= formulations.current().cpu_min_pixels:
            bounds = channel_bounds(parts)
            branches['cpu'] = lambda parts, kernel: functools.reduce(operator.add, (
                _conv_valid(part, kernel[:, :, start:end], self.precision)
                for part, start, end in zip(parts, bounds[:-1], bounds[1:])))
        return branches


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
    (`parts.parts_of`), the means of their concatenation."""

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
