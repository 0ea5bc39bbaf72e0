import cv2
import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')
from mmp_jax.data import tfds_builders  # noqa: E402,F401 (registers the builders)


def _bsd_tree(root, sequences=2, frames=3):
    rng = np.random.default_rng(0)
    pixels = {}
    for split in ('train', 'test'):
        for s in range(sequences):
            for kind in ('Blur', 'Sharp'):
                folder = root / split / f'{s:03d}' / kind / 'RGB'
                folder.mkdir(parents=True)
                for t in range(frames):
                    image = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
                    cv2.imwrite(str(folder / f'{t:08d}.png'), image[..., ::-1])
                    pixels[(split, f'{s:03d}', kind, t)] = image
    return pixels


def test_tfds_load_bsd_from_a_manual_dir(tmp_path):
    pixels = _bsd_tree(tmp_path / 'BSD_2ms16ms')
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'BSD_2ms16ms'))
    dataset = tfds.load('bsd', split='test', data_dir=str(tmp_path / 'tfds'), try_gcs=False,
                        download_and_prepare_kwargs={'download_config': config})
    examples = sorted(tfds.as_numpy(dataset), key=lambda e: (e['sequence'], e['index']))
    assert [(e['sequence'].decode(), int(e['index'])) for e in examples] == [
        (f'{s:03d}', t) for s in range(2) for t in range(3)]
    for example in examples:
        key = ('test', example['sequence'].decode(), 'Blur', int(example['index']))
        np.testing.assert_array_equal(example['blurry'], pixels[key])


def test_tfds_gopro_reads_blur_gamma_unless_told(tmp_path):
    for name, value in (('blur_gamma', 1), ('blur', 2), ('sharp', 3)):
        folder = tmp_path / 'GOPRO' / 'test' / 'GOPR0001_11_00' / name
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / '000001.png'), np.full((8, 12, 3), value, np.uint8))
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'GOPRO'))
    blurry = {}
    for name in ('gopro', 'gopro/blur'):
        dataset = tfds.load(name, split='test', data_dir=str(tmp_path / 'tfds'), try_gcs=False,
                            download_and_prepare_kwargs={'download_config': config})
        [example] = list(tfds.as_numpy(dataset))
        blurry[name] = int(example['blurry'][0, 0, 0])
        assert example['sharp'][0, 0, 0] == 3
    assert blurry == {'gopro': 1, 'gopro/blur': 2}
