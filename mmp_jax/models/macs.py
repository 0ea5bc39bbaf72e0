"""Parameter and multiply-accumulate counts, exact, from shapes alone (no computation).

MACs are counted the way thop 0.1.1 counts the original PyTorch modules, so figures compare
with the paper's: for every convolution `out_elements * in_channels * kh * kw` (transposed
convolutions too, by the same formula, as thop does), dense layers `out_elements *
in_features`, BatchNorm `4 * elements`, bilinear upsampling `11 * out_elements`, global
average pooling `(H * W + 1) * out_elements`; activations, pooling maxima, concatenation,
padding, additions and products count zero. The model is traced with `jax.eval_shape` and
each layer call is seen through `flax.linen.intercept_methods`.
"""
import dataclasses
import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax

from mmp_jax.models.layers import GlobalAvgPool, UpsampleBilinear
from mmp_jax.models.mmp_net import MIN_SIZE, MMPNet
from mmp_jax.models.variants import model_from_variant
from mmp_jax.models.parts import concatenated


def _joined(x) -> jax.ShapeDtypeStruct:
    """The shape of a layer's input `x`, an array or parts (`parts.parts_of`, the shape
    of their channel concatenation)."""
    return jax.eval_shape(concatenated, x)


def _layer_macs(module: nn.Module, x: jax.ShapeDtypeStruct, y) -> int:
    if isinstance(module, (nn.Conv, nn.ConvTranspose)):
        return math.prod(y.shape) * x.shape[-1] * math.prod(module.kernel_size)
    if isinstance(module, nn.Dense):
        return math.prod(y.shape) * x.shape[-1]
    if isinstance(module, nn.BatchNorm):
        return 4 * math.prod(x.shape)
    if isinstance(module, UpsampleBilinear):
        return 11 * math.prod(y.shape)
    if isinstance(module, GlobalAvgPool):
        return (math.prod(x.shape[1:-1]) + 1) * math.prod(y.shape)
    return 0


@dataclasses.dataclass(frozen=True)
class LayerCall:
    """One call of a Flax module: the (bound) module, the shape of its first input (a conv's
    parts: of their concatenation; a tree for modules that are not layers) and of its output
    (`jax.ShapeDtypeStruct` trees), and its MACs (`_layer_macs`; 0 for modules that only
    contain layers)."""
    module: nn.Module
    x: object
    y: object
    macs: int


def layer_calls(fn: Callable, *args) -> list[LayerCall]:
    """Every module call of `fn(*args)` (e.g. `model.apply` with variables first), innermost
    first; args are arrays or `jax.ShapeDtypeStruct`s."""
    calls = []
    shape_of = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)

    def interceptor(next_fun, call_args, call_kwargs, context):
        out = next_fun(*call_args, **call_kwargs)
        if context.method_name == '__call__' and call_args:
            joins = isinstance(context.module, (nn.Conv, GlobalAvgPool))
            x = (_joined if joins else shape_of)(call_args[0])
            calls.append(LayerCall(context.module, x, shape_of(out), _layer_macs(context.module, x, out)))
        return out

    with nn.intercept_methods(interceptor):
        jax.eval_shape(fn, *args)
    return calls


def count_macs(fn: Callable, *args) -> int:
    """MACs of `fn(*args)`, as `layer_calls`."""
    return sum(call.macs for call in layer_calls(fn, *args))


def count_params(params) -> int:
    """Number of scalars in a parameter tree (the `params` collection, as thop counts)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def frame_layer_calls(variant: str, height: int, width: int,
                      **overrides) -> tuple[dict, list[LayerCall]]:
    """The variables (shapes only) and every layer call (`layer_calls`) of one frame of
    `variant` ('mmpnet' or e.g. 'A9B10C18F8') at H x W, batch 1.

    For MMP-RNN a frame costs one cell step (MMP-Net included) plus one fusion,
    reconstruction and skip, as the original's `profile_forward` counts it. `overrides` are
    `MMPRNN` fields (ablation switches).
    """
    frame = jax.ShapeDtypeStruct((1, height, width, 3), 'float32')
    if variant.lower() == 'mmpnet':
        net = MMPNet()
        variables = jax.eval_shape(net.init, jax.random.key(0), frame)
        return variables, layer_calls(net.apply, variables, frame)
    net = model_from_variant(variant, **overrides)
    side = MIN_SIZE  # the parameters' shapes do not depend on the frame size: traced at the smallest
    clip = jax.ShapeDtypeStruct((1, net.window, side, side, 3), 'float32')
    priors = jax.ShapeDtypeStruct((1, net.window, side, side, 1), 'float32')
    variables = jax.eval_shape(net.init, jax.random.key(0), clip, priors)
    carry = net.init_carry(1, height, width)
    prior = jax.ShapeDtypeStruct((1, height, width, 1), 'float32')
    feats = jax.ShapeDtypeStruct(carry[0].shape[:3] + (net.window * 5 * net.n_features,), 'float32')
    return variables, (layer_calls(functools.partial(net.apply, method=net.encode), variables, carry, frame, prior)
                       + layer_calls(functools.partial(net.apply, method=net.decode), variables, feats, frame))


def network_stats(variant: str, height: int, width: int, **overrides) -> dict[str, float]:
    """Params and MACs per frame of `variant` at H x W (`frame_layer_calls`). Returns
    `{'params', 'macs', 'gmacs'}`."""
    variables, calls = frame_layer_calls(variant, height, width, **overrides)
    macs = sum(call.macs for call in calls)
    return {'params': count_params(variables['params']), 'macs': macs, 'gmacs': macs / 1e9}
