"""Seeded high-frame-rate scenes with exact optical flow, from photos shipped with
scikit-image (nothing is downloaded): the demo data and the tests' data. Scenes of the
`'train'` photos are what the demo trains on; scenes of the `'held_out'` photos, which no
training scene shows, are what it scores a model on as pictures it never saw.

A scene is a background photo (extended by mirrored copies, so that its detail does not
depend on how far the camera travels) seen through a camera that pans along a smooth random path,
plus foreground layers (elliptical cut-outs of other photos) moving on their own smooth
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


@dataclasses.dataclass
class Scene:
    frames: np.ndarray     # uint8 [T, H, W, 3] sharp frames
    forward: np.ndarray    # float32 [T-1, H, W, 2]: flow t -> t+1, (dx, dy) pixels
    backward: np.ndarray   # float32 [T-1, H, W, 2]: flow t+1 -> t


def _photo(name: str) -> np.ndarray:
    """The photo `name` (of `PHOTOS`) as `[h, w, 3]` uint8; `motorcycle` is the left view of
    `stereo_motorcycle`."""
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
    """A seeded scene of `length` sharp frames of height x width, of the photos `PHOTOS[photos]`."""
    if photos not in PHOTOS:
        raise ValueError(f'unknown photos {photos!r}; accepted: {tuple(PHOTOS)}')
    rng = np.random.default_rng(seed)
    names = rng.permutation(PHOTOS[photos])
    travel = int(np.ceil(max_speed * length)) + 2
    background = _photo(names[0]).astype(np.float32)
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
        sprite = cv2.resize(_photo(names[1 + k % (len(names) - 1)]), (size, size),
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
