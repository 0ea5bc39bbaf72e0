"""Streaming inference: frames in, deblurred frames out, in constant memory.

Each frame goes through one jitted cell step (`MMPRNN.encode`) and, once the features of the
two following frames exist, one jitted reconstruction (`MMPRNN.decode`). Only the last
`past + 1 + future` features and the frames still waiting for their output are kept, so
memory does not depend on the video's length.

Ends of the video (`ends`):
- 'replicate' (default): every frame gets an output. Where f(t-2), f(t-1) or f(t+1),
  f(t+2) fall outside the video, the features of the first (last) frame stand in for them.
  The recurrence itself is untouched, so frames 2 .. T-3 equal the original's outputs.
- 'drop': as the original's test, only frames 2 .. T-3 get an output.

State (`deblur_in_chunks`, `reset_every`): by default the hidden state is carried through the
whole video. With `reset_every=N` it is reset as the original's test resets it: chunks of N
frames, each starting past + future frames before the previous one ended, the last one moved
back to end with the video; each frame's output comes from the first chunk that outputs it
(chunk ends inside the video are interior frames of the next chunk). Memory: N frames.

Frames whose size is not a multiple of 4 are padded (edge values, bottom and right) and
cropped back. `dtype` sets the model's compute dtype (`MMPRNN.dtype`: float32 parameters, float32
outputs); None keeps the model's own.
"""
import collections
import contextlib
import dataclasses
import pathlib
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from mmp_jax.frame_writers import FrameWriter, check_distinct
from mmp_jax.models.mmp_rnn import COMPUTE_DTYPES, MMPRNN
from mmp_jax.pixels import pad_to_multiple, to_uint8
from mmp_jax.visualize import heat_map

ENDS = ('replicate', 'drop')
DTYPES = tuple(COMPUTE_DTYPES)


@dataclasses.dataclass
class DeblurredFrame:
    index: int
    blurry: np.ndarray          # uint8 [H, W, 3], the input
    output: np.ndarray          # float32 [H, W, 3], the network's output in [0, 1] units
    prior: np.ndarray | None    # float32 [H, W, 1] in [0, 1]; None without MMP-Net / MMAM

    @property
    def sharp(self) -> np.ndarray:
        """The output as uint8 [H, W, 3], clipped and rounded."""
        return to_uint8(self.output)


class StreamingDeblurrer:
    """Deblurs a stream of uint8 RGB frames `[H, W, 3]` with a model and its variables."""

    def __init__(self, model: MMPRNN, variables, ends: str = 'replicate', dtype: str | None = None):
        if ends not in ENDS:
            raise ValueError(f'unknown ends {ends!r}; accepted: {ENDS}')
        if dtype not in DTYPES + (None,):
            raise ValueError(f'unknown dtype {dtype!r}; accepted: {DTYPES}')
        if model.needs_prior:
            raise ValueError("a model with prior_source='given' cannot deblur plain video")
        model = model if dtype is None else model.clone(dtype=dtype)
        self.model, self.ends, self.variables = model, ends, variables
        self._encode = jax.jit(lambda v, c, x: model.apply(v, c, x, method=model.encode))
        self._decode = jax.jit(lambda v, f, x: model.apply(v, f, x, method=model.decode))

    def _pad(self, frame: np.ndarray) -> jax.Array:
        padded = pad_to_multiple(frame).astype(np.float32) / 255.0
        return jnp.asarray(padded[None])

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[DeblurredFrame]:
        stream = _Stream(self)
        for index, frame in enumerate(frames):
            yield from stream.push(index, frame)
        yield from stream.finish()


