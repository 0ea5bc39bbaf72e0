"""The command-line tools, run as a user runs them."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests import original_reference as ref


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True,
                          cwd=cwd or ref.DATA_DIR.parents[1])


def test_model_stats_json_line():
    result = _run('tools.model_stats', '--variant', 'A9B10C18F8', '--height', '720',
                  '--width', '1280', '--json')
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats['params'] == 4079940 and stats['gmacs'] == pytest.approx(263.99, abs=0.01)


def test_model_stats_refuses_a_bad_variant():
    result = _run('tools.model_stats', '--variant', 'A9B10')
    assert result.returncode == 2
    assert "unknown variant 'A9B10'" in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.slow
def test_run_clip_writes_the_strip(tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(frames / f'{i}.png'), rng.integers(0, 256, (18, 22, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    result = _run('tools.run_clip', '--config=configs/demo.py', '--config.model.variant=A1B1C4F5',
                  f'--config.frames_dir={frames}', f'--config.output_dir={out}')
    assert result.returncode == 0, result.stderr
    strip = cv2.imread(str(out / 'clip_strip.png'))
    assert strip.shape == (16, 3 * 20, 3)  # cropped to multiples of 4; three panels


def test_run_clip_on_an_empty_folder_fails_cleanly(tmp_path):
    out = tmp_path / 'out'
    result = _run('tools.run_clip', '--config=configs/demo.py', f'--config.frames_dir={tmp_path}',
                  f'--config.output_dir={out}')
    assert result.returncode == 2
    assert f'{tmp_path}: no frames' in result.stderr and 'Traceback' not in result.stderr
    assert not out.exists()
