"""A channel concatenation left unmade: a feature map given as its "parts".

The original joins feature maps with `torch.cat(..., dim=1)` before a conv reads them: a dense
layer's input and output, an RDNet's block outputs, MMP-Net's skip and upsampled maps, the fusion's
window of frames. Here such a join may be handed on as a sequence of `[N, H, W, C_i]` maps of one
N, H, W, in the original's `cat` order, standing for their concatenation along channels
`[N, H, W, sum C_i]`. The layers that read parts (`layers.conv`'s convs, `GlobalAvgPool`) compute
the function of the concatenation, whether or not they build it.
"""
import jax
import jax.numpy as jnp
import numpy as np


def parts_of(x) -> tuple[jax.Array, ...]:
    """x `[N, H, W, C]`, or a sequence of such maps standing for their channel concatenation,
    as a tuple of maps."""
    return (x,) if hasattr(x, 'shape') else tuple(x)


def channel_bounds(parts) -> np.ndarray:
    """Where each part's channels start and end in the concatenation: `[0, C_0, C_0 + C_1, ...,
    C]`, part i at `bounds[i]:bounds[i + 1]`."""
    return np.cumsum([0] + [part.shape[-1] for part in parts])


def concatenated(x) -> jax.Array:
    """The map `parts_of(x)` stands for: its parts concatenated along channels."""
    parts = parts_of(x)
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
