"""Residual dense blocks of the original MMP-RNN (`model/MMPRNN.py`, `model/UNet.py`).

Module and parameter names follow the PyTorch attribute names, with a Sequential or
ModuleList index `name.i` written `name_i`, so checkpoint conversion is a name map.
Feature maps are `[N, H, W, C]` (a dense layer's output: parts, `parts.parts_of`); `dtype` is
the compute dtype of every conv (None: the inputs'), parameters stay float32.
"""
import flax.linen as nn
import jax
from flax.typing import Dtype

from mmp_jax.models.layers import activation, conv
from mmp_jax.models.parts import parts_of


class DenseLayer(nn.Module):
    """3x3 conv + activation, its output joined to the input: `C -> C + growth` channels, as
    parts (`parts.parts_of`): the input's parts and the output, the original's
    `cat((x, out), 1)` handed on unmade to the convs that read it."""
    growth: int
    act: str = 'gelu'
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x) -> tuple[jax.Array, ...]:
        out = activation(self.act)(conv(self.growth, 3, name='conv', dtype=self.dtype)(x))
        return (*parts_of(x), out)


class RDB(nn.Module):
    """Residual dense block: `num_layer` dense layers, 1x1 back to `C`, plus the input."""
    growth: int
    num_layer: int = 3
    act: str = 'gelu'
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out = x
        for i in range(self.num_layer):
            out = DenseLayer(self.growth, self.act, self.dtype, name=f'dense_layers_{i}')(out)
        return conv(x.shape[-1], 1, name='conv1x1', dtype=self.dtype)(out) + x


class RDBDownsample(nn.Module):
    """The original's `RDB_DS`: an RDB, then a 5x5 stride-2 conv to `out_channels`.

    `[N, H, W, C] -> [N, ceil(H / 2), ceil(W / 2), out_channels]`.
    """
    growth: int
    out_channels: int
    num_layer: int = 3
    act: str = 'gelu'
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = RDB(self.growth, self.num_layer, self.act, self.dtype, name='rdb')(x)
        return conv(self.out_channels, 5, stride=2, name='down_sampling', dtype=self.dtype)(x)


class RDNet(nn.Module):
    """MMP-RNN's `RDNet`: `num_blocks` chained RDBs, all their outputs joined (as parts),
    1x1 then 3x3 back to `C` (no activation after either, unlike ESTRNN's RDNet)."""
    growth: int
    num_blocks: int
    num_layer: int = 3
    act: str = 'gelu'
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        outs, h = [], x
        for i in range(self.num_blocks):
            h = RDB(self.growth, self.num_layer, self.act, self.dtype, name=f'RDBs_{i}')(h)
            outs.append(h)
        out = conv(channels, 1, name='conv1x1', dtype=self.dtype)(outs)
        return conv(channels, 3, name='conv3x3', dtype=self.dtype)(out)
