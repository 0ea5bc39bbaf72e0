"""MMP-Net: the compact UNet that regresses the motion magnitude prior from one frame.

The original's `UNet` (sollynoay/MMP-RNN `model/UNet.py`): a 9x9 conv, DoubleConv with
BatchNorm, four max-pool downs, four bilinear (align-corners) ups with the pad-to-size step,
an RDB to refine, a 1x1 conv and a sigmoid. BatchNorm statistics live in `batch_stats`.
`dtype` is the compute dtype of every layer (None: the inputs'); parameters and statistics
stay float32. In training mode (`train=True`) BatchNorm runs on batch statistics and updates
the running ones: flax's way by default, PyTorch's with `torch_batch_norm` (the running
variance from the unbiased batch variance, `layers.TrainingBatchNorm`), as the original's
`model.train()` runs the frozen MMP-Net inside MMP-RNN.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from mmp_jax.models.layers import TrainingBatchNorm, UpsampleBilinear, conv
from mmp_jax.models.rdb import RDB

MIN_SIZE = 16  # four 2x2 max-pools need at least 16 pixels per side


class DoubleConv(nn.Module):
    """(3x3 conv, BatchNorm, ReLU) twice; names match the original's `double_conv.{0,1,3,4}`.
    x `[N, H, W, C]` or parts (`parts.parts_of`, their channel concatenation)."""
    features: int
    dtype: Dtype | None = None
    torch_batch_norm: bool = False

    @nn.compact
    def __call__(self, x, train: bool) -> jax.Array:
        for conv_index in (0, 3):
            x = conv(self.features, 3, name=f'double_conv_{conv_index}', dtype=self.dtype)(x)
            name = f'double_conv_{conv_index + 1}'
            if train and self.torch_batch_norm:
                x = TrainingBatchNorm(dtype=self.dtype, name=name)(x)
            else:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 dtype=self.dtype, name=name)(x)
            x = nn.relu(x)
        return x


class Down(nn.Module):
    """2x2 max-pool (floor) then DoubleConv: `[N, H, W, C] -> [N, H // 2, W // 2, features]`."""
    features: int
    dtype: Dtype | None = None
    torch_batch_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
        return DoubleConv(self.features, self.dtype, self.torch_batch_norm, name='maxpool_conv_1')(x, train)


class Up(nn.Module):
    """Upsample x2 (align corners), zero-pad to the skip's size as the original does
    (extra row/column at the bottom/right), DoubleConv of `(skip, up)` as parts (the channel
    order of the original's `cat([x2, x1])`)."""
    features: int
    dtype: Dtype | None = None
    torch_batch_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array, train: bool) -> jax.Array:
        x = UpsampleBilinear(2, name='up')(x)
        diff_y = skip.shape[1] - x.shape[1]
        diff_x = skip.shape[2] - x.shape[2]
        x = jnp.pad(x, ((0, 0), (diff_y // 2, diff_y - diff_y // 2),
                        (diff_x // 2, diff_x - diff_x // 2), (0, 0)))
        double_conv = DoubleConv(self.features, self.dtype, self.torch_batch_norm, name='conv')
        return double_conv((skip, x), train)


class OutConv(nn.Module):
    """1x1 conv to the prior's single channel (the original's `outc.conv`)."""
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return conv(1, 1, name='conv', dtype=self.dtype)(x)


class MMPNet(nn.Module):
    """Frame `[N, H, W, 3]` (the caller's normalisation) -> prior `[N, H, W, 1]` in [0, 1]
    (motion magnitude divided by K = 15). H and W of at least 16 (in training mode with
    `torch_batch_norm`, N H W of at least 512: PyTorch's two values per channel at 1/16)."""
    dtype: Dtype | None = None
    torch_batch_norm: bool = False  # training mode: PyTorch's BatchNorm (see the module's doc)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = {'dtype': self.dtype, 'torch_batch_norm': self.torch_batch_norm}
        x = conv(16, 9, name='conv9x9', dtype=self.dtype)(x)
        x1 = DoubleConv(16, **norm, name='inc')(x, train)
        x2 = Down(32, **norm, name='down1')(x1, train)
        x3 = Down(64, **norm, name='down2')(x2, train)
        x4 = Down(128, **norm, name='down3')(x3, train)
        x5 = Down(128, **norm, name='down4')(x4, train)
        x = Up(64, **norm, name='up1')(x5, x4, train)
        x = Up(32, **norm, name='up2')(x, x3, train)
        x = Up(16, **norm, name='up3')(x, x2, train)
        x = Up(16, **norm, name='up4')(x, x1, train)
        x = RDB(8, 3, 'gelu', self.dtype, name='refine')(x)
        return nn.sigmoid(OutConv(self.dtype, name='outc')(x))
