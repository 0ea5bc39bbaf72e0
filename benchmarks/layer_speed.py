"""Milliseconds per convolution of one frame, ours and PyTorch's, layer shape by layer shape.

    python -m benchmarks.layer_speed [--variant A9B10C18F8] [--size 640x480] [--repeats 7] \\
        [--torch-python /path/to/python-with-torch]

The layers are every convolution one frame runs (one cell step, MMP-Net included, plus one
fusion + reconstruction + skip), read from the model by `macs.frame_layer_calls` and grouped
by shape: kernel, stride, transposed or not, channels in -> out, input H x W, and our
formulation ('ours_as': `_formulation`). Ours: that module, cloned with its fields,
jitted alone on a batch-1 float32 input under the project's XLA flags: one array, so a conv
the model feeds parts (a dense layer, MMP-Net's up-path, the fusion) is timed on their
concatenation, not by part as the model runs it. PyTorch's
(`benchmarks/torch_layers.py`, in a process of its own with `torch.set_num_threads(2)`):
nn.Conv2d / nn.ConvTranspose2d with the same shapes, NCHW. The two sides alternate round by
round (one call of every layer per side and round), so load falls on both alike; the first
round warms up, the figures are medians over `--repeats` rounds. GFLOP/s counts 2 FLOPs per
MAC of `macs` (a transposed conv's MACs as thop counts them, output elements x in x k x k).

`--torch-python` defaults to this interpreter if it can import torch; without torch only our
side runs.

    python -m benchmarks.layer_speed --device-table [--size 1280x720] [--dtype bfloat16] \
        [--gpu-channel-multiple 8]

`--device-table` (`device_table`; the GPU suite's layers job) times ours alone on the default
device, in `--dtype`: every conv shape as above, and the frame's parts as jitted sub-programs
(MMP-Net, the cell given MMP-Net's prior, fusion, reconstruction, skip), calls queued
back to back (`device_seconds`). Per row, achieved TFLOP/s (`roofline.conv_work`'s MACs as
computed: a transposed conv's a quarter of thop's) and GB/s (each conv's input, output and
kernel moved once; a part's: the sum over its convs), against the device's ceilings measured
in the same run (`measure_ceilings`: a large bfloat16 matmul, a large elementwise copy).
"""
import argparse
import collections
import dataclasses
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report, write_json
from benchmarks.roofline import conv_work
from mmp_jax.models import formulations
from mmp_jax.models.layers import SubPixelConvTranspose, WinogradConv
from mmp_jax.models.macs import LayerCall, frame_layer_calls, layer_calls
from mmp_jax.models.mmp_rnn import mmpnet_prior, prior_variables
from mmp_jax.models.variants import model_from_variant

TORCH_WORKER = pathlib.Path(__file__).with_name('torch_layers.py')


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """One distinct convolution: what `torch_layers` builds (PyTorch's padding and output
    padding), plus our formulation; input `[1, height, width, in]`."""
    formulation: str
    transposed: bool
    kernel: int
    stride: int
    padding: int
    output_padding: int
    in_channels: int
    out_channels: int
    height: int
    width: int

    def torch_spec(self) -> dict:
        return {'transposed': self.transposed, 'in': self.in_channels, 'out': self.out_channels,
                'kernel': self.kernel, 'stride': self.stride, 'padding': self.padding,
                'output_padding': self.output_padding, 'height': self.height, 'width': self.width}


def _formulation(module: nn.Module, channels: int, pixels: int) -> str:
    """How our layer computes on the default backend (where `_our_layer` runs it): 'winograd'
    (`winograd.winograd_conv3x3`, CPU only), 'sub-pixel' (`layers.SubPixelConvTranspose`), else
    XLA's convolution ('lax.conv')."""
    if isinstance(module, WinogradConv) and module.uses_winograd(channels, pixels) and jax.default_backend() == 'cpu':
        return 'winograd'
    return 'sub-pixel' if isinstance(module, SubPixelConvTranspose) else 'lax.conv'


def layer_shape(call: LayerCall) -> LayerShape:
    """The shape of a square-kernel, equal-stride conv or transposed conv call."""
    module = call.module
    (kernel, _), (stride, _) = module.kernel_size, module.strides
    (lo, hi), _ = module.padding
    transposed = isinstance(module, nn.ConvTranspose)
    _, height, width, channels = call.x.shape
    return LayerShape(_formulation(module, channels, height * width), transposed, kernel, stride,
                      kernel - 1 - lo if transposed else lo, hi - lo if transposed else 0,
                      channels, module.features, height, width)


