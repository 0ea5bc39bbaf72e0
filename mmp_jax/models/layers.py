"""PyTorch-equivalent building blocks, channels-last.

Every layer here reproduces one PyTorch layer of the original implementation exactly
(padding, output sizes, activation variants), so converted weights give the original's
outputs. Feature maps are `[N, H, W, C]`.
"""
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# PyTorch's default Conv2d weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_like_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'gelu': functools.partial(nn.gelu, approximate=False),  # torch.nn.GELU is the erf form
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
         name: str | None = None) -> nn.Conv:
    """`nn.Conv2d(k, stride, padding=k // 2, bias=True)`: symmetric PyTorch padding
    (a `(kh, kw)` kernel gets `(kh // 2, kw // 2)`)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Conv(features, (kh, kw), strides=(stride, stride),
                   padding=((kh // 2, kh // 2), (kw // 2, kw // 2)), kernel_init=torch_like_init,
                   name=name)


def conv_transpose(features: int, kernel: int, stride: int, padding: int, output_padding: int,
                   name: str | None = None) -> nn.ConvTranspose:
    """`nn.ConvTranspose2d(k, stride, padding, output_padding)`, output size
    `(H - 1) * stride - 2 * padding + k + output_padding` as in PyTorch.

    The kernel is `[k, k, out, in]`: the PyTorch weight `[in, out, k, k]` transposed by
    `(2, 3, 1, 0)`.
    """
    lo = kernel - 1 - padding
    return nn.ConvTranspose(features, (kernel, kernel), strides=(stride, stride),
                            padding=((lo, lo + output_padding),) * 2, transpose_kernel=True,
                            kernel_init=torch_like_init, name=name)


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
    """`nn.AdaptiveAvgPool2d(1)`: `[N, H, W, C] -> [N, 1, 1, C]`."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.mean(x, axis=(1, 2), keepdims=True)
