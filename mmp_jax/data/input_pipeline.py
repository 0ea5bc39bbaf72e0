"""Training batches from the records: T-frame windows of one sequence, a random P x P patch
(the same for every frame of a window), random flips and 90-degree rotation, batched.

The batches are a pure function of (seed, step): item `g` of the global stream (step `s`,
slot `b` of the global batch, `g = s * global_batch + b`) takes window `perm_e[g mod N]`
(`perm_e` a seeded permutation of the N windows for epoch `e = g // N`; records folders mixed
with weights: a folder drawn by weight and one of its windows, from `(seed, g)`, see `mix`) and
a crop and flips drawn from `(seed, g)`. So a resumed run continues at its step with nothing else
saved, and the data do not depend on the number of devices or hosts: every host lists the windows
of all records and takes its own slots of each global batch, its frames held (encoded, in memory)
or, for data larger than memory, read from the record files by byte offset when its slots need
them (`load_windows(..., in_memory=False)`, `config.data.records_in_memory=False`).

Two readers of the same plan, giving the same arrays (`train_batches` takes either by name):
- `train_dataset`: tf.data, PNGs decoded and patches cut in parallel, prefetched.
- `numpy_train_batches`: numpy and OpenCV only, for machines without TensorFlow (the GPU machine).

Batches are dicts of float32 arrays in [0, 1]: `blurry`, `sharp` `[B, T, P, P, 3]` and `mmp`
`[B, T, P, P, 1]` (zeros where the records hold none: GOPRO benchmark, BSD).
"""
import dataclasses
import functools
import os
import threading
from collections.abc import Iterator

import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.io import paths, random_access
from mmp_jax.data import decode_limits, tfrecords


def record_files(directory: str | os.PathLike) -> list[str]:
    """The finished shards listed in the directory's manifest (local or a URL), in order."""
    directory = paths.path(directory)
    manifest = tfrecords.load_manifest(directory)
    if not manifest.get('shards'):
        raise FileNotFoundError(f'{directory}: no finished shards (no {tfrecords.MANIFEST}); '
                                f'build them with `python -m tools.export_tfrecords`')
    shards = manifest['shards']
    return [str(directory / shards[k]['file']) for k in sorted(shards, key=int)]


@dataclasses.dataclass
class RecordsInMemory:
    """Every frame's PNGs, held (the records read once, at the start)."""
    blurry: list[bytes]          # PNG per frame of the data set
    sharp: list[bytes]
    mmp: list[bytes]             # 16-bit PNG, b'' where the records hold no MMP

    def encoded(self, frame: int) -> tuple[bytes, bytes, bytes]:
        """(blurry, sharp, mmp) PNGs of frame `frame`."""
        return self.blurry[frame], self.sharp[frame], self.mmp[frame]

    def __len__(self) -> int:
        return len(self.blurry)


class RecordsOnDisk:
    """Every frame's place in the record files, its PNGs read when a batch needs them (for data
    larger than memory): a frame is one record, read by its byte offset, from any thread. Every
    record's CRCs were checked when the files were indexed; a read checks the header's CRC and
    bounds the length by the file's size (`tfrecords.read_record_at`), and decoding checks the
    PNGs' own CRCs, so a file changed since is an error, not a wrong batch or a runaway read (the
    data's CRC, in numpy, would cost more than the decoding)."""

    def __init__(self, files: list[str], places: np.ndarray, sizes: list[int]):
        self.files = files
        self.places = places          # int64 [F, 2]: (file number, byte offset) of each frame's record
        self.sizes = sizes            # bytes of each file when indexed
        self._readers: dict[int, random_access.LocalReader | random_access.UrlReader] = {}
        self._opening = threading.Lock()

    def _reader(self, file: int) -> random_access.LocalReader | random_access.UrlReader:
        with self._opening:
            if file not in self._readers:
                self._readers[file] = random_access.open_reader(self.files[file])
            return self._readers[file]

    def encoded(self, frame: int) -> tuple[bytes, bytes, bytes]:
        """(blurry, sharp, mmp) PNGs of frame `frame`."""
        file, offset = (int(x) for x in self.places[frame])
        raw = tfrecords.parse_example(tfrecords.read_record_at(self._reader(file), offset, self.sizes[file],
                                                               self.files[file], check_data=False))
        return raw['blurry'][0], raw['sharp'][0], raw['mmp'][0] if 'mmp' in raw else b''

    def __len__(self) -> int:
        return len(self.places)

    def __del__(self):
        for reader in self._readers.values():
            reader.close()


