"""The accelerators' programs: the GPU's channel-padded convolutions against the plain ones
(outputs and gradients), and the inference and training steps lowered for TPU and CUDA holding
none of the CPU's formulations (`mmp_jax.models.formulations`)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax import infer, stages
from mmp_jax.models import formulations, layers
from mmp_jax.models.channel_padding import channel_padded_conv
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import MMPRNN
from tests.conftest import TINY_MMPRNN, init_variables

TOLERANCE = 1e-5
GPU_PADDED = dict(platform='cuda', gpu_channel_multiple=8)


def _x(*shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def _plain_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(jnp.concatenate(x, -1), kernel, strides, padding, precision='highest',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('channels, kernel, stride, features', [
    ((70, 36), 3, 1, 36), ((3,), 5, 2, 18), ((20, 5, 1), 1, 1, 12), ((16,), 3, 1, 16)])
def test_channel_padded_conv_is_the_conv(channels, kernel, stride, features):
    """Odd channel counts, parts, strides: the same outputs and gradients (per part and for the
    kernel, which keep their unpadded shapes) as the conv of the concatenation."""
    parts = tuple(_x(2, 9, 7, c, seed=i) for i, c in enumerate(channels))
    weights = _x(kernel, kernel, sum(channels), features, seed=9) / (kernel * sum(channels) ** 0.5)
    strides, padding = (stride, stride), ((kernel // 2,) * 2,) * 2
    padded = functools.partial(channel_padded_conv, multiple=8, strides=strides, padding=padding, precision='highest')
    plain = functools.partial(_plain_conv, strides=strides, padding=padding)
    np.testing.assert_allclose(padded(parts, weights), plain(parts, weights), atol=TOLERANCE)
    loss = lambda conv: lambda x, w: (conv(x, w) ** 2).mean()
    got, want = (jax.grad(loss(conv), (0, 1))(parts, weights) for conv in (padded, plain))
    assert [g.shape for g in got[0]] == [p.shape for p in parts] and got[1].shape == weights.shape
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, atol=TOLERANCE * float(np.abs(w).max()))


@pytest.mark.parametrize('platform, operand, kernel', [
    ('cuda', 'tensor<1x32x32x112xf32>', 'tensor<3x3x112x16xf32>'),
    ('tpu', 'tensor<1x32x32x106xf32>', 'tensor<3x3x106x12xf32>'),
    ('cpu', None, None)])
def test_only_gpu_programs_pad_channels(platform, operand, kernel):
    """With `gpu_channel_multiple` 8, a 3x3 conv of parts of 70 and 36 channels to 12 is, for a
    GPU, one convolution of 112 channels to 16; for a TPU of 106 to 12; on the CPU, Winograd (no
    convolution)."""
    module, x = layers.conv(12, 3), [_x(1, 32, 32, c) for c in (70, 36)]
    variables = module.init(jax.random.key(0), x)
    with formulations.using(gpu_channel_multiple=8):
        text = jax.jit(module.apply).trace(variables, x).lower(lowering_platforms=(platform,)).as_text()
    convolutions = [line for line in text.splitlines() if 'stablehlo.convolution' in line]
    assert len(convolutions) == (0 if operand is None else 1)
    if operand:
        assert operand in convolutions[0] and kernel in convolutions[0]


def test_a_jitted_function_follows_the_setting():
    """The setting is part of jit's cache key: one jitted function traced under two settings
    holds each one's program (Winograd on the CPU, then XLA's convolution as for a TPU)."""
    module, x = layers.conv(12, 3), _x(1, 32, 32, 70)
    variables = module.init(jax.random.key(0), x)
    apply = jax.jit(module.apply)
    counts = []
    for platform in (None, 'tpu', None):
        with formulations.using(platform=platform):
            apply(variables, x)
            counts.append(apply.trace(variables, x).lower().as_text().count('stablehlo.convolution'))
    assert counts == [0, 1, 0]


def _same_values_and_gradients(model, x) -> None:
    """`mean(model(x) ** 2)` and its gradient for every parameter, computed as a GPU with
    channels padded to multiples of 8 computes them and as a TPU does (XLA's convolutions
    unpadded): equal in float32."""
    variables = init_variables(model, 0, x)
    loss = lambda params: jnp.mean(model.apply({**variables, 'params': params}, x) ** 2)
    results = []
    for setting in (GPU_PADDED, dict(platform='tpu')):
        with formulations.using(**setting):
            results.append(jax.jit(jax.value_and_grad(loss))(variables['params']))
    (value, grads), (plain_value, plain_grads) = results
    np.testing.assert_allclose(value, plain_value, rtol=TOLERANCE)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(plain_grads)):
        np.testing.assert_allclose(got, want, atol=TOLERANCE * max(float(np.abs(want).max()), 1e-3))


@pytest.mark.slow
@pytest.mark.parametrize('model, shape', [
    # the cell as a loop: quicker to compile
    (MMPRNN(**TINY_MMPRNN, use_mmam=False, scan_unroll=False), (1, 5, 16, 16, 3)),
    (MMPNet(), (2, 16, 16, 3))], ids=['mmp_rnn_without_mmp_net', 'mmp_net'])
def test_padded_gpu_convolutions_give_the_plain_models_values_and_gradients(model, shape):
    _same_values_and_gradients(model, jax.random.uniform(jax.random.key(3), shape))


def _op_counts(text: str) -> tuple[int, int]:
    return text.count('stablehlo.convolution'), text.count('stablehlo.dot_general')


def _steps(model: MMPRNN):
    """The inference step's two programs and the stage-2 training step, with abstract arguments."""
    frames = jax.ShapeDtypeStruct((1, 5, 64, 64, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), frames)
    carry = jax.eval_shape(lambda: model.init_carry(1, 64, 64))
    _, feats, _ = jax.eval_shape(functools.partial(infer.encode_chunk, model), variables, carry, frames)
    feature = jax.ShapeDtypeStruct((1,) + feats.shape[2:], feats.dtype)
    windows = [(feature,) * model.window]
    frame = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    optimizer = stages.get('mmprnn').make_optimizer(1e-4, 10)
    state = jax.eval_shape(lambda v: stages.get('mmprnn').create_state(v, optimizer), variables)
    batch = {'blurry': frames, 'sharp': frames, 'mmp': jax.ShapeDtypeStruct((1, 5, 64, 64, 1), jnp.float32)}
    return {'encode': (functools.partial(infer.encode_chunk, model), (variables, carry, frames)),
            'decode': (functools.partial(infer.decode_windows, model), (variables, windows, frame)),
            'train': (stages.get('mmprnn').make_step(model, optimizer), (state, batch))}


@pytest.mark.slow
def test_accelerator_steps_lower_without_the_cpu_formulations():
    """With the CPU's formulations set to apply to every map, the inference step (a chunk's
    encoding, a window's decoding) and the training step exported for TPU and CUDA hold the
    same convolutions and matmuls as the program without them (XLA's convolutions of
    concatenated maps), where the CPU's own program differs (Winograd's matmuls, 1x1 convs by
    part)."""
    model = MMPRNN(**TINY_MMPRNN)
    with formulations.using(platform='tpu'):
        plain = {name: _op_counts(jax.jit(fn).trace(*args).lower().as_text())
                 for name, (fn, args) in _steps(model).items()}
    with formulations.using(cpu_min_pixels=0, cpu_winograd_min_channels=0):
        for name, (fn, args) in _steps(model).items():
            for platform in ('tpu', 'cuda'):
                exported = jax.export.export(jax.jit(fn), platforms=(platform,))(*args)
                assert _op_counts(exported.mlir_module()) == plain[name], (name, platform)
            cpu = _op_counts(jax.jit(fn).trace(*args).lower(lowering_platforms=('cpu',)).as_text())
            assert cpu != plain[name], name
