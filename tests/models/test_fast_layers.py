"""The faster formulations in `layers` against the plain Flax/JAX ones they replace:
same parameters (names, shapes, initial values), same outputs to float32 rounding. The
end-to-end check against the original is tests/models/test_port_matches_original.py."""
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from mmp_jax import backend
from mmp_jax.models import formulations, layers, parts, winograd
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import Fusion
from mmp_jax.models.rdb import RDNet
from tests.conftest import REPO

TOLERANCE = 1e-5


@pytest.fixture
def every_map():
    """The CPU's formulations on maps of any size (this file's are small)."""
    with formulations.using(cpu_min_pixels=0):
        yield


def _x(*shape):
    return jax.random.normal(jax.random.key(1), shape)


def _same_function(new: nn.Module, old: nn.Module, x: jax.Array) -> None:
    variables = new.init(jax.random.key(0), x)
    old_variables = old.init(jax.random.key(0), x)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, variables, old_variables))
    np.testing.assert_allclose(new.apply(variables, x), old.apply(variables, x), atol=TOLERANCE)


def test_gelu_is_the_exact_form():
    x = _x(4, 1000) * 4
    np.testing.assert_allclose(layers.gelu(x), nn.gelu(x, approximate=False), atol=1e-6)
    assert layers.activation('GELU') is layers.gelu


@pytest.mark.parametrize('shape', [(1, 4, 6, 10), (2, 3, 5, 7)])
def test_subpixel_conv_transpose_is_the_transposed_conv(shape):
    new = layers.conv_transpose(5, 3, 2, 1, 1)
    assert isinstance(new, layers.SubPixelConvTranspose) and isinstance(new, nn.ConvTranspose)
    old = nn.ConvTranspose(5, (3, 3), strides=(2, 2), padding=((1, 2),) * 2, transpose_kernel=True,
                           kernel_init=layers.torch_like_init)
    assert new.apply(new.init(jax.random.key(0), _x(*shape)), _x(*shape)).shape == (
        shape[0], 2 * shape[1], 2 * shape[2], 5)
    _same_function(new, old, _x(*shape))


@pytest.mark.parametrize('shape', [(1, 8, 10, 5), (2, 7, 9, 3), (1, 5, 1, 70)])
def test_winograd_conv3x3_is_the_padded_conv(shape):
    """Even and odd sizes, batches, a single column; unit-scale kernels as the layers'; bfloat16
    in, bfloat16 out."""
    x = _x(*shape)
    kernel = jax.random.normal(jax.random.key(2), (3, 3, shape[-1], 6)) / (3 * shape[-1] ** 0.5)
    direct = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), precision='highest',
                                          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(jax.jit(winograd.winograd_conv3x3)(x, kernel), direct, atol=TOLERANCE)
    assert winograd.winograd_conv3x3(x.astype('bfloat16'), kernel.astype('bfloat16')).dtype == 'bfloat16'


def test_winograd_conv3x3_gradients_are_the_direct_convs():
    x, kernel = _x(2, 7, 9, 70), jax.random.normal(jax.random.key(2), (3, 3, 70, 6)) / 25
    loss = lambda conv: lambda x, kernel: (conv(x, kernel) ** 2).mean()
    direct = lambda x, kernel: jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    got = jax.grad(loss(winograd.winograd_conv3x3), (0, 1))(x, kernel)
    want = jax.grad(loss(direct), (0, 1))(x, kernel)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=TOLERANCE * float(np.abs(w).max()))


def test_winograd_conv3x3_of_parts_is_the_conv_of_their_concatenation():
    """Parts of 70, 6 and 1 channels, never concatenated: the padded conv of their
    concatenation; gradients (one per part) the direct conv's."""
    parts = tuple(jax.random.normal(jax.random.key(i), (2, 7, 9, c)) for i, c in enumerate((70, 6, 1)))
    kernel = jax.random.normal(jax.random.key(5), (3, 3, 77, 6)) / 25
    whole = jax.numpy.concatenate(parts, axis=-1)
    np.testing.assert_allclose(jax.jit(winograd.winograd_conv3x3)(parts, kernel),
                               winograd.direct_conv3x3(whole, kernel, 'highest'), atol=TOLERANCE)
    loss = lambda conv: lambda x, kernel: (conv(x, kernel) ** 2).mean()
    got = jax.grad(loss(winograd.winograd_conv3x3), (0, 1))(parts, kernel)
    want = jax.grad(loss(winograd.direct_conv3x3), (0, 1))(whole, kernel)
    assert [g.shape for g in got[0]] == [p.shape for p in parts]
    for g, w in zip((jax.numpy.concatenate(got[0], axis=-1), got[1]), want):
        np.testing.assert_allclose(g, w, atol=TOLERANCE * float(np.abs(w).max()))


