"""Hostile and borderline inputs of the commands (issue 27's adversarial pass): a FIFO or a device
where a frame or a video is expected (which blocked the reader for ever), a file name holding a
newline, a frame OpenCV warns about, frames too small for MMP-Net: each one line on stderr that
names the path, exit status 2, nothing written."""
import os
import pathlib
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

from mmp_jax.errors import one_line
from mmp_jax.data import sources
from mmp_jax.models.variants import parse_variant
from tests.cli.test_deblur import converted, reference  # noqa: F401 (fixtures)
from mmp_jax.cli import deblur, score
from tests.conftest import REPO


def _frames(folder: pathlib.Path, count: int = 5, height: int = 20, width: int = 24) -> pathlib.Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(count):
        cv2.imwrite(str(folder / f'{t:04d}.png'), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return folder


def _one_line(captured) -> str:
    err = captured.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='no FIFOs')
def test_a_fifo_or_a_device_is_refused_not_waited_on(tmp_path):
    """A FIFO named as a frame or a video: Pillow's header reader and FFmpeg opened it and waited
    for a writer for ever; a link to /dev/zero is refused as a device."""
    frames = _frames(tmp_path / 'frames')
    (frames / '0002.png').unlink()
    os.mkfifo(frames / '0002.png')
    os.mkfifo(tmp_path / 'video.mp4')
    script = textwrap.dedent(f'''
        from mmp_jax.data import sources
        for path in ({str(frames)!r}, {str(tmp_path / 'video.mp4')!r}):
            try:
                sources.open_frames(path)
            except sources.SourceError as error:
                print(error)
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
    assert done.stdout.splitlines() == [f'{frames / "0002.png"}: is a FIFO, not a file',
                                        f'{tmp_path / "video.mp4"}: is a FIFO, not a file'], done
    if os.path.exists('/dev/zero'):
        (tmp_path / 'zero.mp4').symlink_to('/dev/zero')
        with pytest.raises(sources.SourceError, match='zero.mp4: is a device, not a file'):
            sources.open_frames(tmp_path / 'zero.mp4')
    (frames / '0002.png').unlink()
    (frames / '0002.png').mkdir()
    with pytest.raises(sources.SourceError, match='0002.png: is a folder, not a file'):
        sources.open_frames(frames)


def test_a_newline_in_a_name_stays_one_line(tmp_path, capfd):
    outputs, sharp = _frames(tmp_path / 'out' / 'seq'), _frames(tmp_path / 'sharp' / 'seq')
    (outputs / '0002.png').unlink()
    (outputs / '0002\n.png').write_bytes(b'not a PNG')  # the one frame of 5 scored
    assert score.main(['--outputs', str(outputs.parent), '--sharp', str(sharp.parent)]) == 2
    assert _one_line(capfd).startswith(f'score: {outputs}/0002\\n.png: cannot be read as an image')
    assert one_line('x\ny\r\x1bz ü') == 'x\\ny\\r\\x1bz ü'


def test_opencv_warnings_do_not_reach_stderr(tmp_path, capfd):
    """A 32-bit float TIFF that Pillow reads and OpenCV cannot: OpenCV's own warning went to
    stderr before our line."""
    outputs, sharp = _frames(tmp_path / 'out' / 'seq'), _frames(tmp_path / 'sharp' / 'seq')
    (outputs / '0002.png').unlink()
    Image.fromarray(np.zeros((20, 24), np.float32)).save(outputs / '0002.tif')
    assert score.main(['--outputs', str(outputs.parent), '--sharp', str(sharp.parent)]) == 2
    assert _one_line(capfd) == f'score: {outputs / "0002.tif"}: cannot be read as an image'


@pytest.mark.parametrize('height,width,ok', [(1, 1, False), (12, 40, False), (13, 17, True)])
def test_frames_too_small_name_the_input_and_its_size(tmp_path, converted, capsys, height, width, ok):  # noqa: F811
    frames = _frames(tmp_path / 'frames', height=height, width=width)
    code = deblur.main(['--checkpoint', str(converted), '--quiet', '--input', str(frames),
                        '--output', str(tmp_path / 'out')])
    if ok:
        assert code == 0 and len(list((tmp_path / 'out').iterdir())) == 5
        return
    assert code == 2 and not (tmp_path / 'out').exists()
    assert _one_line(capsys) == (f'deblur: {frames}: frames of {width}x{height} are too small for MMP-Net '
                                 '(at least 13 pixels a side)')


@pytest.mark.parametrize('name', ['A999999B1C8F5', 'A1B1C99999999F5', 'A1B1C8F100000'])
def test_a_variant_too_large_to_build_is_refused_by_name(name):
    """`model_stats --variant A999999B1C8F5` traced for minutes, `C99999999` ended in a 57-line
    out-of-memory traceback; a checkpoint's config names its variant the same way."""
    with pytest.raises(ValueError, match=f"variant '{name}': at most 256 blocks, 1024 channels and 256 frames"):
        parse_variant(name)
    assert parse_variant('A9B10C18F8').n_features == 18