class _Stream:
    """One pass of a `StreamingDeblurrer` over one video: its state, fed a frame at a time."""

    def __init__(self, deblurrer: StreamingDeblurrer):
        self.deblurrer, self.model = deblurrer, deblurrer.model
        self.feats: collections.deque = collections.deque(maxlen=self.model.window)
        self.waiting: collections.deque = collections.deque()  # (index, frame, padded, prior)
        self.carry, self.shape = None, None

    def _emit(self) -> DeblurredFrame:
        index, frame, padded, prior = self.waiting.popleft()
        out = self.deblurrer._decode(self.deblurrer.variables, jnp.concatenate(list(self.feats), axis=-1), padded)
        height, width = frame.shape[:2]
        out = np.asarray(out[0, :height, :width], np.float32)
        prior = None if prior is None else np.asarray(prior[0, :height, :width], np.float32)
        return DeblurredFrame(index, frame, out, prior)

    def push(self, index: int, frame: np.ndarray) -> list[DeblurredFrame]:
        """Frame `index` in; the outputs that became ready (at most one)."""
        model, deblurrer = self.model, self.deblurrer
        if self.shape is not None and frame.shape != self.shape:
            raise ValueError(f'frame {index}: shape {frame.shape} differs from the first frame\'s {self.shape}')
        padded = deblurrer._pad(frame)
        if self.shape is None:
            self.shape = frame.shape
            self.carry = model.init_carry(1, *padded.shape[1:3])
        self.carry, f, prior = deblurrer._encode(deblurrer.variables, self.carry, padded)
        if index == 0 and deblurrer.ends == 'replicate':
            self.feats.extend([f] * model.past_frames)
        self.feats.append(f)
        if index >= model.past_frames or deblurrer.ends == 'replicate':
            self.waiting.append((index, frame, padded, prior))
        return [self._emit()] if len(self.feats) == model.window else []

    def finish(self) -> list[DeblurredFrame]:
        """The outputs still owed at the end of the video."""
        if self.shape is None:
            raise ValueError('no frames')
        done = []
        if self.deblurrer.ends == 'replicate':
            while self.waiting:
                self.feats.append(self.feats[-1])
                if len(self.feats) == self.model.window:
                    done.append(self._emit())
        return done


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """First pixels of tiles of `tile` pixels covering `length`, neighbours overlapping by at
    least `overlap` (the last tile moved back to end at `length`)."""
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f'tile overlap {overlap} must be at least 0 and less than the tile ({tile})')
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _ramp(length: int, start: int, size: int, overlap: int) -> np.ndarray:
    """Blending weights `[size]` of a tile at `start`: rising over `overlap` pixels from each
    side that has a neighbour, 1 elsewhere."""
    weight = np.ones(size, np.float32)
    if overlap > 0:
        rise = (np.arange(size, dtype=np.float32) + 0.5) / overlap
        if start > 0:
            weight = np.minimum(weight, rise)
        if start + size < length:
            weight = np.minimum(weight, rise[::-1])
    return weight


class TiledDeblurrer:
    """A `StreamingDeblurrer` run on overlapping tiles of each frame, each tile with its own
    recurrence, blended linearly over the overlaps: the network's activations are those of one
    tile, so peak memory follows the tile, not the frame (the states of all tiles are kept).
    Tiles of `tile = (height, width)` pixels (the frame's size where it is smaller), all of one
    shape so that one program serves them; `overlap` pixels shared by neighbours."""

    def __init__(self, deblurrer: StreamingDeblurrer, tile: tuple[int, int], overlap: int = 32):
        self.deblurrer, self.model, self.ends = deblurrer, deblurrer.model, deblurrer.ends
        self.tile, self.overlap = tile, overlap

    def _layout(self, height: int, width: int) -> list[tuple[slice, slice, np.ndarray]]:
        """(rows, columns, weights `[h, w, 1]`) of every tile of an `height` x `width` frame."""
        size_y, size_x = min(self.tile[0], height), min(self.tile[1], width)
        tiles = []
        for y in tile_starts(height, size_y, self.overlap):
            for x in tile_starts(width, size_x, self.overlap):
                weight = np.outer(_ramp(height, y, size_y, self.overlap), _ramp(width, x, size_x, self.overlap))
                tiles.append((slice(y, y + size_y), slice(x, x + size_x), weight[..., None]))
        return tiles

    def _blend(self, frame: np.ndarray, layout, outputs: list[DeblurredFrame]) -> DeblurredFrame:
        total = np.zeros(frame.shape[:2] + (1,), np.float32)
        output = np.zeros(frame.shape, np.float32)
        prior = None if outputs[0].prior is None else np.zeros(frame.shape[:2] + (1,), np.float32)
        for (rows, cols, weight), out in zip(layout, outputs):
            total[rows, cols] += weight
            output[rows, cols] += weight * out.output
            if prior is not None:
                prior[rows, cols] += weight * out.prior
        return DeblurredFrame(outputs[0].index, frame, output / total, None if prior is None else prior / total)

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[DeblurredFrame]:
        streams, layout, pending = None, None, {}  # pending: index -> the frame, until its output
        for index, frame in enumerate(frames):
            if layout is None:
                layout = self._layout(*frame.shape[:2])
                streams = [_Stream(self.deblurrer) for _ in layout]
            pending[index] = frame
            ready = [stream.push(index, frame[rows, cols]) for stream, (rows, cols, _) in zip(streams, layout)]
            for outputs in zip(*ready):
                done = outputs[0].index
                yield self._blend(pending.pop(done), layout, list(outputs))
                for skipped in [i for i in pending if i < done]:  # ends='drop': no output for them
                    del pending[skipped]
        if streams is None:
            raise ValueError('no frames')
        for outputs in zip(*(stream.finish() for stream in streams)):
            yield self._blend(pending.pop(outputs[0].index), layout, list(outputs))