def _joined(parts: list[RecordsInMemory | RecordsOnDisk]) -> RecordsInMemory | RecordsOnDisk:
    """The frames of several records as one, numbered in order (all held, or all on disk)."""
    if all(isinstance(part, RecordsInMemory) for part in parts):
        return RecordsInMemory(*([x for part in parts for x in getattr(part, name)]
                                 for name in ('blurry', 'sharp', 'mmp')))
    files, places, sizes = [], [], []
    for part in parts:
        places.append(part.places + np.array([len(files), 0], np.int64))
        files, sizes = files + part.files, sizes + part.sizes
    return RecordsOnDisk(files, np.concatenate(places), sizes)


@dataclasses.dataclass
class Windows:
    """Every T-frame window of consecutive frames of one sequence, frames still encoded."""
    records: RecordsInMemory | RecordsOnDisk  # the frames' PNGs: `records.encoded(frame)`
    frames: np.ndarray           # int [N, T]: the frames of each window
    sizes: np.ndarray            # int [N, 2]: (height, width) of each window's frames
    has_mmp: bool                # whether the records hold MMP (stage 1 needs it)
    offsets: np.ndarray | None = None  # int [S + 1]: windows offsets[s]:offsets[s+1] are folder s's (`mix`)
    weights: np.ndarray | None = None  # float [S]: each folder's share of the items, summing to 1


def _record_size(encoded: tuple[bytes, bytes, bytes], name: str) -> tuple[int, int]:
    """(height, width) of a record's frames (blurry, sharp, MMP: b'' where absent) from their PNG
    headers, no pixel decoded: a UserError naming the record where a header cannot be read, states
    more than `decode_limits.DEFAULT_MAX_PIXELS` (a crafted record would take the memory of every
    reader that decodes it) or differs from the others."""
    sizes = {decode_limits.check_image(png, name=name) for png in encoded if png}
    if len(sizes) != 1:
        raise UserError(f'{name}: its frames differ in size ({", ".join(f"{w}x{h}" for w, h in sorted(sizes))})')
    width, height = sizes.pop()
    return height, width


def load_windows(files: list[str], length: int, in_memory: bool = True) -> Windows:
    """Reads the shards once (not decoding the PNGs: their sizes checked from their headers,
    `_record_size`) and lists the windows of `length` frames; the frames held (`in_memory`) or
    their places in the files (`RecordsOnDisk`)."""
    held: tuple[list, list, list] = ([], [], [])
    places, frames, sizes, has_mmp, count = [], [], [], False, 0
    for number, path in enumerate(files):
        meta = []
        for offset, record in tfrecords.indexed_records(path):
            raw = tfrecords.parse_example(record)
            encoded = (raw['blurry'][0], raw['sharp'][0], raw['mmp'][0] if 'mmp' in raw else b'')
            if in_memory:
                for kept, value in zip(held, encoded):
                    kept.append(value)
            places.append((number, offset))
            sizes.append(_record_size(encoded, f'{path}: record {len(meta)}'))
            has_mmp |= bool(encoded[2])
            meta.append((raw['sequence'][0], raw['index'][0]))
        for start in range(len(meta) - length + 1):
            name, index = meta[start]
            if all(meta[start + i] == (name, index + i) for i in range(length)):
                frames.append(range(count + start, count + start + length))
        count += len(meta)
    if not frames:
        raise UserError(f'no sequence in {files} has {length} consecutive frames')
    records = (RecordsInMemory(*held) if in_memory else
               RecordsOnDisk(files, np.array(places, np.int64), [paths.size(path) for path in files]))
    return Windows(records, np.array(frames), np.array([sizes[f[0]] for f in frames]), has_mmp)


def keep_fraction(windows: Windows, fraction: float, seed: int) -> Windows:
    """`floor(fraction * N)` of the N windows of one folder, drawn without replacement from `seed`,
    in their order (the authors' stage 1 kept a random half of the pairs, LearningMMP/MMPtraining.ipynb's
    `train_test_split(..., train_size=0.5)`: 22,417 -> 11,208). The records stay as they were."""
    if not 0 < fraction <= 1:
        raise UserError(f'a fraction of the windows must be in (0, 1], not {fraction}')
    if fraction == 1:
        return windows
    kept = np.sort(np.random.default_rng(seed).permutation(len(windows.frames))[:int(fraction * len(windows.frames))])
    if not len(kept):
        raise UserError(f'a fraction {fraction} of {len(windows.frames)} windows keeps none')
    return dataclasses.replace(windows, frames=windows.frames[kept], sizes=windows.sizes[kept])


