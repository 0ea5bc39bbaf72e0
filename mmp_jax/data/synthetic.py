"""Seeded high-frame-rate scenes with exact optical flow, from photos shipped with
scikit-image (nothing is downloaded) and dead leaves pictures: the demo data and the tests' data.
Scenes of the `'train'` pictures are what the demo trains on; scenes of the `'held_out'` photos,
which no training scene shows, are what it scores a model on as pictures it never saw.

A training scene's pictures are drawn from its ten photos and, three times in five, a dead leaves
picture drawn anew from the scene's seed (opaque disks of every size over one another: edges at
every scale and no photo's particular textures, so that the model learns deblurring more than its
photos; held-out photos gain ~0.3 dB more with them, benchmarks/README.md).

A scene is a background picture (extended by mirrored copies, so that its detail does not
depend on how far the camera travels) seen through a camera that pans along a smooth random path,
plus foreground layers (elliptical cut-outs of other pictures) moving on their own smooth
paths. Motion is pure translation per layer, rendered with bilinear sub-pixel shifts, so
the flow of every pixel is known exactly: the velocity of the layer it shows (a layer covers
the pixels where its alpha is at least 0.5).
"""
import dataclasses

import cv2
import numpy as np
import skimage.data

PHOTOS = {'train': ('astronaut', 'coffee', 'chelsea', 'rocket', 'retina', 'hubble_deep_field', 'grass', 'clock',
                    'text', 'cell'),
          'held_out': ('camera', 'coins', 'gravel', 'brick', 'motorcycle', 'immunohistochemistry')}
DEAD_LEAVES = 'dead_leaves'
# what a scene draws its background and layers from: 15 of the 25 training entries are dead leaves
PICTURES = {'train': PHOTOS['train'] + (DEAD_LEAVES,) * 15, 'held_out': PHOTOS['held_out']}


@dataclasses.dataclass
class Scene:
    frames: np.ndarray     # uint8 [T, H, W, 3] sharp frames
    forward: np.ndarray    # float32 [T-1, H, W, 2]: flow t -> t+1, (dx, dy) pixels
    backward: np.ndarray   # float32 [T-1, H, W, 2]: flow t+1 -> t


def _dead_leaves(rng: np.random.Generator, size: int = 512, count: int = 10_000) -> np.ndarray:
    """`[size, size, 3]` uint8: `count` opaque disks painted one over another (the dead leaves
    model), radii drawn from p(r) ~ r^-3 on [2, size / 4] px, each disk's colour a grey level in
    [0, 255] plus a normal deviation (s.d. 40) per channel."""
    r_min, r_max = 2.0, size / 4
    radii = (r_min ** -2 - rng.uniform(size=count) * (r_min ** -2 - r_max ** -2)) ** -0.5  # inverse CDF
    centres = rng.uniform(0, size, (count, 2))
    colours = np.clip(rng.uniform(0, 255, (count, 1)) + rng.normal(0, 40, (count, 3)), 0, 255)
    image = np.zeros((size, size, 3), np.uint8)
    for (x, y), radius, colour in zip(centres, radii, colours):
        cv2.circle(image, (int(x), int(y)), int(round(radius)), tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    return image


def _picture(name: str, rng: np.random.Generator) -> np.ndarray:
    """The picture `name` (of `PICTURES`) as `[h, w, 3]` uint8: a dead leaves picture drawn from
    `rng`, or the photo; `motorcycle` is the left view of `stereo_motorcycle`."""
    if name == DEAD_LEAVES:
        return _dead_leaves(rng)
    image = skimage.data.stereo_motorcycle()[0] if name == 'motorcycle' else getattr(skimage.data, name)()
    return image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)


def _smooth_path(rng: np.random.Generator, length: int, max_speed: float) -> np.ndarray:
    """`[T, 2]` positions whose velocity turns slowly and stays within `max_speed` px/frame."""
    velocity = rng.uniform(-max_speed, max_speed, 2)
    turn = rng.uniform(-max_speed, max_speed, 2) / length
    steps = np.clip(velocity + np.arange(length - 1)[:, None] * turn, -max_speed, max_speed)
    return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _shift(image: np.ndarray, dx: float, dy: float, width: int, height: int) -> np.ndarray:
    """`image` moved by (dx, dy) onto a width x height canvas, bilinear, zeros outside."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def make_scene(seed: int, length: int = 24, height: int = 64, width: int = 96,
               n_objects: int = 2, max_speed: float = 3.0, photos: str = 'train') -> Scene:
    """A seeded scene of `length` sharp frames of height x width, of the pictures `PICTURES[photos]`."""
    if photos not in PICTURES:
        raise ValueError(f'unknown photos {photos!r}; accepted: {tuple(PICTURES)}')
    rng = np.random.default_rng(seed)
    names = rng.permutation(PICTURES[photos])
    travel = int(np.ceil(max_speed * length)) + 2
    background = _picture(names[0], rng).astype(np.float32)
    scale = max(1.5 * height / background.shape[0], 1.5 * width / background.shape[1])
    background = cv2.resize(background, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # mirrored copies around the photo give the camera room to travel at full detail
    need = (max(0, height + 2 * travel - background.shape[0]), max(0, width + 2 * travel - background.shape[1]))
    background = np.pad(background, ((need[0] // 2, -(-need[0] // 2)), (need[1] // 2, -(-need[1] // 2)), (0, 0)),
                        mode='symmetric')
    camera = _smooth_path(rng, length, max_speed) + travel  # top-left of the view in the photo

    layers = []  # (sprite float32 [h, w, 3], alpha [h, w], path [T, 2] of its top-left)
    for k in range(n_objects):
        size = int(rng.uniform(0.3, 0.5) * min(height, width))
        sprite = cv2.resize(_picture(names[1 + k % (len(names) - 1)], rng), (size, size),
                            interpolation=cv2.INTER_AREA).astype(np.float32)
        yy, xx = np.mgrid[:size, :size]
        alpha = (((yy - size / 2) / (size / 2)) ** 2 + ((xx - size / 2) / (size / 2.5)) ** 2 <= 1)
        start = rng.uniform([0, 0], [width - size, height - size])
        layers.append((sprite, alpha.astype(np.float32), start + _smooth_path(rng, length, max_speed)))

    frames, velocity_maps = [], []
    for t in range(length):
        frame = _shift(background, -camera[t, 0], -camera[t, 1], width, height)
        owner = np.full((height, width), -1)
        for k, (sprite, alpha, path) in enumerate(layers):
            a = _shift(alpha, path[t, 0], path[t, 1], width, height)[..., None]
            frame = frame * (1 - a) + _shift(sprite, path[t, 0], path[t, 1], width, height) * a
            owner[a[..., 0] >= 0.5] = k
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
        velocity_maps.append(owner)

    def flow(t_from: int, t_to: int) -> np.ndarray:
        """Flow of frame t_from's pixels to frame t_to (adjacent frames)."""
        owner = velocity_maps[t_from]
        out = np.empty((height, width, 2), np.float32)
        out[:] = -(camera[t_to] - camera[t_from])
        for k, (_, _, path) in enumerate(layers):
            out[owner == k] = path[t_to] - path[t_from]
        return out

    forward = np.stack([flow(t, t + 1) for t in range(length - 1)])
    backward = np.stack([flow(t + 1, t) for t in range(length - 1)])
    return Scene(np.stack(frames), forward, backward)
