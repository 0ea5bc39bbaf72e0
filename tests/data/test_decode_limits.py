"""Decoding bounded by declared sizes: image files, videos and records whose header states more
pixels than the limit are refused before any pixel is decoded (a few hundred KB of PNG would
otherwise take tens of GB), with one line naming the path, in every command that reads frames."""
import pathlib
import struct
import zlib

import cv2
import numpy as np
import pytest
from etils import epath

from mmp_jax.cli import score
from mmp_jax.data import decode_limits, sources, tfrecords
from mmp_jax.cli import export_tfrecords


def png_bomb(path: pathlib.Path, width: int = 12000, height: int = 12000) -> pathlib.Path:
    """A grey PNG of zeros, `width` x `height` (144 million pixels by default) in about 100 KB,
    written row by row (never held in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    packer, row = zlib.compressobj(9), bytes(1 + width)  # filter byte 0, then the row
    body = b''.join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', body) + chunk(b'IEND', b''))
    return path


def video_bomb(path: pathlib.Path) -> pathlib.Path:
    """A video (YUV4MPEG, whatever the suffix) whose header states 12000x12000 frames."""
    path.write_bytes(b'YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n' + bytes(1000))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def test_a_png_bomb_is_refused_from_its_header(tmp_path):
    bomb = png_bomb(tmp_path / 'bomb.png')
    assert bomb.stat().st_size < 500_000
    with pytest.raises(sources.SourceError, match=r'bomb.png: 12000x12000 frames \(144.0 million pixels\) are over '
                                                  r'the limit of 100 million; --max-pixels raises it'):
        sources.read_frame(bomb)
    with pytest.raises(sources.SourceError, match='over 179 million pixels, more than any --max-pixels allows'):
        sources.read_frame(png_bomb(tmp_path / 'huge.png', 20000, 20000))


def test_the_limit_is_the_callers(tmp_path):
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((8, 12, 3), np.uint8))
    assert sources.read_frame(tmp_path / 'small.png', max_pixels=96).shape == (8, 12, 3)
    assert decode_limits.image_size(epath.Path(tmp_path / 'small.png')) == (12, 8)  # the paths evaluation gives
    with pytest.raises(sources.SourceError, match='8x12|12x8'):
        sources.read_frame(tmp_path / 'small.png', max_pixels=95)
    with pytest.raises(sources.SourceError, match='small.png: 12x8 frames'):
        list(sources.open_frames(tmp_path, max_pixels=95).frames)


def test_a_video_bomb_is_refused_before_decoding(tmp_path):
    with pytest.raises(sources.SourceError, match='clip.mp4: 12000x12000 frames'):
        sources.open_frames(video_bomb(tmp_path / 'clip.mp4'))


def test_a_record_png_bomb_is_refused(tmp_path):
    data = png_bomb(tmp_path / 'bomb.png').read_bytes()
    with pytest.raises(ValueError, match="a record's PNG: 12000x12000 frames"):
        tfrecords.decode_png(data)
    with pytest.raises(ValueError, match='not a PNG'):
        tfrecords.decode_png(b'GIF89a' + bytes(20))
    assert tfrecords.decode_png(tfrecords.encode_png(np.ones((4, 6, 3), np.uint8))).shape == (4, 6, 3)


def test_the_exporter_refuses_a_bomb_in_one_line(tmp_path, capsys):
    frames = tmp_path / 'frames'
    frames.mkdir()
    png_bomb(frames / '000.png')
    out = tmp_path / 'records'
    assert export_tfrecords.main(['--source', 'frames', '--input', str(frames), '--flow', 'dis',
                                  '--out', str(out), '--quiet']) == 2
    assert '000.png: 12000x12000 frames' in _one_line(capsys) and not out.exists()
    assert export_tfrecords.main(['--source', 'video', '--input', str(video_bomb(tmp_path / 'v.mp4')),
                                  '--flow', 'dis', '--out', str(out), '--quiet']) == 2
    assert 'v.mp4: 12000x12000 frames' in _one_line(capsys) and not out.exists()


def test_score_refuses_a_bomb_in_one_line(tmp_path, capsys):
    for folder in ('outputs/seq', 'sharp/seq'):
        (tmp_path / folder).mkdir(parents=True)
        for t in range(5):
            cv2.imwrite(str(tmp_path / folder / f'{t}.png'), np.zeros((8, 12, 3), np.uint8))
    png_bomb(tmp_path / 'outputs/seq/2.png')
    assert score.main(['--outputs', str(tmp_path / 'outputs'), '--sharp', str(tmp_path / 'sharp')]) == 2
    assert '2.png: 12000x12000 frames' in _one_line(capsys)


def test_max_pixels_is_checked_when_read(capsys):
    with pytest.raises(SystemExit) as stop:
        score.parse_args(['--outputs', 'a', '--sharp', 'b', '--max-pixels', '0'])
    assert stop.value.code == 2 and '--max-pixels: 0: must be a finite integer at least 1' in capsys.readouterr().err
    assert decode_limits.MAX_PIXELS_CEILING > decode_limits.DEFAULT_MAX_PIXELS > 3 * 7680 * 4320