def mix(parts: list[Windows], weights: list[float] | None = None) -> Windows:
    """The windows of several records folders as one. Without `weights` every window is equally
    likely (each folder in proportion to its windows, epochs as one folder's); with them
    (one per folder, >= 0, not all 0) item `g` takes folder s with probability weights[s] / sum and
    one of its windows uniformly, both drawn from (seed, g)."""
    starts = np.cumsum([0] + [len(part.records) for part in parts])
    frames = np.concatenate([part.frames + start for part, start in zip(parts, starts)])
    mixed = Windows(_joined([part.records for part in parts]), frames, np.concatenate([part.sizes for part in parts]),
                    any(part.has_mmp for part in parts))
    if weights is None:
        return mixed
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(parts),) or (weights < 0).any() or weights.sum() <= 0:
        raise UserError(f'{len(parts)} records folders need {len(parts)} weights, >= 0 and not all 0; '
                        f'got {weights.tolist()}')
    mixed.offsets = np.cumsum([0] + [len(part.frames) for part in parts])
    mixed.weights = weights / weights.sum()
    return mixed


def _weighted_window(windows: Windows, item: int, seed: int) -> int:
    """The window of item `item` of weighted folders (`mix`)."""
    rng = np.random.default_rng([seed, 2, item])
    source = rng.choice(len(windows.weights), p=windows.weights)
    first, end = windows.offsets[source], windows.offsets[source + 1]
    return int(first + rng.integers(0, end - first))


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, 0, epoch]).permutation(count)


