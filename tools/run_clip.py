"""Runs MMP-RNN (random, seeded weights) on a folder of frames: shapes, speed and a picture.

    python -m tools.run_clip --config=configs/demo.py [--config.model.variant=A9B10C18F8]

Until trained weights exist (training lands with its own issue) this shows that the network
runs end to end on real footage: it prints the compile time and the median seconds per frame
of 3 runs, and writes `<output_dir>/clip_strip.png` (blurry | output | MMP-Net prior as a heat
map) for the first frame that has an output. With random weights the output is not deblurred.
"""
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from ml_collections import config_flags

from data_pipeline.sources import SourceError, read_all
from mmp_jax.models.macs import count_params
from mmp_jax.models.mmp_net import MMPNet
from mmp_jax.models.mmp_rnn import DOWNSAMPLE
from mmp_jax.models.variants import model_from_config
from mmp_jax.visualize import heat_map, to_uint8, write_png

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/demo.py', 'run configuration')
REPEATS = 3


def run(config) -> dict:
    frames_u8 = read_all(config.frames_dir)
    height, width = (s - s % DOWNSAMPLE for s in frames_u8.shape[1:3])  # crop to multiples of 4
    frames = jnp.asarray(frames_u8[None, :, :height, :width].astype(np.float32) / 255.0)
    model = model_from_config(config.model)
    if frames.shape[1] < model.window:
        raise SourceError(f'{config.frames_dir}: {frames.shape[1]} frames; the model needs at '
                          f'least {model.window}')
    variables = jax.jit(model.init)(jax.random.key(config.seed), frames)
    apply = jax.jit(model.apply)
    start = time.perf_counter()
    outputs = apply(variables, frames).block_until_ready()
    compile_s = time.perf_counter() - start
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        apply(variables, frames).block_until_ready()
        runs.append(time.perf_counter() - start)

    centre = model.past_frames
    panels = [frames_u8[centre, :height, :width], to_uint8(np.asarray(outputs[0, 0]))]
    if 'prior' in variables['params']['cell']:
        prior_vars = {c: variables[c]['cell']['prior'] for c in ('params', 'batch_stats')}
        prior = jax.jit(MMPNet().apply)(prior_vars, frames[:, centre] - 0.5)
        panels.append(heat_map(np.asarray(prior[0])))
    strip_path = pathlib.Path(config.output_dir) / 'clip_strip.png'
    write_png(strip_path, np.concatenate(panels, axis=1))
    return {'variant': config.model.variant, 'frames': frames.shape[1], 'outputs': outputs.shape[1],
            'size': f'{width}x{height}', 'params': count_params(variables['params']),
            'compile_s': compile_s, 's_per_frame': float(np.median(runs)) / outputs.shape[1],
            'strip': str(strip_path)}


def main(argv):
    del argv
    try:
        result = run(_CONFIG.value)
    except (SourceError, ValueError) as error:
        print(f'run_clip: {error}', file=sys.stderr)
        return 2
    print(f'{"variant":<12} {"frames":>6} {"outputs":>7} {"size":>9} {"params":>10} '
          f'{"compile s":>9} {"s/frame":>8}')
    print(f'{result["variant"]:<12} {result["frames"]:>6} {result["outputs"]:>7} {result["size"]:>9} '
          f'{result["params"]:>10,} {result["compile_s"]:>9.1f} {result["s_per_frame"]:>8.3f}')
    print(f'wrote {result["strip"]} (blurry | output | prior; random weights, not yet trained)')
    return 0


if __name__ == '__main__':
    app.run(main)
