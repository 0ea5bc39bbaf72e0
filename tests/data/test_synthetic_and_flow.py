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
    assert not set(synthetic.PICTURES['train']) & set(synthetic.PICTURES['held_out'])
    shown = []
    picture = synthetic._picture
    monkeypatch.setattr(synthetic, '_picture', lambda name, rng: shown.append(name) or picture(name, rng))
    for seed in range(4):
        held_out = make_scene(seed, length=3, photos='held_out')
        assert held_out.frames.shape == (3, 64, 96, 3)
    assert shown and set(shown) <= set(synthetic.PHOTOS['held_out'])
    shown.clear()
    for seed in range(4):
        make_scene(seed, length=3)
    assert set(shown) <= set(synthetic.PHOTOS['train']) | {synthetic.DEAD_LEAVES}
    assert synthetic.DEAD_LEAVES in shown and set(shown) & set(synthetic.PHOTOS['train'])  # both kinds
    with pytest.raises(ValueError, match="unknown photos 'test'"):
        make_scene(0, photos='test')


def test_dead_leaves_are_drawn_from_the_seed_with_edges_at_every_scale():
    from mmp_jax.data import synthetic  # noqa: PLC0415
    a, b = (synthetic._dead_leaves(np.random.default_rng(seed), size=128, count=2_000) for seed in (0, 0))
    c = synthetic._dead_leaves(np.random.default_rng(1), size=128, count=2_000)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a.sum(-1) == 0).mean() < 0.05  # the disks cover the picture
    grey = a.mean(-1)
    edges = np.abs(np.diff(grey, axis=1)) > 20
    assert 0.02 < edges.mean() < 0.5  # flat disks with sharp borders, not noise
    coarse = grey[::4, ::4]
    assert np.abs(np.diff(coarse, axis=1)).mean() > 5  # edges remain at a coarser scale