def item_plan(windows: Windows, item: int, patch: int, seed: int) -> tuple[int, np.ndarray]:
    """(window, [top, left, flip_v, flip_h, rot90]) of item `item` of the global stream."""
    count = len(windows.frames)
    if windows.weights is None:
        window = int(_epoch_order(seed, item // count, count)[item % count])
    else:
        window = _weighted_window(windows, item, seed)
    height, width = windows.sizes[window]
    rng = np.random.default_rng([seed, 1, item])
    top, left = rng.integers(0, height - patch + 1), rng.integers(0, width - patch + 1)
    return window, np.array([top, left, *rng.integers(0, 2, 3)], np.int32)


def train_windows(records: str, weights: str, length: int, in_memory: bool = False, fraction: float = 1.0,
                  seed: int = 0) -> Windows:
    """The training windows of `config.data.train_records` (`records`: 'a' or 'a,b,...', folders
    mixed in one run by `config.data.train_weights` (`weights`: 'w_a,w_b,...') where given, see
    `mix`), of each folder a `fraction` drawn from `seed` (`keep_fraction`); UserErrors name the
    config field."""
    folders = [f for f in records.split(',') if f.strip()]
    if not folders:
        raise UserError('training needs records: set --config.data.train_records (a folder, or folders a,b)')
    parts = [keep_fraction(load_windows(record_files(f.strip()), length, in_memory), fraction, seed) for f in folders]
    parsed = None
    if weights:
        try:
            parsed = [float(w) for w in weights.split(',')]
        except ValueError:
            raise UserError(f'config.data.train_weights={weights!r}: not numbers separated by commas') from None
    try:
        return mix(parts, parsed)
    except UserError as error:
        raise UserError(f'config.data.train_weights={weights!r}: {error}') from None


def _check_patch(windows: Windows, patch: int) -> None:
    height, width = windows.sizes.min(axis=0)
    if min(height, width) < patch:
        raise UserError(f'frames of {height}x{width} are smaller than the {patch}x{patch} patch')


def host_items(step: int, global_batch: int, host_batch: int, process_index: int) -> range:
    """This host's slots of the global batch of `step`, as items of the global stream."""
    first = step * global_batch + process_index * host_batch
    return range(first, first + host_batch)


def _crop_and_turn(stack: np.ndarray, params: np.ndarray, patch: int) -> np.ndarray:
    """`[T, H, W, C]` -> `[T, P, P, C]`: crop at (top, left), flips, rot90 (as the tf reader)."""
    top, left, flip_v, flip_h, rot = params
    stack = stack[:, top:top + patch, left:left + patch]
    stack = stack[:, ::-1] if flip_v else stack
    stack = stack[:, :, ::-1] if flip_h else stack
    return np.ascontiguousarray(stack[:, :, ::-1].transpose(0, 2, 1, 3) if rot else stack)


def _split(stack):
    return {'blurry': stack[..., :3], 'sharp': stack[..., 3:6], 'mmp': stack[..., 6:]}


READERS = ('tf', 'numpy')


def train_batches(windows: Windows, reader: str, patch: int, global_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """Endless host batches of numpy arrays `[global_batch / process_count, T, P, P, C]` from
    `start_step` on, read by `reader` (one of READERS: 'tf' through tf.data, `train_dataset`;
    'numpy' without TensorFlow, `numpy_train_batches`; the same arrays)."""
    kwargs = dict(seed=seed, start_step=start_step, process_index=process_index, process_count=process_count)
    if reader == 'tf':
        return train_dataset(windows, patch, global_batch, **kwargs).as_numpy_iterator()
    if reader == 'numpy':
        return numpy_train_batches(windows, patch, global_batch, **kwargs)
    raise UserError(f'unknown config.data.reader {reader!r}; accepted: {", ".join(READERS)}')


def numpy_train_batches(windows: Windows, patch: int, global_batch: int, seed: int,
                        start_step: int = 0, process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """Endless host batches `[global_batch / process_count, T, P, P, C]` from `start_step` on."""
    _check_patch(windows, patch)
    return _numpy_batches(windows, patch, global_batch, seed, start_step, process_index, process_count)


def _numpy_batches(windows, patch, global_batch, seed, step, process_index, process_count) -> Iterator[dict]:
    host_batch = global_batch // process_count
    while True:
        items = []
        for item in host_items(step, global_batch, host_batch, process_index):
            window, params = item_plan(windows, item, patch, seed)
            decoded = [np.concatenate(
                [tfrecords.decode_png(blurry).astype(np.float32) / 255.0,
                 tfrecords.decode_png(sharp).astype(np.float32) / 255.0,
                 (tfrecords.png_to_mmp(mmp) if mmp else np.zeros(tuple(windows.sizes[window]) + (1,), np.float32))],
                axis=-1) for blurry, sharp, mmp in map(windows.records.encoded, windows.frames[window])]
            items.append(_crop_and_turn(np.stack(decoded), params, patch))
        yield _split(np.stack(items))
        step += 1


def train_dataset(windows: Windows, patch: int, global_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1):
    """tf.data of endless host batches from `start_step` on (the same arrays as
    `numpy_train_batches`)."""
    import tensorflow as tf  # noqa: PLC0415 (optional: numpy_train_batches needs none)

    _check_patch(windows, patch)
    host_batch = global_batch // process_count
    length = windows.frames.shape[1]

    def fetch(position):
        step, slot = divmod(int(position), host_batch)
        item = host_items(step, global_batch, host_batch, process_index)[slot]
        window, params = item_plan(windows, item, patch, seed)
        blurry, sharp, mmp = (np.array(kind, dtype=object)
                              for kind in zip(*map(windows.records.encoded, windows.frames[window])))
        return blurry, sharp, mmp, params

    def decode(position):
        blurry, sharp, mmp, params = tf.numpy_function(fetch, [position], [tf.string] * 3 + [tf.int32],
                                                       stateful=False)
        png = lambda data, channels, dtype: tf.map_fn(lambda b: tf.io.decode_png(b, channels, dtype), data,
                                                      fn_output_signature=dtype)
        blurry, sharp = png(blurry, 3, tf.uint8), png(sharp, 3, tf.uint8)
        mmp = tf.cond(tf.strings.length(mmp[0]) > 0, lambda: png(mmp, 1, tf.uint16),
                      lambda: tf.zeros(tf.concat([tf.shape(blurry)[:3], [1]], 0), tf.uint16))
        stack = tf.concat([tf.cast(blurry, tf.float32) / 255.0, tf.cast(sharp, tf.float32) / 255.0,
                           tf.cast(mmp, tf.float32) / tfrecords.MMP_SCALE], axis=-1)
        top, left = params[0], params[1]
        stack = stack[:, top:top + patch, left:left + patch]
        stack = tf.cond(params[2] > 0, lambda: tf.reverse(stack, [1]), lambda: stack)
        stack = tf.cond(params[3] > 0, lambda: tf.reverse(stack, [2]), lambda: stack)
        stack = tf.cond(params[4] > 0, lambda: tf.transpose(tf.reverse(stack, [2]), [0, 2, 1, 3]),
                        lambda: stack)
        return _split(tf.ensure_shape(stack, [length, patch, patch, 7]))

    options = tf.data.Options()
    options.deterministic = True
    return (tf.data.Dataset.range(start_step * host_batch, np.iinfo(np.int64).max)
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(host_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(options))


def read_sequences(files: list[str]) -> dict[str, dict]:
    """Whole sequences for evaluation, by name (sorted): `blurry`, `sharp` uint8 `[T, H, W, 3]`,
    `mmp` float32 `[T, H, W, 1]` or None."""
    by_name: dict[str, list[dict]] = {}
    for path in files:
        for frame in tfrecords.read_examples(path):
            by_name.setdefault(frame['sequence'], []).append(frame)
    if not by_name:
        raise UserError(f'no frames in {files}')
    out = {}
    for name in sorted(by_name):
        frames = sorted(by_name[name], key=lambda f: f['index'])
        out[name] = {'blurry': np.stack([f['blurry'] for f in frames]),
                     'sharp': np.stack([f['sharp'] for f in frames]),
                     'mmp': None if frames[0]['mmp'] is None else np.stack([f['mmp'] for f in frames])}
    return out
