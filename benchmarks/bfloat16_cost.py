"""What bfloat16 compute costs in quality: PSNR of bfloat16 outputs against float32 outputs of the
same model, and the evaluation protocol's PSNR / SSIM against the sharp frames in each dtype.

    python -m benchmarks.bfloat16_cost [--random-variant A9B10C18F8] [--frames 20]

Frames: the BSD-layout test set of `tests/original_reference.bsd_test_set` (two 150-frame
sequences of a moving noise texture, 36 x 44). Models: the original trainer's tiny checkpoint
(`tests/references/original_trainer_checkpoint.pth.tar`, A2B2C8F8 trained briefly), converted as a user
would, scored (float32 should give the original's own figures, recorded beside them) by
`mmp_jax.evaluate.evaluate_mmprnn` (the original's test protocol: chunks of 20,
frames 2..T-3, truncating quantisation); and `--random-variant` with random weights (no protocol
scores: they would mean nothing), for the drift of a deep network. PSNR vs float32: the outputs of
one `--frames`-frame chunk per sequence, clipped to [0, 1], over both sequences.
"""
import argparse
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report
from mmp_jax import metrics, sharding
from mmp_jax.checkpoint import load_model
from mmp_jax.cli import convert_checkpoint
from mmp_jax.evaluate import evaluate_mmprnn
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_variant
from tests import original_reference as ref

TRAINER_VARIANT = 'A2B2C8F8'


def trainer_model() -> tuple[MMPRNN, dict]:
    """The original trainer's checkpoint, converted by the CLI, as (model, variables)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / 'converted'
        assert convert_checkpoint.main(['--mmp-rnn', str(ref.TRAINER_CHECKPOINT), '--variant', TRAINER_VARIANT,
                                        '--trained-on', 'bsd', '--out', str(out)]) == 0
        model, variables, _ = load_model(out)
    return model, jax.device_get(variables)


def outputs(model: MMPRNN, variables, chunks: np.ndarray) -> np.ndarray:
    """Outputs of blurry chunks uint8 `[N, T, H, W, 3]`, clipped to [0, 1] (float32)."""
    return np.clip(np.asarray(jax.jit(model.apply)(variables, jnp.asarray(chunks / 255.0, jnp.float32))), 0, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--random-variant', default='A9B10C18F8')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    # cv2's BGR -> RGB, as the records hold them
    sequences = {name: {'blurry': blurry[..., ::-1], 'sharp': sharp[..., ::-1]}
                 for name, (blurry, sharp) in ref.bsd_test_set().items()}
    chunks = np.stack([seq['blurry'][:args.frames] for seq in sequences.values()])
    mesh = sharding.make_mesh()
    random = model_from_variant(args.random_variant, scan_unroll=False)  # a loop: compiles faster, same outputs
    trainer, trainer_variables = trainer_model()
    models = {f'original trainer checkpoint ({TRAINER_VARIANT})': (trainer.clone(scan_unroll=False), trainer_variables),
              f'{args.random_variant}, random weights': (random, jax.jit(random.init)(
                  jax.random.key(0), jnp.zeros((1, random.window, 32, 32, 3))))}
    rows = []
    for name, (model, variables) in models.items():
        reference = outputs(model, variables, chunks)
        for dtype in ('float32', 'bfloat16'):
            typed = model.clone(dtype=dtype)
            row = {'model': name, 'dtype': dtype}
            if dtype != 'float32':
                row['psnr_vs_float32'] = metrics.psnr(255 * outputs(typed, variables, chunks), 255 * reference)
            if 'trainer' in name:
                scores, _ = evaluate_mmprnn(typed, variables, sequences, mesh, sample_images=0)
                row.update(protocol_psnr=scores['psnr'], protocol_ssim=scores['ssim'], scored_frames=scores['count'])
            rows.append(row)
            print(row, flush=True)
    original = json.loads(ref.TEST_FIGURES.read_text())
    report('bfloat16_cost', rows, args.json, frames=args.frames, size='36x44',
           original_protocol={'psnr': original['psnr'], 'ssim': original['ssim']})


if __name__ == '__main__':
    main()