def deblur_in_chunks(deblurrer: StreamingDeblurrer | TiledDeblurrer, frames: Iterable[np.ndarray],
                     every: int) -> Iterator[DeblurredFrame]:
    """`deblurrer`'s outputs with the state reset every `every` frames, chunked as the
    original's test (see the module doc); `deblurrer.ends` decides the video's two ends."""
    past, future = deblurrer.model.past_frames, deblurrer.model.future_frames
    if every <= past + future:
        raise ValueError(f'reset every {every} frames: a chunk needs more than {past + future} frames')
    recent: collections.deque = collections.deque(maxlen=every)
    done = -1  # the last index given out

    def chunk(start: int, last: bool) -> Iterator[DeblurredFrame]:
        nonlocal done
        frames_in = list(recent)  # at most `every` frames: the chunk
        lowest = 0 if start == 0 else start + past
        highest = start + len(frames_in) - 1 - (0 if last else future)
        for out in deblurrer(iter(frames_in)):
            index = start + out.index
            if done < index and lowest <= index <= highest:
                done = index
                yield dataclasses.replace(out, index=index)

    start, count = 0, 0
    for index, frame in enumerate(frames):
        if index - start == every:  # the chunk [start, index) is full and not the last
            yield from chunk(start, last=False)
            start = index - past - future
        recent.append(frame)
        count = index + 1
    if count == 0:
        raise ValueError('no frames')
    yield from chunk(max(count - every, 0), last=True)


def frame_name(source, index: int) -> str:
    """The output file name of input frame `index`: a folder's frame keeps its name (as PNG),
    a video's frame is named by its index in the video."""
    if source.names is not None:
        return pathlib.Path(source.names[index]).stem + '.png'
    return f'{index:06d}.png'


def make_deblurrer(model: MMPRNN, variables, ends: str = 'replicate', dtype: str | None = None,
                   tile: tuple[int, int] | None = None,
                   tile_overlap: int = 32) -> StreamingDeblurrer | TiledDeblurrer:
    """One deblurrer for any number of videos: its programs compile once per frame size."""
    deblurrer = StreamingDeblurrer(model, variables, ends, dtype)
    return TiledDeblurrer(deblurrer, tile, tile_overlap) if tile is not None else deblurrer


def deblur_file(deblurrer: StreamingDeblurrer | TiledDeblurrer, source, output: str,
                prior_output: str | None = None, side_by_side: bool = False, progress: bool = True,
                overwrite: bool = False, reset_every: int = 0, audio: bool = True, **writer_options) -> int:
    """Deblurs a `mmp_jax.data.sources.FrameSource` into `output` (video by suffix, else a
    folder of PNGs named as the input frames); `prior_output` gets the prior as a heat map;
    `side_by_side` writes input | output; `reset_every` > 0 resets the state as the original's
    test (`deblur_in_chunks`); `audio` copies the input's audio into a video output;
    `writer_options` (codec, quality) go to the `FrameWriter`s. Outputs appear only
    when complete, and never over the input or an existing output unless `overwrite` (see
    `frame_writers`). Returns the number of frames written."""
    check_distinct(source.path, {'--output': output, '--prior': prior_output})
    if prior_output is not None and not deblurrer.model.use_mmam:
        raise ValueError('--prior: this model has no MMP-Net (use_mmam is off)')
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(FrameWriter(output, source.fps, overwrite, **writer_options,
                                              audio_from=source.path if audio else None))
        prior_out = (stack.enter_context(FrameWriter(prior_output, source.fps, overwrite, **writer_options))
                     if prior_output is not None else None)
        bar = stack.enter_context(tqdm.tqdm(total=source.count, unit='frame', disable=not progress,
                                            desc=str(source.path.name)))
        written = 0
        stream = deblur_in_chunks(deblurrer, source.frames, reset_every) if reset_every else deblurrer(source.frames)
        for frame in stream:
            picture = frame.sharp
            if side_by_side:
                picture = np.concatenate([frame.blurry, picture], axis=1)
            name = frame_name(source, frame.index)
            out.write(picture, name)
            if prior_out is not None:
                prior_out.write(heat_map(frame.prior), name)
            written += 1
            bar.update(1)
    return written
