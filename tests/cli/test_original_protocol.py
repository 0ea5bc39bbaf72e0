"""The original's test protocol, end to end, against figures the original printed.

`tests/references/original_trainer_checkpoint.pth.tar` (the original trainer's file) and the figures
its `train/test.py::_test_torch` printed for it on the BSD-layout test set of
`original_reference.bsd_test_set` were made by `tests/references/make_eval_reference.py`. Here, as a
user would, without torch: the test set is exported to records, the file converted by the CLI
and scored by `python -m mmp_jax.main --mode=eval --config.eval.checkpoint=...`.
"""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests import original_reference as ref
from mmp_jax.cli import convert_checkpoint, export_tfrecords
from tests.conftest import REPO



@pytest.mark.slow
def test_a_converted_trainer_checkpoint_scores_as_the_original_test(tmp_path):
    pytest.importorskip('tensorflow')
    root = ref.write_bsd_test_set(tmp_path / 'BSD_2ms16ms')
    records, ckpt, workdir = tmp_path / 'records', tmp_path / 'converted', tmp_path / 'run'
    assert export_tfrecords.main(['--source', 'bsd', '--input', str(root), '--split', 'test', '--out', str(records),
                                  '--workers', '1', '--num-shards', '2', '--quiet']) == 0
    assert convert_checkpoint.main(['--mmp-rnn', str(ref.TRAINER_CHECKPOINT), '--variant', 'A2B2C8F8',
                                    '--trained-on', 'bsd', '--out', str(ckpt)]) == 0
    run = subprocess.run([sys.executable, '-m', 'mmp_jax.main', '--config=configs/bsd.py', f'--workdir={workdir}',
                          '--mode=eval', f'--config.eval.checkpoint={ckpt}', f'--config.data.eval_records={records}',
                          '--config.eval.save_outputs=True', '--config.eval.save_videos=True'],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.startswith('mmprnn: PSNR ') and ' s per frame on cpu x ' in summary, summary

    original = json.loads(ref.TEST_FIGURES.read_text())
    ours = json.loads((workdir / 'eval' / 'metrics.json').read_text())['mmprnn']
    assert ours['count'] == original['count'] == 2 * (ref.BSD_TEST_FRAMES - 4)
    assert abs(ours['psnr'] - original['psnr']) <= 2e-4
    assert abs(ours['ssim'] - original['ssim']) <= 1e-5
    assert ours['quantization'] == 'truncate' and ours['seconds_per_frame'] > 0
    assert ours['checkpoint'] == str(ckpt) and set(ours['sequences']) == set(ref.BSD_SEQUENCES)

    # every scored frame written once, named by its index in the sequence; the original's frames
    outputs = workdir / 'eval' / 'outputs'
    scored = [f'{t:08d}.png' for t in range(2, ref.BSD_TEST_FRAMES - 2)]
    for name in ref.BSD_SEQUENCES:
        assert sorted(p.name for p in (outputs / name).iterdir()) == scored
    stored = np.load(ref.TEST_OUTPUTS)
    for key in stored.files:  # BGR, as both sides' PNGs read back with cv2
        ours_frame = cv2.imread(str(outputs / ref.BSD_SEQUENCES[0] / f'{key}.png')).astype(int)
        assert np.abs(ours_frame - stored[key]).max() <= 1, key
    video = cv2.VideoCapture(str(outputs / f'{ref.BSD_SEQUENCES[0]}.mp4'))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(scored)
    assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 3 * ref.WIDTH  # input | output | sharp
