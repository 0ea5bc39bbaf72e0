"""One side of `benchmarks.gpu_suite`, ours or the original, in a process of its own: the suite
sends it jobs and kills it (its process group) when one outruns its time.

    python -m benchmarks.suite_worker ours|original --variant A9B10C18F8 --size 1280x720 \\
        --frames 8 --repeats 2 --stream-frames 24 --train-batch 8x10x256x256 --steps 3 \\
        [--original PATH/MMP-RNN] [--layers-json PATH]

Started, it prints `SUITE {"ready": true, "device": ..., versions}`; then for every line of job
settings (JSON, `gpu_suite.Job.settings`) on stdin it prints one `SUITE {row}` line with the
job's figures, or `{"status": "failed: ..."}` (the traceback on stderr); end of input ends it.
Other output of the libraries goes where it goes; only `SUITE ` lines are answers.

Jobs (`measure`):
- inference, ours: K = 1 (`chunk`) through `infer_speed.time_sides`, the driver the original
  goes through (one cell step and one reconstruction per frame, the frames already on the
  device, each step waited for; median seconds per frame over `--repeats` passes of
  `--frames` frames); K > 1 through `StreamingDeblurrer` (`accelerator_speed.inference_fps`:
  `--stream-frames` frames from the host, outputs fetched to it, the same steps per output
  frame). Convs in the formulation of `gpu_channel_multiple` (`formulations.using`; with
  `--platform`, that platform's formulations wherever it runs).
- inference, the original: `infer_speed.original_side` in its `OriginalMode`, through
  `time_sides` as ours at K = 1, on the same frames.
- training: our stage-2 step (`train_step_speed.step_seconds`, gradients clipped at 20 as the
  original's) or the original's (`original_train_step`), median of `--steps` steps after one.
- layers (ours): `layer_speed.device_table`, written to `--layers-json` with `_<dtype>_x<multiple>`
  before `.json`.
"""
import argparse
import dataclasses
import importlib.util
import json
import sys
import traceback
import types

import numpy as np

MARK = 'SUITE '


def answer(row: dict) -> None:
    print(MARK + json.dumps(row), flush=True)


def suite_frames(count: int, size: str) -> np.ndarray:
    """`count` seeded random uint8 frames `[count, H, W, 3]` of `size` ('WxH'): both sides get the same."""
    width, height = (int(n) for n in size.split('x'))
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), np.uint8)


def _batch(config) -> dict[str, np.ndarray]:
    from benchmarks.train_step_speed import random_batch  # noqa: PLC0415
    return random_batch(tuple(int(n) for n in config.train_batch.split('x')) + (3,))


def _training_row(config, seconds: float) -> dict:
    batch, frames = (int(n) for n in config.train_batch.split('x')[:2])
    return {'s_per_step': seconds, 'steps_per_s': 1 / seconds, 'frames_per_s': batch * frames / seconds}


class Ours:
    """Our side: JAX on its default device."""

    def __init__(self, config):
        import flax  # noqa: PLC0415
        import jax  # noqa: PLC0415
        import jaxlib  # noqa: PLC0415
        self.config, device = config, jax.devices()[0]
        self.versions = {'device': f'{device.platform}:{device.device_kind}', 'jax': jax.__version__,
                         'jaxlib': jaxlib.__version__, 'flax': flax.__version__}

    def run(self, job: dict) -> dict:
        from mmp_jax.models import formulations  # noqa: PLC0415
        platform = {'platform': self.config.platform} if self.config.platform else {}
        with formulations.using(gpu_channel_multiple=job['multiple'], **platform):
            return getattr(self, job['measure'])(job)

    def inference(self, job: dict) -> dict:
        from benchmarks.accelerator_speed import inference_fps  # noqa: PLC0415
        from benchmarks.infer_speed import our_side, time_sides  # noqa: PLC0415
        from mmp_jax.models.variants import model_from_variant  # noqa: PLC0415
        config = self.config
        if job['chunk'] == 1:
            side = dataclasses.replace(our_side(config.variant, suite_frames(config.frames, config.size), job['dtype']),
                                       parts={})
            seconds = time_sides({'ours': side}, config.frames, config.repeats)['ours']['s_per_frame']
            return {'driver': 'time_sides', 's_per_frame': seconds, 'fps': 1 / seconds}
        frames = suite_frames(config.stream_frames, config.size)[:, None]  # [T, 1 video, H, W, 3]
        fps = inference_fps(model_from_variant(config.variant, dtype=job['dtype']), frames, job['chunk'])
        return {'driver': 'StreamingDeblurrer', 's_per_frame': 1 / fps, 'fps': fps}

    def training(self, job: dict) -> dict:
        from benchmarks.original_train_step import CLIP_NORM  # noqa: PLC0415
        from benchmarks.train_step_speed import step_seconds  # noqa: PLC0415
        from mmp_jax.models.variants import model_from_variant  # noqa: PLC0415
        model = model_from_variant(self.config.variant, dtype=job['dtype'], remat=job['remat'],
                                   scan_unroll=job['unroll'])
        return _training_row(self.config, step_seconds(model, _batch(self.config), self.config.steps, CLIP_NORM))

    def layers(self, job: dict) -> dict:
        from benchmarks.layer_speed import device_table  # noqa: PLC0415
        width, height = (int(n) for n in self.config.size.split('x'))
        path = self.config.layers_json.removesuffix('.json') + f"_{job['dtype']}_x{job['multiple']}.json"
        return device_table(self.config.variant, height, width, job['dtype'], path)


