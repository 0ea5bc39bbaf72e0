"""Winograd's F(2x2, 3x3) minimal filtering: a 3x3 stride-1 convolution with 4 multiplies per
output pixel and channel pair where the direct one does 9 (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", 2016). `layers.WinogradConv` runs it on the CPU backend (one of
the formulations `formulations.Formulations` chooses).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmp_jax.models.parts import channel_bounds, concatenated, parts_of

# Y = A^T [(G g G^T) * (B^T d B)] A for a 4x4 input tile d and 3x3 kernel g.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)


def _input_rows(d0, d1, d2, d3) -> list[jax.Array]:
    """B^T applied along one axis to the four input rows of a tile."""
    return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


def _output_rows(m0, m1, m2, m3) -> list[jax.Array]:
    """A^T applied along one axis: four transformed rows to the tile's two output rows."""
    return [m0 + m1 + m2, m1 - m2 - m3]


def _transformed_tiles(x: jax.Array) -> list[jax.Array]:
    """x `[N, H, W, C]` -> its 4x4 input tiles (stride 2, zero padding 1) transformed by B^T d B:
    16 maps `[N * ceil(H/2) * ceil(W/2), C]`, one per transformed tile position."""
    n, h, w, c = x.shape
    th, tw = -(-h // 2), -(-w // 2)
    tiles = jnp.pad(x, ((0, 0), (1, 2 * th - h + 1), (1, 2 * tw - w + 1), (0, 0))).reshape(n, th + 1, 2, tw + 1, 2, c)
    rows = _input_rows(tiles[:, :-1, 0], tiles[:, :-1, 1], tiles[:, 1:, 0], tiles[:, 1:, 1])
    return [v.reshape(n * th * tw, c) for r in rows
            for v in _input_rows(r[:, :, :-1, 0], r[:, :, :-1, 1], r[:, :, 1:, 0], r[:, :, 1:, 1])]


def _output_tiles(products: list[jax.Array], n: int, h: int, w: int) -> jax.Array:
    """The 16 products `[N * ceil(H/2) * ceil(W/2), K]` transformed back (A^T m A) to the
    output's 2x2 tiles, interleaved: `[N, H, W, K]`."""
    th, tw = -(-h // 2), -(-w // 2)
    products = [p.reshape(n, th, tw, -1) for p in products]
    by_column = [_output_rows(*products[b::4]) for b in range(4)]  # [b][output row]
    out = [_output_rows(*(column[r] for column in by_column)) for r in (0, 1)]
    y = jnp.stack([jnp.stack(row, axis=3) for row in out], axis=2)  # [N, H/2, 2, W/2, 2, K]
    return y.reshape(n, 2 * th, 2 * tw, -1)[:, :h, :w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def winograd_conv3x3(x, kernel: jax.Array, precision=None) -> jax.Array:
    """3x3 stride-1 conv with zero padding 1 (`nn.Conv2d(3, padding=1)` without bias) by
    Winograd's F(2x2, 3x3): x `[N, H, W, C]` (or parts, `parts_of`), kernel `[3, 3, C, K]`
    -> `[N, H, W, K]`.

    The output in 2x2 tiles, each from a 4x4 input tile: the tiles transformed (additions
    only) into 16 maps `[N H/2 W/2, C]`, each multiplied by its transformed kernel `[C, K]`
    (16 matmuls: 4 multiplies per output pixel and channel pair where the direct conv does 9),
    then transformed back and interleaved. Odd H or W: one more zero row or column, cropped.
    Parts are not concatenated (in the forward pass): each is transformed and multiplied by its
    rows of the kernel, the products summed. A dense block's layers see the same parts again, and XLA
    computes each part's transform once for all of them. x and kernel share one dtype,
    which the matmuls and the result have (the kernel is transformed in float32 and rounded
    to it). Differs from the direct conv by rounding: a few 1e-6 at unit-scale float32 values.

    Its gradients are the direct conv's (`direct_conv3x3`'s VJP, keeping x and kernel for it):
    the transformed tiles, 4x the input, are not kept for the backward pass, which would
    otherwise hold more than the direct conv's (and more under rematerialisation than without).
    """
    parts = parts_of(x)
    n, h, w, _ = parts[0].shape
    weights = jnp.einsum('ai,ijck,bj->abck', _G, kernel, _G,
                         precision=jax.lax.Precision.HIGHEST).astype(kernel.dtype).reshape(16, kernel.shape[2], -1)
    bounds, products = channel_bounds(parts), None
    for part, start, end in zip(parts, bounds[:-1], bounds[1:]):
        part_products = [jnp.matmul(tiles, weights[i, start:end], precision=precision)
                         for i, tiles in enumerate(_transformed_tiles(part))]
        products = part_products if products is None else [a + b for a, b in zip(products, part_products)]
    return _output_tiles(products, n, h, w)


def direct_conv3x3(x, kernel: jax.Array, precision=None) -> jax.Array:
    """XLA's convolution computing what `winograd_conv3x3` does (same arguments and shapes),
    on the concatenated parts."""
    return jax.lax.conv_general_dilated(concatenated(x), kernel, (1, 1), ((1, 1), (1, 1)), precision=precision,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _forward(x, kernel: jax.Array, precision):
    return winograd_conv3x3(x, kernel, precision), (x, kernel)


def _backward(precision, residuals, grad):
    return jax.vjp(functools.partial(direct_conv3x3, precision=precision), *residuals)[1](grad)


winograd_conv3x3.defvjp(_forward, _backward)
