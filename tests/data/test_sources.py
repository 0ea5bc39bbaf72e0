import cv2
import numpy as np
import pytest

from mmp_jax.data.sources import SourceError, list_frames, read_all


def _write(path, height=8, width=12, value=0):
    cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))


def test_frames_in_natural_order_as_rgb(tmp_path):
    for i in (10, 2, 1):
        _write(tmp_path / f'frame{i}.png', value=i)
    (tmp_path / 'notes.txt').write_text('not a frame')
    assert [p.name for p in list_frames(tmp_path)] == ['frame1.png', 'frame2.png', 'frame10.png']
    frames = read_all(tmp_path)
    assert frames.shape == (3, 8, 12, 3) and frames.dtype == np.uint8
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_bad_folders_name_the_path_and_problem(tmp_path):
    with pytest.raises(SourceError, match=f'{tmp_path}: no frames'):
        read_all(tmp_path)
    with pytest.raises(SourceError, match='no such file or folder'):
        read_all(tmp_path / 'missing')
    _write(tmp_path / '0.png')
    (tmp_path / '1.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(SourceError, match=r'1.png: cannot be read as an image'):
        read_all(tmp_path)
    _write(tmp_path / '1.png', width=14)
    with pytest.raises(SourceError, match=r'1.png: size 14x8 differs from 0.png \(12x8\)'):
        read_all(tmp_path)


def _gopro_tree(root):
    """A GOPRO benchmark tree whose blur_gamma, blur and sharp frames hold 1, 2 and 3."""
    for name, value in (('blur_gamma', 1), ('blur', 2), ('sharp', 3)):
        folder = root / 'test' / 'GOPR0001_11_00' / name
        folder.mkdir(parents=True)
        _write(folder / '000001.png', value=value)
    return root


def test_gopro_reads_blur_gamma_by_default_as_the_paper(tmp_path):
    from mmp_jax.data.sources import gopro_sequences  # noqa: PLC0415
    root = _gopro_tree(tmp_path)
    default, plain = gopro_sequences(root, 'test')[0], gopro_sequences(root, 'test', 'blur')[0]
    assert read_all(default.blurry)[0, 0, 0, 0] == 1 and read_all(plain.blurry)[0, 0, 0, 0] == 2
    assert read_all(default.sharp)[0, 0, 0, 0] == 3
    with pytest.raises(SourceError, match="unknown GOPRO blurry folder 'blurred'"):
        gopro_sequences(root, 'test', 'blurred')
