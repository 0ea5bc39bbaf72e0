"""Each convolution of one frame against a TPU v5e chip's and an H100's rooflines, on paper: an
estimate from the model's shapes and the vendors' figures, nothing run.

    python -m benchmarks.roofline [--variant A9B10C18F8] [--size 1280x720] [--markdown]

The convolutions are those of one frame (one cell step, MMP-Net included, plus one fusion,
reconstruction and skip: `macs.frame_layer_calls`), grouped by shape. Per shape:

- MACs as computed (`conv_work`): output pixels x kh x kw x C_in x C_out for a conv; a
  transposed conv (the sub-pixel formulation, `layers.SubPixelConvTranspose`) makes every input
  pixel reach k x k outputs, input pixels x k x k x C_in x C_out (a quarter of thop's count,
  which `macs` keeps for comparing with the paper).
- Bytes: the fewest a layer must move through device memory, in bfloat16: its input read once,
  its output written once, its kernel read once (activations and elementwise work between convs
  assumed fused into them; nothing else of the frame is counted).
- Fill of the matrix unit, the model stated here (channel counts padded by the hardware):
  - TPU v5e (MXU 128 x 128; activations' minor dim on 128 lanes, 8 sublanes): every kernel tap
    is a matmul `[pixels, C_in] x [C_in, C_out]`, C_in and C_out each padded up to a multiple of
    128, the pixels to a multiple of 8: fill = C_in C_out / (pad128(C_in) pad128(C_out)).
    `tpu_folded_fill` is the kinder case where the compiler folds the taps into the contraction
    (`kh kw C_in` padded to 128 once): the two bracket what XLA may choose.
  - H100 (tensor cores, bfloat16): implicit GEMM with C_in and C_out padded to multiples of 8,
    the counts cuDNN's tensor-core kernels take (`formulations.gpu_channel_multiple` does this
    in the program); tile quantisation of the kernels is not modelled (optimistic).
- Time per call = max(padded FLOPs / peak, bytes / bandwidth); the frame's time is the sum over
  all calls, fps its inverse. `bound` says which term is larger.

Devices (vendors' figures): TPU v5e, one chip: 197 TFLOP/s bfloat16, 819 GB/s HBM; H100 SXM:
989 TFLOP/s dense bfloat16, 3.35 TB/s HBM3. An estimate: real convolutions reach a fraction of
these (an H200 measured 790 TFLOP/s on a large bfloat16 matmul, benchmarks/README.md), and the
rest of the frame (BatchNorm, upsampling, concatenations not fused) adds memory traffic.
"""
import argparse
import collections
import dataclasses
import math

import flax.linen as nn

from benchmarks.report import report
from mmp_jax.models.macs import LayerCall, frame_layer_calls

BF16_BYTES = 2


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    peak_tflops: float  # dense bfloat16
    bandwidth_gbs: float


TPU_V5E = Device('TPU v5e (one chip)', 197.0, 819.0)
H100_SXM = Device('H100 SXM', 989.0, 3350.0)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class ConvWork:
    """One conv call's shape and work: `kernel` (kh, kw), `stride`, `transposed`, channels in and
    out, input and output pixels (batch 1), the MACs it computes (see the module doc)."""
    kernel: tuple[int, int]
    stride: int
    transposed: bool
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @property
    def macs(self) -> int:
        pixels = math.prod(self.in_hw if self.transposed else self.out_hw)
        return pixels * math.prod(self.kernel) * self.in_channels * self.out_channels

    def bytes(self, value_bytes: int = BF16_BYTES) -> int:
        """Input read once, output written once, kernel read once, at `value_bytes` a value."""
        values = (math.prod(self.in_hw) * self.in_channels + math.prod(self.out_hw) * self.out_channels
                  + math.prod(self.kernel) * self.in_channels * self.out_channels)
        return values * value_bytes

    @property
    def label(self) -> str:
        kh, kw = self.kernel
        return (f'{kh}x{kw}' + (f' s{self.stride}' if self.stride > 1 else '') + (' transposed' * self.transposed)
                + f' {self.in_channels}->{self.out_channels} at {self.in_hw[0]}x{self.in_hw[1]}')

    def tpu_fill(self) -> float:
        pixels = math.prod(self.in_hw if self.transposed else self.out_hw)
        return (self.in_channels * self.out_channels * pixels
                / (round_up(self.in_channels, 128) * round_up(self.out_channels, 128) * round_up(pixels, 8)))

    def tpu_folded_fill(self) -> float:
        contraction = math.prod(self.kernel) * self.in_channels
        return contraction * self.out_channels / (round_up(contraction, 128) * round_up(self.out_channels, 128))

    def h100_fill(self) -> float:
        return self.in_channels * self.out_channels / (round_up(self.in_channels, 8) * round_up(self.out_channels, 8))


