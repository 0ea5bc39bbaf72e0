"""RAFT optical flow (Teed and Deng, ECCV 2020; princeton-vl/RAFT `core/`) in Flax, inference.

The 'large' (`raft-things.pth`, used by the original MMP ground truth) and 'small'
configurations, with the official code's exact arithmetic: instance/batch norm encoders, the
all-pairs correlation pyramid (4 levels, average-pooled), bilinear look-ups with zero padding
(`grid_sample(align_corners=True)`), including the official window layout (the first window
axis offsets x, the second y), the (separable) ConvGRU update block, and convex (large) or
bilinear (small) upsampling by 8. The iterations run under `nn.scan` with shared weights.

Images are `[N, H, W, 3]` RGB in [0, 255], H and W multiples of 8 (`raft_flow` pads as the
official `InputPadder` does); flow is `[N, H, W, 2]` (dx, dy) in pixels from image1 to image2.
Module names follow the PyTorch attributes (`name.i` -> `name_i`) for checkpoint conversion.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmp_jax.errors import UserError
from mmp_jax.models.layers import UpsampleBilinear, conv

CONFIGS = {'large': {'hidden': 128, 'context': 128, 'radius': 4, 'fnet_dim': 256},
           'small': {'hidden': 96, 'context': 64, 'radius': 3, 'fnet_dim': 128}}
LEVELS = 4
MIN_SIZE = 8 * 2 ** LEVELS  # the official look-up divides by zero on a 1-pixel level


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """`nn.InstanceNorm2d` (no affine, no running statistics) on `[N, H, W, C]`."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


class Norm(nn.Module):
    """The parameter-free norms: 'instance' or 'none' ('batch' is `nn.BatchNorm`, see `_norm`)."""
    kind: str

    @nn.compact
    def __call__(self, x):
        if self.kind == 'instance':
            return instance_norm(x)
        if self.kind == 'none':
            return x
        raise ValueError(f'unknown norm {self.kind!r}')


def _norm(kind: str, name: str) -> nn.Module:
    """BatchNorm (running statistics) under the PyTorch name, where its parameters live."""
    return nn.BatchNorm(use_running_average=True, epsilon=1e-5, name=name) if kind == 'batch' \
        else Norm(kind, name=name)


class ResidualBlock(nn.Module):
    planes: int
    norm: str
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.relu(_norm(self.norm, 'norm1')(conv(self.planes, 3, self.stride, name='conv1')(x)))
        y = nn.relu(_norm(self.norm, 'norm2')(conv(self.planes, 3, name='conv2')(y)))
        if self.stride != 1:
            x = _norm(self.norm, 'norm3')(conv(self.planes, 1, self.stride, name='downsample_0')(x))
        return nn.relu(x + y)


