"""A convolution with its channel counts zero-padded to a multiple: the shapes GPU tensor cores
take (multiples of 8 for bfloat16 and float16). The same function as the unpadded conv: the
extra input channels are zeros met by zero kernel rows, the extra outputs are sliced off."""
import jax
import jax.numpy as jnp

from mmp_jax.models.parts import channel_bounds, concatenated, parts_of


def channel_padded_conv(x, kernel: jax.Array, multiple: int, strides: tuple[int, int],
                        padding: tuple[tuple[int, int], tuple[int, int]], precision=None) -> jax.Array:
    """XLA's convolution of x `[N, H, W, C]` (or parts, `parts.parts_of`) and kernel
    `[kh, kw, C, K]` (no bias) with C and K rounded up to multiples of `multiple`; the zero
    channels join the parts' concatenation (no copy more than it makes) -> `[N, H', W', K]`."""
    parts = parts_of(x)
    channels, features = int(channel_bounds(parts)[-1]), kernel.shape[-1]
    extra_in, extra_out = -channels % multiple, -features % multiple
    if extra_in:
        parts += (jnp.zeros(parts[0].shape[:3] + (extra_in,), parts[0].dtype),)
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra_in), (0, extra_out)))
    y = jax.lax.conv_general_dilated(concatenated(parts), kernel, strides, padding, precision=precision,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y[..., :features] if extra_out else y
