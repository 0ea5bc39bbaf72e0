"""The PyTorch side of `benchmarks.layer_speed`, run as a script by an interpreter that has torch
(torch is no dependency of the project, so nothing here imports jax or mmp_jax):

    /path/to/torch/python benchmarks/torch_layers.py

The first line on stdin is a JSON list of layers, each `{'transposed', 'in', 'out', 'kernel',
'stride', 'padding', 'output_padding', 'height', 'width'}` (the input's H x W); it answers
`ready`. Each later line `time` runs every layer once on its own NCHW input, float32, under
`torch.no_grad()` with `torch.set_num_threads(2)`, and answers a JSON list of seconds, one per
layer; end of input ends it. The first `time` round warms up (oneDNN primitives, caches).
"""
import json
import sys
import time

import torch

THREADS = 2


def _layer(spec: dict) -> torch.nn.Module:
    if spec['transposed']:
        return torch.nn.ConvTranspose2d(spec['in'], spec['out'], spec['kernel'], spec['stride'],
                                        spec['padding'], spec['output_padding'])
    return torch.nn.Conv2d(spec['in'], spec['out'], spec['kernel'], spec['stride'], spec['padding'])


def main():
    torch.set_num_threads(THREADS)
    specs = json.loads(sys.stdin.readline())
    layers = [(_layer(s).eval(), torch.randn(1, s['in'], s['height'], s['width'])) for s in specs]
    print('ready', flush=True)
    for line in sys.stdin:
        assert line.strip() == 'time', line
        seconds = []
        with torch.no_grad():
            for layer, x in layers:
                start = time.perf_counter()
                layer(x)
                seconds.append(time.perf_counter() - start)
        print(json.dumps(seconds), flush=True)


if __name__ == '__main__':
    main()