def conv_work(call: LayerCall) -> ConvWork:
    """The `ConvWork` of a conv or transposed conv call of `macs.layer_calls`."""
    module = call.module
    return ConvWork(tuple(module.kernel_size), module.strides[0] if module.strides else 1,
                    isinstance(module, nn.ConvTranspose), call.x.shape[-1], module.features,
                    tuple(call.x.shape[1:3]), tuple(call.y.shape[1:3]))


def frame_convs(variant: str, height: int, width: int) -> dict[ConvWork, list[LayerCall]]:
    """The conv calls of one frame of `variant` at H x W, grouped by `ConvWork` (first-seen order)."""
    groups = collections.defaultdict(list)
    for call in frame_layer_calls(variant, height, width)[1]:
        if isinstance(call.module, (nn.Conv, nn.ConvTranspose)):
            groups[conv_work(call)].append(call)
    return dict(groups)


def seconds_on(device: Device, work: ConvWork, fill: float) -> tuple[float, str]:
    """(seconds of one call at the roofline, 'compute' or 'memory': the larger term)."""
    compute = 2 * work.macs / fill / (device.peak_tflops * 1e12)
    memory = work.bytes() / (device.bandwidth_gbs * 1e9)
    return max(compute, memory), 'compute' if compute >= memory else 'memory'


def roofline_rows(groups: dict[ConvWork, list[LayerCall]]) -> list[dict]:
    """One row per conv shape (most H100 time per frame first), then the frame's totals."""
    rows = []
    totals = collections.Counter()
    for work, calls in groups.items():
        count = len(calls)
        fills = {'tpu': work.tpu_fill(), 'tpu_folded': work.tpu_folded_fill(), 'h100': work.h100_fill()}
        tpu_s, tpu_bound = seconds_on(TPU_V5E, work, fills['tpu'])
        tpu_folded_s, _ = seconds_on(TPU_V5E, work, fills['tpu_folded'])
        h100_s, h100_bound = seconds_on(H100_SXM, work, fills['h100'])
        ideal = {name: seconds_on(device, work, 1.0)[0] for name, device in (('tpu', TPU_V5E), ('h100', H100_SXM))}
        rows.append({'conv': work.label, 'count': count, 'parts': ', '.join(dict.fromkeys(
                         '.'.join(call.module.path[:2]) for call in calls)),
                     'gmacs': work.macs / 1e9, 'mbytes': work.bytes() / 1e6,
                     'flop_per_byte': 2 * work.macs / work.bytes(),
                     'tpu_fill': fills['tpu'], 'tpu_folded_fill': fills['tpu_folded'], 'h100_fill': fills['h100'],
                     'tpu_us': tpu_s * 1e6, 'tpu_bound': tpu_bound, 'h100_us': h100_s * 1e6, 'h100_bound': h100_bound,
                     'tpu_ms_per_frame': tpu_s * count * 1e3, 'h100_ms_per_frame': h100_s * count * 1e3})
        totals.update({'count': count, 'gmacs': work.macs * count / 1e9, 'mbytes': work.bytes() * count / 1e6,
                       'tpu_s': tpu_s * count, 'tpu_folded_s': tpu_folded_s * count, 'h100_s': h100_s * count,
                       'tpu_ideal_s': ideal['tpu'] * count, 'h100_ideal_s': ideal['h100'] * count})
    rows.sort(key=lambda row: -row['h100_ms_per_frame'])
    total = {'conv': 'frame (all convolutions)', 'count': totals['count'], 'gmacs': totals['gmacs'],
             'mbytes': totals['mbytes'], 'flop_per_byte': 2 * totals['gmacs'] * 1e3 / totals['mbytes'],
             'tpu_ms_per_frame': totals['tpu_s'] * 1e3, 'h100_ms_per_frame': totals['h100_s'] * 1e3,
             'tpu_fps': 1 / totals['tpu_s'], 'tpu_folded_fps': 1 / totals['tpu_folded_s'],
             'h100_fps': 1 / totals['h100_s'], 'tpu_fps_full_fill': 1 / totals['tpu_ideal_s'],
             'h100_fps_full_fill': 1 / totals['h100_ideal_s']}
    return rows + [total]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='1280x720', help='W x H')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/roofline.json)')
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.split('x'))
    rows = roofline_rows(frame_convs(args.variant, height, width))
    report('roofline', rows, args.json, markdown=args.markdown, variant=args.variant, size=args.size,
           devices={d.name: dataclasses.asdict(d) for d in (TPU_V5E, H100_SXM)},
           value_bytes=BF16_BYTES, estimate='on paper: vendors\' peak figures, the fill model of the module doc')


if __name__ == '__main__':
    main()
