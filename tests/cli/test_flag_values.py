"""Numeric flags are checked when the command line is read, before any work, by a one-line
error naming the flag (issue 27: `--fps nan` failed after the whole run, `--ends drop` on 4
frames said only "no frames to write"); one meaning per flag name (`--crf` is tools.deblur's
H.264 quality; the exporter's camera response file is `--camera-response`)."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.cli.test_deblur import converted  # noqa: F401 (a fixture)
from mmp_jax.cli import export_tfrecords
from mmp_jax.cli import deblur
from tests.conftest import REPO



def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err, err
    return err.splitlines()[-1]


@pytest.mark.parametrize('flag, value', [('--fps', 'nan'), ('--fps', 'inf'), ('--fps', '0'), ('--fps', 'x'),
                                         ('--crf', '99'), ('--crf', '-1')])
def test_deblur_refuses_bad_numbers_before_anything(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # no checkpoint, no input: the command line alone is refused
        deblur.main(['--checkpoint', str(tmp_path / 'none'), '--input', str(tmp_path / 'none'),
                     '--output', str(tmp_path / 'out.mp4'), flag, value])
    assert stop.value.code == 2
    assert f'argument {flag}: {value}: must be a finite' in _error(capsys)


def _frames(folder, count: int):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t in range(count):
        cv2.imwrite(str(folder / f'{t:03d}.png'), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return folder


def test_ends_drop_on_too_few_frames_says_how_many_before_writing(tmp_path, converted, capsys):  # noqa: F811
    enough, short = _frames(tmp_path / 'six', 6), _frames(tmp_path / 'four', 4)
    out = tmp_path / 'out'
    assert deblur.main(['--checkpoint', str(converted), '--quiet', '--ends', 'drop', '--input', str(enough),
                        str(short), '--output', str(out)]) == 2
    assert _error(capsys) == (f'deblur: {short}: 4 frames; --ends drop writes frames 2..T-3 of T, so it needs '
                              f'at least 5')
    assert not out.exists()  # the six-frame input, first, was not deblurred either


EXPORT = ['--source', 'synthetic', '--out', 'never-written']


@pytest.mark.parametrize('flag, value', [('--seed', '-1'), ('--num-shards', '0'), ('--workers', '0'),
                                         ('--num-sequences', '0'), ('--frames-per-sequence', '0'),
                                         ('--height', '-8'), ('--width', '8'), ('--max-speed', 'nan'),
                                         ('--max-speed', '-1'), ('--blur-frames', '1')])
def test_export_refuses_bad_numbers_before_anything(flag, value, capsys):
    with pytest.raises(SystemExit) as stop:
        export_tfrecords.parse_args([*EXPORT, flag, value])
    assert stop.value.code == 2 and f'argument {flag}: {value}: must be a finite' in _error(capsys)


def test_crf_means_one_thing(capsys):
    """The exporter's camera response file is `--camera-response`; its old `--crf` is refused."""
    assert export_tfrecords.parse_args([*EXPORT, '--camera-response', 'crf.npy']).crf == 'crf.npy'
    with pytest.raises(SystemExit):
        export_tfrecords.parse_args([*EXPORT, '--crf', 'crf.npy'])
    assert 'unrecognized arguments: --crf crf.npy' in _error(capsys)


def test_model_stats_refuses_a_size_it_cannot_count(tmp_path):
    """20000 x 100000000 would allocate hundreds of TiB (bilinear upsampling's matrix): refused."""
    run = subprocess.run([sys.executable, '-m', 'tools.model_stats', '--height', '100000000'], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert run.returncode == 2 and run.stderr.count('\n') == 1  # one line, as every command's flag errors
    assert 'flag --height=100000000: 100000000 is not an integer in the range [16, 16384]' in run.stderr