class Original:
    """The original's side: PyTorch on CUDA where there is one, else the CPU. thop (imported by
    the original's model module, used only for its MAC counts) is stubbed where absent."""

    def __init__(self, config):
        import torch  # noqa: PLC0415
        if importlib.util.find_spec('thop') is None:
            sys.modules['thop'] = types.SimpleNamespace(profile=None)
        self.config = config
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.versions = {'device': torch.cuda.get_device_name() if self.device == 'cuda' else 'cpu',
                         'torch': torch.__version__, 'cuda': torch.version.cuda,
                         'cudnn': torch.backends.cudnn.version() if self.device == 'cuda' else None}

    def run(self, job: dict) -> dict:
        import torch  # noqa: PLC0415
        from benchmarks.infer_speed import OriginalMode  # noqa: PLC0415
        try:
            return getattr(self, job['measure'])(OriginalMode(**job['mode']))
        finally:
            if self.device == 'cuda':
                torch.cuda.empty_cache()  # leave the device's memory to the next job

    def inference(self, mode) -> dict:
        from benchmarks.infer_speed import original_side, time_sides  # noqa: PLC0415
        config = self.config
        side = original_side(config.original, config.variant, suite_frames(config.frames, config.size), self.device,
                             mode)
        seconds = time_sides({'original': dataclasses.replace(side, parts={})}, config.frames,
                             config.repeats)['original']['s_per_frame']
        return {'driver': 'time_sides', 's_per_frame': seconds, 'fps': 1 / seconds}

    def training(self, mode) -> dict:
        from benchmarks.original_train_step import original_step_seconds  # noqa: PLC0415
        config = self.config
        return _training_row(config, original_step_seconds(config.original, config.variant, _batch(config),
                                                           self.device, mode, config.steps))


def add_work_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the work both sides are given (`gpu_suite` takes them and passes them on)."""
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--size', default='1280x720', help='inference frame size, W x H')
    parser.add_argument('--frames', type=int, default=8, help='frames per timed pass, frame by frame (K = 1)')
    parser.add_argument('--repeats', type=int, default=2, help='timed passes, frame by frame (K = 1)')
    parser.add_argument('--stream-frames', type=int, default=24, help='frames streamed in chunks (K > 1)')
    parser.add_argument('--train-batch', default='8x10x256x256', help='B x T x P x P')
    parser.add_argument('--steps', type=int, default=3, help='timed training steps')
    parser.add_argument('--original', help='the outer MMP-RNN/ folder of the original (its side is skipped without)')
    parser.add_argument('--platform', help="ours computes this platform's formulations wherever it runs "
                        "('cuda': the GPU's on a CPU smoke test; default: the device's)")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('side', choices=('ours', 'original'))
    add_work_arguments(parser)
    parser.add_argument('--layers-json', help="where the layers job writes its table")
    return parser.parse_args(argv)


def main(argv=None):
    config = parse(argv)
    side = {'ours': Ours, 'original': Original}[config.side](config)
    answer({'ready': True, **side.versions})
    for line in sys.stdin:
        try:
            row = side.run(json.loads(line))
        except Exception as error:  # noqa: BLE001 (one mode failing, e.g. torch.compile, ends only its row)
            traceback.print_exc()
            row = {'status': f'failed: {type(error).__name__}: {error}'[:400]}
        answer(row)


if __name__ == '__main__':
    main()
