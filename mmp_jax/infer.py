"""Streaming inference: frames in, deblurred frames out, in constant memory.

Frames go through the network in chunks of K (`chunk_frames`, 1 by default): one jitted call
runs the part of the cell that needs the frame alone (`MMPRNN.extract`: F_B0, MMP-Net, MMAM,
F_B1, F_B2) on the K frames as one batch, then the recurrence (`MMPRNN.recur`: F_R, F_h) frame
by frame; the outputs whose features (those of the two following frames) exist are then
reconstructed (`MMPRNN.decode`) K at a time. Only the last `past + 1 + future` features, the
K frames of a chunk and the frames still waiting for their output (fewer than 2 K + future)
are kept, so memory does not depend on the video's length. The outputs equal the per-frame
ones (K = 1) for any K; at the video's end the last chunk and the last group of outputs are
filled up with repeats (whose results are dropped), which keeps one program of each per frame
size. Several videos of one size and length go through as one batch (`StreamingDeblurrer.batch`).

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
import dataclasses
import functools
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.models.mmp_rnn import COMPUTE_DTYPES, MMPRNN
from mmp_jax.pixels import pad_to_multiple, to_uint8

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
    """Deblurs a stream of uint8 RGB frames `[H, W, 3]` with a model and its variables
    (`batch`: several videos of one size and length, as one batch), `chunk_frames` frames at
    a time (see the module doc)."""

    def __init__(self, model: MMPRNN, variables, ends: str = 'replicate', dtype: str | None = None,
                 chunk_frames: int = 1):
        if ends not in ENDS:
            raise UserError(f'unknown ends {ends!r}; accepted: {ENDS}')
        if dtype not in DTYPES + (None,):
            raise UserError(f'unknown dtype {dtype!r}; accepted: {DTYPES}')
        if model.needs_prior:
            raise UserError("a model with prior_source='given' cannot deblur plain video")
        if chunk_frames < 1:
            raise UserError(f'chunk_frames must be at least 1, got {chunk_frames}')
        model = model if dtype is None else model.clone(dtype=dtype)
        self.model, self.ends, self.variables, self.chunk_frames = model, ends, variables, chunk_frames
        # the carry is replaced by the one returned: its buffers serve the new one
        self._encode = jax.jit(functools.partial(encode_chunk, model), donate_argnums=1)
        self._decode = jax.jit(functools.partial(decode_windows, model))

    def _pad(self, frames: np.ndarray) -> np.ndarray:
        return pad_to_multiple(frames).astype(np.float32) / 255.0

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[DeblurredFrame]:
        for outputs in self.batch(frame[None] for frame in frames):
            yield outputs[0]

    def batch(self, frames: Iterable[np.ndarray]) -> Iterator[list[DeblurredFrame]]:
        """B videos in lockstep: time steps `[B, H, W, 3]` in, for each output index the B
        videos' outputs (in the order of the batch) out."""
        stream = _Stream(self)
        for index, step in enumerate(frames):
            yield from stream.push(index, step)
        yield from stream.finish()


def encode_chunk(model: MMPRNN, variables, carry, frames: jax.Array):
    """K frames of B videos `[B, K, H, W, 3]` in [0, 1] -> (carry after frame K, f
    `[B, K, H/4, W/4, 5C]`, prior `[B, K, H, W, 1]` or None): `MMPRNN.extract` on all B K
    frames in one batch, then `MMPRNN.recur` frame by frame."""
    batch, count = frames.shape[:2]
    mids, priors = model.apply(variables, frames.reshape((batch * count,) + frames.shape[2:]), method=model.extract)
    carry, feats = model.apply(variables, carry, mids.reshape((batch, count) + mids.shape[1:]), method=model.recur)
    return carry, feats, None if priors is None else priors.reshape((batch, count) + priors.shape[1:])


def decode_windows(model: MMPRNN, variables, windows: list[tuple[jax.Array, ...]], frames: jax.Array) -> jax.Array:
    """N windows, each the features f(t-P..t+F) `[B, H/4, W/4, 5C]` of its frame, and those
    frames `[N B, H, W, 3]` in [0, 1] -> outputs `[N B, H, W, 3]` (`MMPRNN.decode` in one batch:
    the windows' k-th features joined along the batch, the `window` maps decoded as parts)."""
    features = [jnp.concatenate(kth) for kth in zip(*windows, strict=True)]
    return model.apply(variables, features, frames, method=model.decode)