def frame_convolutions(variant: str, height: int, width: int) -> tuple[dict[LayerShape, list[LayerCall]], int]:
    """The convolution calls of one frame grouped by `LayerShape` (first-seen order), and the
    frame's MACs outside convolutions (BatchNorm, upsampling, pooling)."""
    _, calls = frame_layer_calls(variant, height, width)
    groups = collections.defaultdict(list)
    other_macs = 0
    for call in calls:
        if isinstance(call.module, (nn.Conv, nn.ConvTranspose)):
            groups[layer_shape(call)].append(call)
        else:
            other_macs += call.macs
    return dict(groups), other_macs


def _our_layer(call: LayerCall, dtype: str | None = None, blocking: bool = True):
    """A zero-argument call of the layer on random input and parameters (drawn on the host: no
    compilation but the layer's), blocking until done unless not `blocking` (then it returns the
    output). `dtype`: the layer's compute dtype and its input's (None: as in `call`); parameters
    float32."""
    module = call.module.clone(parent=None, name=None, **({'dtype': dtype} if dtype else {}))
    rng = np.random.default_rng(0)
    random = lambda a, dtype=None: jnp.asarray(rng.standard_normal(a.shape, np.float32).astype(dtype or a.dtype))
    x = random(call.x, dtype)
    variables = jax.tree.map(random, jax.eval_shape(module.init, jax.random.key(0), x))
    apply = jax.jit(module.apply)
    return (lambda: apply(variables, x).block_until_ready()) if blocking else (lambda: apply(variables, x))


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class TorchLayers:
    """`torch_layers.py` in a subprocess of `python`, holding the layers of `specs`."""

    def __init__(self, python: str, specs: list[dict]):
        self.process = subprocess.Popen([python, str(TORCH_WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self._send(json.dumps(specs))
        if self.process.stdout.readline().strip() != 'ready':
            raise RuntimeError(f'{TORCH_WORKER.name} under {python} did not start')

    def _send(self, line: str) -> None:
        self.process.stdin.write(line + '\n')
        self.process.stdin.flush()

    def time_round(self) -> list[float]:
        self._send('time')
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def time_layers(shapes: list[LayerShape], ours: list, torch: TorchLayers | None,
                repeats: int) -> dict[str, list[float]]:
    """Median seconds per call of every layer, `{'ours': [...], 'torch': [...]}` (no 'torch'
    without it): `repeats` + 1 rounds, the first a warm-up, the side that goes first
    alternating from round to round."""
    samples = {side: [[] for _ in shapes] for side in ('ours', 'torch')[:1 + (torch is not None)]}
    for index in range(repeats + 1):
        sides = {'ours': lambda: [_timed(run) for run in ours]}
        if torch is not None:
            sides['torch'] = torch.time_round
        for side in sorted(sides, reverse=bool(index % 2)):
            seconds = sides[side]()
            if index:
                for per_layer, value in zip(samples[side], seconds):
                    per_layer.append(value)
    return {side: [statistics.median(values) for values in per_layer] for side, per_layer in samples.items()}


def _parts(calls: list[LayerCall]) -> str:
    """Where in the model the calls are, by their first two module names (e.g. 'cell.F_R')."""
    return ', '.join(dict.fromkeys('.'.join(call.module.path[:2]) for call in calls))


def layer_rows(groups: dict[LayerShape, list[LayerCall]], seconds: dict[str, list[float]]) -> list[dict]:
    """One row per layer shape, slowest of ours per frame first, then the totals."""
    rows = []
    for (shape, calls), *per_side in zip(groups.items(), *seconds.values()):
        macs = calls[0].macs
        row = {'layer': f'{shape.kernel}x{shape.kernel}' + (f' s{shape.stride}' if shape.stride > 1 else '')
                        + (' transposed' if shape.transposed else ''),
               'channels': f'{shape.in_channels}->{shape.out_channels}', 'input': f'{shape.height}x{shape.width}',
               'ours_as': shape.formulation, 'count': len(calls), 'gmacs_per_call': macs / 1e9}
        for side, value in zip(seconds, per_side):
            row |= {f'{side}_ms': value * 1e3, f'{side}_ms_per_frame': value * 1e3 * len(calls),
                    f'{side}_gflops': 2 * macs / value / 1e9}
        if 'torch' in seconds:
            row['torch_over_ours'] = row['torch_ms'] / row['ours_ms']
        rows.append(row | {'parts': _parts(calls)})
    rows.sort(key=lambda row: -row['ours_ms_per_frame'])
    total = {'layer': 'all convolutions', 'count': sum(row['count'] for row in rows),
             'gmacs_per_call': sum(row['gmacs_per_call'] * row['count'] for row in rows)}
    for side in seconds:
        per_frame = sum(row[f'{side}_ms_per_frame'] for row in rows)
        total |= {f'{side}_ms_per_frame': per_frame, f'{side}_gflops': 2 * total['gmacs_per_call'] / per_frame * 1e3}
    if 'torch' in seconds:
        total['torch_over_ours'] = total['torch_ms_per_frame'] / total['ours_ms_per_frame']
    return rows + [total]


def device_seconds(run, min_seconds: float = 0.05, rounds: int = 3) -> float:
    """Median over `rounds` of the seconds per call of `run` (returns device arrays without
    waiting), calls queued back to back and waited for at the end, enough of them to last about
    `min_seconds`; after a warm-up call (compilation). Short calls include dispatch: an upper bound."""
    jax.block_until_ready(run())
    start = time.perf_counter()
    jax.block_until_ready(run())
    calls = int(np.clip(min_seconds / max(time.perf_counter() - start, 1e-6), 3, 200))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        outputs = [run() for _ in range(calls)]
        jax.block_until_ready(outputs)
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def measure_ceilings() -> dict[str, float]:
    """The default device's bfloat16 matmul rate (TFLOP/s; 8192^3 on an accelerator, 1024^3 on a
    CPU) and copy bandwidth (GB/s, bytes read plus written by `x + 1` over 1 GiB of float32, 64 MiB
    on a CPU), on random data."""
    accelerator = jax.default_backend() != 'cpu'
    n, elements = (8192, 2 ** 28) if accelerator else (1024, 2 ** 24)
    keys = jax.random.split(jax.random.key(0), 3)
    a, b = (jax.random.normal(key, (n, n), jnp.bfloat16) for key in keys[:2])
    x = jax.random.normal(keys[2], (elements,), jnp.float32)
    matmul = jax.jit(lambda a, b: a @ b)
    copy = jax.jit(lambda x: x + 1)
    return {'matmul_tflops': 2 * n ** 3 / device_seconds(lambda: matmul(a, b), 0.2) / 1e12,
            'copy_gbs': 2 * x.nbytes / device_seconds(lambda: copy(x), 0.2) / 1e9}


_PART_NAMES = ('MMP-Net', 'cell (given the prior)', 'fusion', 'reconstruction', 'skip')


def _part_programs(variant: str, height: int, width: int, dtype: str) -> dict[str, tuple]:
    """`{part: (function, args)}` of one frame's parts, random weights and inputs: MMP-Net, the
    cell given its prior (the rest of `MMPRNN.encode`), fusion of the window's features,
    reconstruction of the fused features, the skip conv."""
    model = model_from_variant(variant, dtype=dtype)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
    given = model.clone(prior_source='given')
    rng = np.random.default_rng(1)
    random = lambda *shape, dtype='float32': jnp.asarray(rng.random(shape, np.float32), dtype)
    h, w, c = height // 4, width // 4, 5 * model.n_features
    frame, carry = random(1, height, width, 3), model.init_carry(1, height, width)
    features = [random(1, h, w, c, dtype=dtype) for _ in range(model.window)]
    submodule = lambda name: lambda v, x: model.apply(v, x, method=lambda m, x: getattr(m, name)(x))
    return dict(zip(_PART_NAMES, (
        (lambda v, x: mmpnet_prior(v, x, model.scaling, model.compute_dtype), (prior_variables(variables), frame)),
        (lambda v, c, x, p: given.apply(v, c, x, p, method=given.encode),
         (variables, carry, frame, random(1, height, width, 1))),
        (submodule('fusion'), (variables, features)),
        (submodule('recons'), (variables, features[0])),
        (submodule('skip'), (variables, random(1, height, width, 3, dtype=dtype))))))


def _rates(row: dict, seconds: float, flops: float, nbytes: float, ceilings: dict) -> dict:
    """`row` with the achieved rates of `flops` and `nbytes` in `seconds`, against `ceilings`;
    `of_roofline`: the time at the ceilings (the larger of the two) over the time taken."""
    roofline_s = max(flops / (ceilings['matmul_tflops'] * 1e12), nbytes / (ceilings['copy_gbs'] * 1e9))
    return row | {'ms': seconds * 1e3, 'ms_per_frame': seconds * 1e3 * row['count'], 'gflop': flops / 1e9,
                  'mbytes': nbytes / 1e6, 'tflops': flops / seconds / 1e12, 'gbs': nbytes / seconds / 1e9,
                  'of_matmul_ceiling': flops / seconds / 1e12 / ceilings['matmul_tflops'],
                  'of_copy_ceiling': nbytes / seconds / 1e9 / ceilings['copy_gbs'],
                  'of_roofline': roofline_s / seconds}


def device_table(variant: str, height: int, width: int, dtype: str, json_path: str | None = None) -> dict:
    """Times every part and every conv shape of one frame on the default device in `dtype`, in
    the formulations in effect (`formulations.current()`), writes the table (`report`,
    'gpu_layers'; rewritten after every row, so a run cut short keeps what it measured) and
    returns a summary: ms per frame of the parts and of the convs, the ceilings."""
    ceilings = measure_ceilings()
    value_bytes = jnp.dtype(dtype).itemsize
    meta = dict(variant=variant, size=f'{width}x{height}', dtype=dtype,
                formulations=dataclasses.asdict(formulations.current()), **ceilings,
                statistic='median of 3 rounds of back-to-back calls')
    rows = []
    for part, (function, args) in _part_programs(variant, height, width, dtype).items():
        works = [conv_work(call) for call in layer_calls(function, *args)
                 if isinstance(call.module, (nn.Conv, nn.ConvTranspose))]
        jitted = jax.jit(function)
        seconds = device_seconds(lambda: jitted(*args))
        rows.append(_rates({'row': 'part', 'name': part, 'count': 1, 'convs': len(works)}, seconds,
                           2 * sum(w.macs for w in works), sum(w.bytes(value_bytes) for w in works), ceilings))
        write_json('gpu_layers', {'benchmark': 'gpu_layers', **meta, 'rows': rows}, json_path)
    groups, _ = frame_convolutions(variant, height, width)
    for calls in groups.values():
        work = conv_work(calls[0])
        row = {'row': 'conv', 'name': work.label, 'count': len(calls), 'parts': _parts(calls)}
        seconds = device_seconds(_our_layer(calls[0], dtype, blocking=False))
        rows.append(_rates(row, seconds, 2 * work.macs, work.bytes(value_bytes), ceilings))
        write_json('gpu_layers', {'benchmark': 'gpu_layers', **meta, 'rows': rows}, json_path)
    summary = {f'{kind}_ms_per_frame': sum(r['ms_per_frame'] for r in rows if r['row'] == kind)
               for kind in ('part', 'conv')}
    rows = rows[:len(_PART_NAMES)] + sorted(rows[len(_PART_NAMES):], key=lambda row: -row['ms_per_frame'])
    path = report('gpu_layers', rows, json_path, markdown=True, **meta, **summary)
    return {'json': str(path), **summary, **ceilings}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='640x480', help='WxH')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--torch-python', default=sys.executable if importlib.util.find_spec('torch') else '',
                        help="an interpreter that has torch ('': ours only)")
    parser.add_argument('--device-table', action='store_true',
                        help='ours alone on the default device, with rates against its ceilings (device_table)')
    parser.add_argument('--dtype', default='float32', help='compute dtype of --device-table')
    parser.add_argument('--gpu-channel-multiple', type=int, default=1, help='formulation of --device-table on GPUs')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    if args.device_table:
        with formulations.using(gpu_channel_multiple=args.gpu_channel_multiple):
            device_table(args.variant, height, width, args.dtype, args.json)
        return
    groups, other_macs = frame_convolutions(args.variant, height, width)
    load_before = os.getloadavg()
    ours = [_our_layer(calls[0]) for calls in groups.values()]
    torch = TorchLayers(args.torch_python, [shape.torch_spec() for shape in groups]) if args.torch_python else None
    try:
        seconds = time_layers(list(groups), ours, torch, args.repeats)
    finally:
        if torch is not None:
            torch.close()
    rows = layer_rows(groups, seconds)
    report('layer_speed', rows, args.json, markdown=True, variant=args.variant, size=args.size,
           repeats=args.repeats, conv_macs_per_frame=sum(call.macs for calls in groups.values() for call in calls),
           other_macs_per_frame=other_macs, torch_python=args.torch_python,
           xla_flags=os.environ.get('XLA_FLAGS', ''), load_before=load_before, load_after=os.getloadavg(),
           statistic='median over rounds')


if __name__ == '__main__':
    main()
