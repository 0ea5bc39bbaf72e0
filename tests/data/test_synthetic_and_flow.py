import cv2
import numpy as np
import pytest

from mmp_jax.data.flow import dis_backend, exact_backend
from mmp_jax.data.motion import window_mmp
from mmp_jax.data.synthetic import make_scene


def _warp_error(target, source, flow):
    """Mean |target - source sampled at p + flow(p)| away from the borders."""
    h, w = target.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(source.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
    return np.abs(warped - target)[8:-8, 8:-8].mean()


def test_scenes_are_seeded():
    a, b, c = make_scene(3, length=6), make_scene(3, length=6), make_scene(4, length=6)
    assert a.frames.shape == (6, 64, 96, 3) and a.frames.dtype == np.uint8
    assert a.forward.shape == a.backward.shape == (5, 64, 96, 2)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.forward, b.forward)
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_exact_flow_explains_the_motion(seed):
    scene = make_scene(seed, length=4, height=96, width=128)
    for t in range(3):
        right = _warp_error(scene.frames[t], scene.frames[t + 1], scene.forward[t])
        wrong = _warp_error(scene.frames[t], scene.frames[t + 1], -scene.forward[t])
        assert right < wrong / 3
        assert _warp_error(scene.frames[t + 1], scene.frames[t], scene.backward[t]) < wrong / 3


def test_exact_backend_serves_windows_of_its_scene():
    scene = make_scene(0, length=8)
    backend = exact_backend(scene.frames, scene.forward, scene.backward)
    forward, backward = backend(scene.frames[2:6])
    assert np.array_equal(forward, scene.forward[2:5]) and np.array_equal(backward, scene.backward[2:5])
    with pytest.raises(ValueError, match='not part of the scene'):
        backend(scene.frames[::-1][:3])


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_dis_mmp_is_close_to_exact(seed):
    """The data issue's bound: mean |MMP(DIS) - MMP(exact)| < 0.05 (measured ~0.01)."""
    scene = make_scene(seed, length=11, height=96, width=128)
    exact = window_mmp(scene.forward, scene.backward)
    dis = window_mmp(*dis_backend()(scene.frames))
    assert exact.mean() > 0.02  # the scene moves
    assert np.abs(dis - exact).mean() < 0.05


def test_held_out_scenes_show_only_photos_no_training_scene_shows(monkeypatch):
    from mmp_jax.data import synthetic  # noqa: PLC0415
    assert not set(synthetic.PHOTOS['train']) & set(synthetic.PHOTOS['held_out'])
    shown = []
    photo = synthetic._photo
    monkeypatch.setattr(synthetic, '_photo', lambda name: shown.append(name) or photo(name))
    for seed in range(4):
        held_out = make_scene(seed, length=3, photos='held_out')
        assert held_out.frames.shape == (3, 64, 96, 3)
    assert shown and set(shown) <= set(synthetic.PHOTOS['held_out'])
    shown.clear()
    make_scene(0, length=3)
    assert shown and set(shown) <= set(synthetic.PHOTOS['train'])
    with pytest.raises(ValueError, match="unknown photos 'test'"):
        make_scene(0, photos='test')