class _Stream:
    """One pass of a `StreamingDeblurrer` over B videos in lockstep, fed a time step
    `[B, H, W, 3]` at a time. Held: the last `window` features, at most K frames not yet
    encoded and fewer than 2 K + future frames waiting for their output (those whose window
    is complete wait for a whole group of K to decode)."""

    def __init__(self, deblurrer: StreamingDeblurrer):
        self.deblurrer, self.model = deblurrer, deblurrer.model
        self.feats: collections.deque = collections.deque(maxlen=self.model.window)  # f [B, h, w, 5C]
        self.waiting: collections.deque = collections.deque()  # (index, frames, padded, prior)
        self.chunk: list = []  # (index, frames, padded) not yet encoded
        self.ready: list = []  # (a waiting entry, its window: `window` features), to decode
        self.carry, self.shape = None, None

    def _encode_chunk(self) -> None:
        """Encodes `chunk` (repeated to K frames with its last one: only at the video's end,
        after which the state is not used); the frames whose window completes become ready."""
        deblurrer, model, count = self.deblurrer, self.model, len(self.chunk)
        padded = [entry[2] for entry in self.chunk]
        padded += padded[-1:] * (deblurrer.chunk_frames - count)
        self.carry, feats, priors = deblurrer._encode(deblurrer.variables, self.carry,
                                                      jnp.asarray(np.stack(padded, axis=1)))
        priors = None if priors is None else np.asarray(priors[:, :count], np.float32)
        for k, (index, frames, padded) in enumerate(self.chunk):
            if index == 0 and deblurrer.ends == 'replicate':
                self.feats.extend([feats[:, k]] * model.past_frames)
            self.feats.append(feats[:, k])
            if index >= model.past_frames or deblurrer.ends == 'replicate':
                self.waiting.append((index, frames, padded, None if priors is None else priors[:, k]))
            self._take_ready()
        self.chunk = []

    def _take_ready(self) -> None:
        if len(self.feats) == self.model.window and self.waiting:
            self.ready.append((self.waiting.popleft(), tuple(self.feats)))

    def _decode(self, final: bool) -> list[list[DeblurredFrame]]:
        """Outputs of `ready`, decoded K at a time: whole groups only, unless `final` (then a
        shorter last group is repeated to K: one program)."""
        deblurrer, size = self.deblurrer, self.deblurrer.chunk_frames
        height, width = self.shape[1:3]
        done = []
        while len(self.ready) >= size or (final and self.ready):
            group, self.ready = self.ready[:size], self.ready[size:]
            padded = group + group[-1:] * (size - len(group))
            centres = jnp.asarray(np.concatenate([entry[2] for entry, _ in padded]))
            outputs = deblurrer._decode(deblurrer.variables, [window for _, window in padded], centres)
            outputs = np.asarray(outputs, np.float32).reshape((size, -1) + outputs.shape[1:])
            for ((index, frames, _, priors), _), output in zip(group, outputs):
                done.append([DeblurredFrame(index, frames[b], output[b, :height, :width],
                                            None if priors is None else priors[b, :height, :width])
                             for b in range(len(frames))])
        return done

    def push(self, index: int, frames: np.ndarray) -> list[list[DeblurredFrame]]:
        """Time step `index` `[B, H, W, 3]` in; the outputs that became ready (K at a time)."""
        if self.shape is not None and frames.shape != self.shape:
            raise ValueError(f'frame {index}: shape {frames.shape[1:]} differs from the first '
                             f'frame\'s {self.shape[1:]}')
        padded = self.deblurrer._pad(frames)
        if self.shape is None:
            self.shape = frames.shape
            self.carry = self.model.init_carry(*padded.shape[:3])
        self.chunk.append((index, frames, padded))
        if len(self.chunk) < self.deblurrer.chunk_frames:
            return []
        self._encode_chunk()
        return self._decode(final=False)

    def finish(self) -> list[list[DeblurredFrame]]:
        """The outputs still owed at the end of the video."""
        if self.shape is None:
            raise ValueError('no frames')
        if self.chunk:
            self._encode_chunk()
        if self.deblurrer.ends == 'replicate':
            while self.waiting:
                self.feats.append(self.feats[-1])
                self._take_ready()
        return self._decode(final=True)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """First pixels of tiles of `tile` pixels covering `length`, neighbours overlapping by at
    least `overlap` (the last tile moved back to end at `length`)."""
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise UserError(f'tile overlap {overlap} must be at least 0 and less than the tile ({tile})')
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
            ready = [[out for (out,) in stream.push(index, frame[None, rows, cols])]
                     for stream, (rows, cols, _) in zip(streams, layout)]
            for outputs in zip(*ready):
                done = outputs[0].index
                yield self._blend(pending.pop(done), layout, list(outputs))
                for skipped in [i for i in pending if i < done]:  # ends='drop': no output for them
                    del pending[skipped]
        if streams is None:
            raise ValueError('no frames')
        for outputs in zip(*([out for (out,) in stream.finish()] for stream in streams)):
            yield self._blend(pending.pop(outputs[0].index), layout, list(outputs))


def deblur_in_chunks(deblurrer: StreamingDeblurrer | TiledDeblurrer, frames: Iterable[np.ndarray],
                     every: int) -> Iterator[DeblurredFrame]:
    """`deblurrer`'s outputs with the state reset every `every` frames, chunked as the
    original's test (see the module doc); `deblurrer.ends` decides the video's two ends."""
    past, future = deblurrer.model.past_frames, deblurrer.model.future_frames
    if every <= past + future:
        raise UserError(f'reset every {every} frames: a chunk needs more than {past + future} frames')
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


def make_deblurrer(model: MMPRNN, variables, ends: str = 'replicate', dtype: str | None = None,
                   tile: tuple[int, int] | None = None, tile_overlap: int = 32,
                   chunk_frames: int = 1) -> StreamingDeblurrer | TiledDeblurrer:
    """One deblurrer for any number of videos: its programs compile once per frame size."""
    deblurrer = StreamingDeblurrer(model, variables, ends, dtype, chunk_frames)
    return TiledDeblurrer(deblurrer, tile, tile_overlap) if tile is not None else deblurrer
