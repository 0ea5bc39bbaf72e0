import cv2
import numpy as np

from mmp_jax.visualize import heat_map, write_png


def test_heat_map_is_rgb_and_ordered():
    prior = np.linspace(0, 1, 16).reshape(4, 4, 1)
    rgb = heat_map(prior)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert rgb[-1, -1].sum() > rgb[0, 0].sum()  # high motion is brighter


def test_write_png_round_trips_and_leaves_no_temporary(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / 'sub' / 'a.png', image)
    back = cv2.cvtColor(cv2.imread(str(tmp_path / 'sub' / 'a.png')), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, image)
    assert [p.name for p in (tmp_path / 'sub').iterdir()] == ['a.png']
