"""Training batches from the records: T-frame windows of one sequence, a random P x P patch
(the same for every frame of a window), random flips and 90-degree rotation, batched.

Two readers of the same records and the same recipe:
- `train_dataset`: tf.data, files sharded per host (`jax.process_index()`), shuffled and
  augmented deterministically under a seed, prefetched.
- `numpy_train_batches`: numpy only, for machines without TensorFlow (the GPU machine).

Batches are dicts of float32 arrays in [0, 1]: `blurry`, `sharp` `[B, T, P, P, 3]` and `mmp`
`[B, T, P, P, 1]` (zeros where the records hold none: GOPRO benchmark, BSD).
"""
import pathlib
from collections.abc import Iterator

import numpy as np

from data_pipeline import tfrecords


def record_files(directory: str | pathlib.Path) -> list[str]:
    """The finished shards listed in the directory's manifest, in order."""
    directory = pathlib.Path(directory)
    manifest = tfrecords.load_manifest(directory)
    if not manifest.get('shards'):
        raise FileNotFoundError(f'{directory}: no finished shards (no {tfrecords.MANIFEST}); '
                                f'build them with `python -m tools.export_tfrecords`')
    shards = manifest['shards']
    return [str(directory / shards[k]['file']) for k in sorted(shards, key=int)]


def host_files(files: list[str], process_index: int, process_count: int) -> list[str]:
    """This host's share of the shards; every host needs at least one."""
    mine = files[process_index::process_count]
    if not mine:
        raise ValueError(f'{len(files)} shards cannot feed {process_count} hosts; export more shards')
    return mine


def _augment_numpy(frames: dict, rng: np.random.Generator, patch: int) -> dict:
    height, width = frames['blurry'].shape[1:3]
    top, left = rng.integers(0, height - patch + 1), rng.integers(0, width - patch + 1)
    flip_v, flip_h, rot = rng.integers(0, 2, 3)
    out = {}
    for key, value in frames.items():
        value = value[:, top:top + patch, left:left + patch]
        value = value[:, ::-1] if flip_v else value
        value = value[:, :, ::-1] if flip_h else value
        out[key] = np.ascontiguousarray(np.rot90(value, axes=(1, 2)) if rot else value)
    return out


def _stack(frames: list[dict]) -> dict:
    """Frames of one sequence (as `tfrecords.read_examples` gives them) -> stacked arrays."""
    return {'blurry': np.stack([f['blurry'] for f in frames]),
            'sharp': np.stack([f['sharp'] for f in frames]),
            'mmp': None if frames[0]['mmp'] is None else np.stack([f['mmp'] for f in frames])}


def _windows_numpy(files: list[str], length: int) -> list[dict]:
    """All T-frame windows of consecutive frames of one sequence, decoded."""
    windows = []
    for path in files:
        frames = list(tfrecords.read_examples(path))
        for start in range(len(frames) - length + 1):
            group = frames[start:start + length]
            same = all(f['sequence'] == group[0]['sequence'] for f in group)
            if same and all(f['index'] == group[0]['index'] + i for i, f in enumerate(group)):
                window = _stack(group)
                if window['mmp'] is None:
                    window['mmp'] = np.zeros(window['blurry'].shape[:3] + (1,), np.float32)
                windows.append(window)
    return windows


def numpy_train_batches(files: list[str], length: int, patch: int, batch_size: int,
                        seed: int) -> Iterator[dict]:
    """Endless shuffled, augmented batches (numpy; decodes the shards into memory once)."""
    windows = _windows_numpy(files, length)
    if not windows:
        raise ValueError(f'no sequence in {files} has {length} consecutive frames')
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(windows))
        for first in range(0, len(order) - batch_size + 1, batch_size):
            items = [_augment_numpy(windows[i], rng, patch) for i in order[first:first + batch_size]]
            yield {k: np.stack([item[k] for item in items]).astype(np.float32)
                      / (1.0 if k == 'mmp' else 255.0) for k in items[0]}