class BottleneckBlock(nn.Module):
    planes: int
    norm: str
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.relu(_norm(self.norm, 'norm1')(conv(self.planes // 4, 1, name='conv1')(x)))
        y = nn.relu(_norm(self.norm, 'norm2')(conv(self.planes // 4, 3, self.stride, name='conv2')(y)))
        y = nn.relu(_norm(self.norm, 'norm3')(conv(self.planes, 1, name='conv3')(y)))
        if self.stride != 1:
            x = _norm(self.norm, 'norm4')(conv(self.planes, 1, self.stride, name='downsample_0')(x))
        return nn.relu(x + y)


class Encoder(nn.Module):
    """BasicEncoder (64, 96, 128; residual blocks) or SmallEncoder (32, 64, 96; bottlenecks):
    `[N, H, W, 3] -> [N, H/8, W/8, output_dim]`."""
    output_dim: int
    norm: str
    small: bool

    @nn.compact
    def __call__(self, x):
        widths = (32, 64, 96) if self.small else (64, 96, 128)
        block = BottleneckBlock if self.small else ResidualBlock
        x = nn.relu(_norm(self.norm, 'norm1')(conv(widths[0], 7, 2, name='conv1')(x)))
        for i, (width, stride) in enumerate(zip(widths, (1, 2, 2))):
            x = block(width, self.norm, stride, name=f'layer{i + 1}_0')(x)
            x = block(width, self.norm, 1, name=f'layer{i + 1}_1')(x)
        return conv(self.output_dim, 1, name='conv2')(x)


class GRU(nn.Module):
    """ConvGRU (3x3; small) or SepConvGRU ((1,5) then (5,1); large)."""
    hidden: int
    separable: bool

    @nn.compact
    def __call__(self, h, x):
        kernels = (((1, 5), '1'), ((5, 1), '2')) if self.separable else ((3, ''),)
        for kernel, suffix in kernels:
            hx = jnp.concatenate([h, x], axis=-1)
            z = nn.sigmoid(conv(self.hidden, kernel, name=f'convz{suffix}')(hx))
            r = nn.sigmoid(conv(self.hidden, kernel, name=f'convr{suffix}')(hx))
            q = jnp.tanh(conv(self.hidden, kernel, name=f'convq{suffix}')(jnp.concatenate([r * h, x], axis=-1)))
            h = (1 - z) * h + z * q
        return h


class MotionEncoder(nn.Module):
    small: bool

    @nn.compact
    def __call__(self, flow, corr):
        if self.small:
            cor = nn.relu(conv(96, 1, name='convc1')(corr))
            flo = nn.relu(conv(32, 3, name='convf2')(nn.relu(conv(64, 7, name='convf1')(flow))))
            out = nn.relu(conv(80, 3, name='conv')(jnp.concatenate([cor, flo], axis=-1)))
        else:
            cor = nn.relu(conv(192, 3, name='convc2')(nn.relu(conv(256, 1, name='convc1')(corr))))
            flo = nn.relu(conv(64, 3, name='convf2')(nn.relu(conv(128, 7, name='convf1')(flow))))
            out = nn.relu(conv(126, 3, name='conv')(jnp.concatenate([cor, flo], axis=-1)))
        return jnp.concatenate([out, flow], axis=-1)


class FlowHead(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x):
        return conv(2, 3, name='conv2')(nn.relu(conv(self.hidden, 3, name='conv1')(x)))


class UpdateBlock(nn.Module):
    """(net, inp, corr, flow) -> (net', up-sampling mask or None, delta flow)."""
    hidden: int
    small: bool

    @nn.compact
    def __call__(self, net, inp, corr, flow):
        inp = jnp.concatenate([inp, MotionEncoder(self.small, name='encoder')(flow, corr)], axis=-1)
        net = GRU(self.hidden, separable=not self.small, name='gru')(net, inp)
        delta = FlowHead(128 if self.small else 256, name='flow_head')(net)
        if self.small:
            return net, None, delta
        mask = conv(64 * 9, 1, name='mask_2')(nn.relu(conv(256, 3, name='mask_0')(net)))
        return net, 0.25 * mask, delta


def coords_grid(batch: int, height: int, width: int) -> jax.Array:
    """`[N, H, W, 2]` pixel coordinates (x, y)."""
    ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                          indexing='ij')
    return jnp.broadcast_to(jnp.stack([xs, ys], axis=-1), (batch, height, width, 2))


def correlation_pyramid(fmap1: jax.Array, fmap2: jax.Array) -> list[jax.Array]:
    """All-pairs correlation `[N*h*w, h, w]` divided by sqrt(D), then 3 average-pooled levels."""
    n, h, w, d = fmap1.shape
    corr = jnp.einsum('nijd,nkld->nijkl', fmap1, fmap2, precision=jax.lax.Precision.HIGHEST)
    level = corr.reshape(n * h * w, h, w) / jnp.sqrt(jnp.float32(d))
    pyramid = [level]
    for _ in range(LEVELS - 1):
        hh, ww = level.shape[1] // 2, level.shape[2] // 2
        level = level[:, :2 * hh, :2 * ww].reshape(-1, hh, 2, ww, 2).mean(axis=(2, 4))
        pyramid.append(level)
    return pyramid


def _bilinear_zero_padded(image: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """image `[M, H, W]` sampled at pixel coordinates x, y `[M, K]`; zero outside."""
    m, height, width = image.shape
    flat = image.reshape(m, height * width)
    x0, y0 = jnp.floor(x), jnp.floor(y)
    out = jnp.zeros_like(x)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - jnp.abs(x - xi)) * (1 - jnp.abs(y - yi))
            inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
            index = (jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)).astype(jnp.int32)
            out = out + jnp.where(inside, weight * jnp.take_along_axis(flat, index, axis=1), 0.0)
    return out


def lookup(pyramid: list[jax.Array], coords: jax.Array, radius: int) -> jax.Array:
    """Correlation windows around `coords` `[N, h, w, 2]` -> `[N, h, w, LEVELS (2r+1)^2]`."""
    n, h, w, _ = coords.shape
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    first, second = jnp.meshgrid(offsets, offsets, indexing='ij')  # the official layout:
    centre = coords.reshape(n * h * w, 1, 2)                        # x + first, y + second
    out = []
    for i, level in enumerate(pyramid):
        x = centre[..., 0] / 2 ** i + first.reshape(1, -1)
        y = centre[..., 1] / 2 ** i + second.reshape(1, -1)
        out.append(_bilinear_zero_padded(level, x, y).reshape(n, h, w, -1))
    return jnp.concatenate(out, axis=-1)


def convex_upsample(flow: jax.Array, mask: jax.Array) -> jax.Array:
    """flow `[N, h, w, 2]`, mask `[N, h, w, 9*64]` -> `[N, 8h, 8w, 2]` (official ordering)."""
    n, h, w, _ = flow.shape
    weights = jax.nn.softmax(mask.reshape(n, h, w, 9, 8, 8), axis=3)
    padded = jnp.pad(8 * flow, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.stack([padded[:, ky:ky + h, kx:kx + w] for ky in range(3) for kx in range(3)], axis=3)
    up = jnp.einsum('nhwkab,nhwkc->nhawbc', weights, patches, precision=jax.lax.Precision.HIGHEST)
    return up.reshape(n, 8 * h, 8 * w, 2)


def _iteration(block: UpdateBlock, carry, _, inp, coords0, pyramid, *, radius: int):
    net, coords1, _mask = carry
    corr = lookup(pyramid, coords1, radius)
    net, mask, delta = block(net, inp, corr, coords1 - coords0)
    mask = jnp.zeros_like(_mask) if mask is None else mask
    return (net, coords1 + delta, mask), None


class RAFT(nn.Module):
    size: str = 'large'
    iters: int = 20

    @nn.compact
    def __call__(self, image1: jax.Array, image2: jax.Array) -> jax.Array:
        if self.size not in CONFIGS:
            raise UserError(f'unknown RAFT size {self.size!r}; accepted: {tuple(CONFIGS)}')
        cfg, small = CONFIGS[self.size], self.size == 'small'
        n, height, width, _ = image1.shape
        if height % 8 or width % 8:
            raise ValueError(f'RAFT needs H and W multiples of 8; got {height}x{width} (use raft_flow)')
        if min(height, width) < MIN_SIZE:
            raise UserError(f'RAFT needs frames of at least {MIN_SIZE}x{MIN_SIZE} (its coarsest '
                            f'correlation level must be 2 pixels wide); got {height}x{width}')
        image1, image2 = 2 * (image1 / 255.0) - 1.0, 2 * (image2 / 255.0) - 1.0
        fmaps = Encoder(cfg['fnet_dim'], 'instance', small, name='fnet')(jnp.concatenate([image1, image2]))
        pyramid = correlation_pyramid(fmaps[:n], fmaps[n:])
        context = Encoder(cfg['hidden'] + cfg['context'], 'none' if small else 'batch', small, name='cnet')(image1)
        net, inp = jnp.tanh(context[..., :cfg['hidden']]), nn.relu(context[..., cfg['hidden']:])
        coords0 = coords_grid(n, height // 8, width // 8)
        mask0 = jnp.zeros((n, height // 8, width // 8, 0 if small else 64 * 9), image1.dtype)
        scan = nn.scan(functools.partial(_iteration, radius=cfg['radius']), variable_broadcast='params',
                       split_rngs={'params': False}, in_axes=(0,) + (nn.broadcast,) * 3, length=self.iters)
        (net, coords1, mask), _ = scan(UpdateBlock(cfg['hidden'], small, name='update_block'),
                                       (net, coords0, mask0), None, inp, coords0, pyramid)
        flow = coords1 - coords0
        if small:
            return 8 * UpsampleBilinear(8)(flow)
        return convex_upsample(flow, mask)


def raft_flow(model: RAFT, variables, image1: jax.Array, image2: jax.Array) -> jax.Array:
    """Flow for any H x W: edge-pads to multiples of 8 centred as the official InputPadder
    ('sintel' mode), runs RAFT and crops back. Images `[N, H, W, 3]` in [0, 255]."""
    height, width = image1.shape[1:3]
    pad_h, pad_w = -height % 8, -width % 8
    pads = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    flow = model.apply(variables, jnp.pad(image1, pads, mode='edge'), jnp.pad(image2, pads, mode='edge'))
    return flow[:, pads[1][0]:pads[1][0] + height, pads[2][0]:pads[2][0] + width]