@pytest.mark.parametrize('channels', [8, 70])
def test_winograd_conv_is_the_3x3_conv(channels):
    """`conv(k=3, stride 1)` is a `WinogradConv` (Winograd from `cpu_winograd_min_channels`
    input channels and `cpu_min_pixels` pixels up, XLA's conv below) with `nn.Conv`'s parameters
    and outputs."""
    new = layers.conv(12, 3)
    assert isinstance(new, layers.WinogradConv) and new.uses_winograd(channels) == (channels >= 64)
    assert not new.uses_winograd(channels, formulations.current().cpu_min_pixels - 1)
    assert type(layers.conv(12, 3, stride=2)) is type(layers.conv(12, 5)) is layers.Conv
    old = nn.Conv(12, (3, 3), padding=((1, 1), (1, 1)), kernel_init=layers.torch_like_init)
    with formulations.using(cpu_min_pixels=0):  # Winograd at this test's 9 x 6
        _same_function(new, old, _x(2, 9, 6, channels))


@pytest.mark.parametrize('platform, winograd', [('cpu', True), ('cuda', False), ('rocm', False), ('tpu', False)])
@pytest.mark.parametrize('channels', [(70,), (70, 36)])
def test_winograd_only_in_programs_for_the_cpu(platform, winograd, channels):
    """Lowered for the CPU backend, a `WinogradConv` of 70 channels, or of parts of 70 and 36,
    is matmuls, and neither a convolution nor a concatenation; for a GPU or TPU it is the one
    convolution (cuDNN's there) of the parts concatenated, and no matmul."""
    module, x = layers.conv(12, 3), [_x(1, 32, 32, c) for c in channels]
    variables = module.init(jax.random.key(0), x)
    text = jax.jit(module.apply).trace(variables, x).lower(lowering_platforms=(platform,)).as_text()
    assert (text.count('stablehlo.convolution'), 'stablehlo.dot_general' in text) == (
        (0, True) if winograd else (1, False))
    if len(channels) > 1:  # the concatenated map, 1 x 32 x 32 x 106, exists only off the CPU
        assert ('tensor<1x32x32x106xf32>' in text) == (not winograd)


def test_pointwise_conv_of_parts_is_the_1x1_conv(every_map):
    """`conv(k=1, stride 1)` is a `PointwiseConv`: on one map, or on parts (by part on the CPU
    backend, `cpu_min_pixels` pixels up), `nn.Conv`'s parameters and outputs on their
    concatenation."""
    new, old = layers.conv(12, 1), nn.Conv(12, (1, 1), padding=((0, 0), (0, 0)), kernel_init=layers.torch_like_init)
    assert isinstance(new, layers.PointwiseConv) and type(layers.conv(12, 1, stride=2)) is layers.Conv
    _same_function(new, old, _x(2, 9, 6, 20))
    parts = [_x(2, 9, 6, 20), _x(2, 9, 6, 3) * 2]
    variables = new.init(jax.random.key(0), parts)
    whole = jax.numpy.concatenate(parts, axis=-1)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, variables, old.init(jax.random.key(0), whole)))
    np.testing.assert_allclose(jax.jit(new.apply)(variables, parts), old.apply(variables, whole), atol=TOLERANCE)


@pytest.mark.parametrize('platform, by_part', [('cpu', True), ('cuda', False), ('tpu', False)])
def test_parts_are_concatenated_only_off_the_cpu(platform, by_part, every_map):
    """Three parts into a `PointwiseConv`: lowered for the CPU backend, three convolutions
    and no concatenation; for a GPU or TPU, one concatenation and one convolution."""
    module, parts = layers.conv(12, 1), [_x(1, 32, 32, c) for c in (70, 36, 36)]
    variables = module.init(jax.random.key(0), parts)
    text = jax.jit(module.apply).trace(variables, parts).lower(lowering_platforms=(platform,)).as_text()
    assert (text.count('stablehlo.convolution'), text.count('stablehlo.concatenate')) == ((3, 0) if by_part else (1, 1))


def test_parts_of_other_sizes_and_unused_fields_are_refused():
    module = layers.conv(12, 1)
    with pytest.raises(ValueError, match=r'one N, H, W; got shapes \[\(1, 4, 4, 3\), \(1, 4, 5, 2\)\]'):
        module.init(jax.random.key(0), [_x(1, 4, 4, 3), _x(1, 4, 5, 2)])
    with pytest.raises(ValueError, match='takes \\[N, H, W, C\\] maps'):
        layers.conv(12, 3).init(jax.random.key(0), _x(4, 4, 3))
    with pytest.raises(ValueError, match=r'PointwiseConv is a conv with bias and "same" padding'):
        layers.PointwiseConv(12, (1, 1), strides=2).init(jax.random.key(0), _x(1, 4, 4, 3))
    with pytest.raises(ValueError, match=r'WinogradConv is a conv with bias and "same" padding'):
        layers.WinogradConv(12, (3, 3), padding='VALID').init(jax.random.key(0), _x(1, 4, 4, 3))
    with pytest.raises(ValueError, match=r'Conv is a conv with bias and "same" padding'):
        layers.Conv(12, (5, 5), padding=((1, 1), (1, 1))).init(jax.random.key(0), _x(1, 4, 4, 3))