def train_dataset(files: list[str], length: int, patch: int, batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1, shuffle_buffer: int = 256):
    """tf.data of endless batches for this host (`batch_size` is the per-host batch)."""
    import tensorflow as tf  # noqa: PLC0415 (optional: numpy_train_batches needs none)

    spec = {'sequence': tf.io.FixedLenFeature([], tf.string), 'index': tf.io.FixedLenFeature([], tf.int64),
            'blurry': tf.io.FixedLenFeature([], tf.string), 'sharp': tf.io.FixedLenFeature([], tf.string),
            'mmp': tf.io.FixedLenFeature([], tf.string, default_value='')}

    def windows_of(path):
        frames = tf.data.TFRecordDataset(path).map(lambda r: tf.io.parse_single_example(r, spec))
        grouped = frames.window(length, shift=1, drop_remainder=True).flat_map(
            lambda w: tf.data.Dataset.zip({k: w[k].batch(length) for k in spec}))
        return grouped.filter(lambda w: tf.logical_and(
            tf.reduce_all(w['sequence'] == w['sequence'][0]),
            tf.reduce_all(w['index'] - w['index'][0] == tf.range(length, dtype=tf.int64))))

    def decode(window, key):
        seeds = tf.random.experimental.stateless_split(key, 4)
        has_mmp = tf.strings.length(window['mmp'][0]) > 0
        blurry = tf.map_fn(lambda b: tf.io.decode_png(b, 3), window['blurry'], fn_output_signature=tf.uint8)
        sharp = tf.map_fn(lambda b: tf.io.decode_png(b, 3), window['sharp'], fn_output_signature=tf.uint8)
        mmp = tf.cond(has_mmp,
                      lambda: tf.map_fn(lambda b: tf.io.decode_png(b, 1, tf.uint16), window['mmp'],
                                        fn_output_signature=tf.uint16),
                      lambda: tf.zeros(tf.concat([tf.shape(blurry)[:3], [1]], 0), tf.uint16))
        stack = tf.concat([tf.cast(blurry, tf.float32) / 255.0, tf.cast(sharp, tf.float32) / 255.0,
                           tf.cast(mmp, tf.float32) / tfrecords.MMP_SCALE], axis=-1)
        shape = tf.shape(stack)
        top = tf.random.stateless_uniform([], seeds[0], 0, shape[1] - patch + 1, tf.int32)
        left = tf.random.stateless_uniform([], seeds[1], 0, shape[2] - patch + 1, tf.int32)
        stack = stack[:, top:top + patch, left:left + patch]
        flips = tf.random.stateless_uniform([3], seeds[2], 0, 2, tf.int32)
        stack = tf.cond(flips[0] > 0, lambda: tf.reverse(stack, [1]), lambda: stack)
        stack = tf.cond(flips[1] > 0, lambda: tf.reverse(stack, [2]), lambda: stack)
        stack = tf.cond(flips[2] > 0, lambda: tf.transpose(tf.reverse(stack, [2]), [0, 2, 1, 3]),
                        lambda: stack)
        stack = tf.ensure_shape(stack, [length, patch, patch, 7])
        return {'blurry': stack[..., :3], 'sharp': stack[..., 3:6], 'mmp': stack[..., 6:]}

    mine = host_files(files, process_index, process_count)
    options = tf.data.Options()
    options.deterministic = True
    windows = tf.data.Dataset.from_tensor_slices(mine).interleave(
        windows_of, cycle_length=len(mine))
    keys = tf.data.Dataset.random(seed=seed + process_index).batch(2).map(
        lambda k: tf.random.experimental.stateless_fold_in(k, 0))
    shuffled = windows.cache().shuffle(shuffle_buffer, seed=seed + process_index).repeat()
    return (tf.data.Dataset.zip((shuffled, keys))
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(options))


def eval_sequences(files: list[str], process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """Whole sequences for evaluation, spread over hosts so each counts exactly once.

    Sequences (all shards, by name) go to hosts in turn; every host yields the same number of
    items, the missing ones padded with a copy of a real sequence whose `mask` is 0, so hosts
    stay in step. Items: `name`, `blurry`, `sharp` uint8 `[T, H, W, 3]`, `mmp` float32
    `[T, H, W, 1]` or None, `mask` 1.0 (count it) or 0.0 (padding).
    """
    by_name: dict[str, list[dict]] = {}
    for path in files:
        for frame in tfrecords.read_examples(path):
            by_name.setdefault(frame['sequence'], []).append(frame)
    if not by_name:
        raise ValueError(f'no frames in {files}')
    names = sorted(by_name)
    per_host = -(-len(names) // process_count)
    mine = names[process_index::process_count]
    for slot in range(per_host):
        real = slot < len(mine)
        name = mine[slot] if real else names[0]
        frames = sorted(by_name[name], key=lambda f: f['index'])
        yield {'name': name, **_stack(frames), 'mask': 1.0 if real else 0.0}