@pytest.mark.slow
def test_dense_blocks_of_parts_are_the_concatenated_blocks(every_map, monkeypatch):
    """An RDNet (2 RDBs of 70 channels, growth 36: Winograd of parts, 1x1 convs by part)
    against the same network with every join concatenated first: the same variables and
    outputs within float32 rounding."""
    net, x = RDNet(36, 2), _x(1, 10, 12, 70)
    variables = net.init(jax.random.key(0), x)
    by_parts = jax.jit(lambda v, x: net.apply(v, x))(variables, x)
    monkeypatch.setattr(layers, 'parts_of', lambda x: (parts.concatenated(x),))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, variables, net.init(jax.random.key(0), x)))
    np.testing.assert_allclose(by_parts, jax.jit(lambda v, x: net.apply(v, x))(variables, x), atol=TOLERANCE)


def test_fusion_of_parts_is_the_fusion_of_their_concatenation(every_map):
    """The fusion (channel attention, 1x1) of five feature maps as parts (each map times its
    gates, the 1x1 by part) and of their concatenation: the same variables and outputs."""
    fusion, parts = Fusion(4), [_x(2, 5, 6, 20) + i for i in range(5)]
    whole = jax.numpy.concatenate(parts, axis=-1)
    variables = fusion.init(jax.random.key(0), parts)
    initialised = fusion.init(jax.random.key(0), whole)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, variables, initialised))
    np.testing.assert_allclose(jax.jit(fusion.apply)(variables, parts), fusion.apply(variables, whole), atol=TOLERANCE)


@pytest.mark.slow
def test_mmp_net_with_and_without_winograd(monkeypatch):
    """MMP-Net (3x3 convs of 64 to 256 input channels) with its 3x3 convs by Winograd and by
    XLA's convolution: the same outputs (sigmoid maps in [0, 1]) within float32 rounding; and
    the same variables with its up-path's (skip, up) parts concatenated as the original does
    (names, shapes, initial values, so checkpoints serve either)."""
    x = jax.random.uniform(jax.random.key(1), (1, 32, 48, 3))
    net = MMPNet()
    variables = net.init(jax.random.key(0), x)
    with formulations.using(cpu_min_pixels=0):  # every 3x3 conv of >= 64 channels
        with_winograd = jax.jit(lambda v, x: net.apply(v, x))(variables, x)
    with formulations.using(cpu_min_pixels=32 * 48 + 1):  # none
        without = jax.jit(lambda v, x: net.apply(v, x))(variables, x)
    np.testing.assert_allclose(with_winograd, without, atol=TOLERANCE)
    monkeypatch.setattr(layers, 'parts_of', lambda x: (parts.concatenated(x),))  # the up-path concatenated
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, variables, net.init(jax.random.key(0), x)))


def test_xla_flags_are_appended_and_the_users_kept():
    environ = {}
    backend.set_xla_flags(environ)
    assert environ['XLA_FLAGS'].split() == list(backend.CPU_FLAGS)
    environ = {'XLA_FLAGS': '--xla_dump_to=/tmp/x'}
    backend.set_xla_flags(environ)
    assert environ['XLA_FLAGS'].split() == ['--xla_dump_to=/tmp/x', *backend.CPU_FLAGS]
    name = backend.CPU_FLAGS[0].split('=')[0]
    environ = {'XLA_FLAGS': f'{name}=default --xla_dump_to=/tmp/x'}
    backend.set_xla_flags(environ)
    assert environ['XLA_FLAGS'] == f'{name}=default --xla_dump_to=/tmp/x'


def test_tensorflow_defaults_are_set_and_the_users_kept():
    environ = {'TF_ENABLE_ONEDNN_OPTS': '1'}
    backend.set_tensorflow_defaults(environ)
    assert environ == {'TF_ENABLE_ONEDNN_OPTS': '1', 'TF_CPP_MIN_LOG_LEVEL': '2'}


def test_importing_the_package_sets_the_flags_before_jax_starts():
    code = 'import os, mmp_jax; print(os.environ["XLA_FLAGS"])'
    env = {'XLA_FLAGS': '--xla_dump_to=/tmp/x', 'PATH': ''}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, check=True,
                         cwd=REPO)
    assert out.stdout.split() == ['--xla_dump_to=/tmp/x', *backend.CPU_FLAGS]
