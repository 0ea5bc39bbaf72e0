"""A user's video or folder of frames deblurred into files: a deblurrer of `mmp_jax.infer`
streamed into `FrameWriter`s (the output, and the prior as a heat map), which appear only
when complete (see `frame_writers`; a SIGTERM or Ctrl-C under `interrupts.stop_on_signals`
leaves nothing behind)."""
import contextlib
import pathlib
from collections.abc import Iterator

import numpy as np
import tqdm

from mmp_jax.errors import UserError
from mmp_jax import interrupts
from mmp_jax.data.sources import FrameSource
from mmp_jax.frame_writers import FrameWriter, check_distinct
from mmp_jax.infer import StreamingDeblurrer, TiledDeblurrer, deblur_in_chunks
from mmp_jax.models.mmp_rnn import DOWNSAMPLE
from mmp_jax.visualize import heat_map


def frame_name(source: FrameSource, index: int) -> str:
    """The output file name of input frame `index`: a folder's frame keeps its name (as PNG),
    a video's frame is named by its index in the video."""
    if source.names is not None:
        return pathlib.Path(source.names[index]).stem + '.png'
    return f'{index:06d}.png'


def check_length(source: FrameSource, ends: str, model) -> None:
    """UserError naming `source` where `ends` 'drop' would leave it no output (it writes frames
    past .. T-future-1 of T, so it needs the model's window, 5 frames), for a source that states
    its frame count; a check before any work."""
    if ends == 'drop' and source.count is not None and source.count < model.window:
        raise UserError(f'{source.path}: {source.count} frames; --ends drop writes frames {model.past_frames}..'
                        f'T-{model.future_frames + 1} of T, so it needs at least {model.window}')


def _checked_sizes(source: FrameSource, model) -> Iterator[np.ndarray]:
    """`source.frames`, the first checked to be large enough for `model` (frames are padded to a
    multiple of DOWNSAMPLE, then need `model.min_frame_side` a side): a UserError naming the input
    and its frame size, before any work, rather than the model's message about the padded size."""
    smallest = model.min_frame_side - DOWNSAMPLE + 1
    for index, frame in enumerate(source.frames):
        if index == 0 and min(frame.shape[:2]) < smallest:
            raise UserError(f'{source.path}: frames of {frame.shape[1]}x{frame.shape[0]} are too small for '
                            f'MMP-Net (at least {smallest} pixels a side)')
        yield frame


def deblur_file(deblurrer: StreamingDeblurrer | TiledDeblurrer, source: FrameSource, output: str,
                prior_output: str | None = None, side_by_side: bool = False, progress: bool = True,
                overwrite: bool = False, reset_every: int = 0, audio: bool = True, **writer_options) -> int:
    """Deblurs a `mmp_jax.data.sources.FrameSource` into `output` (video by suffix, else a
    folder of PNGs named as the input frames); `prior_output` gets the prior as a heat map;
    `side_by_side` writes input | output; `reset_every` > 0 resets the state as the original's
    test (`deblur_in_chunks`); `audio` copies the input's audio into a video output; a video input's frame
    times are kept (a variable frame rate, `--ends drop`'s first frame at its time, in sync with the audio);
    `writer_options` (codec, quality) go to the `FrameWriter`s. Outputs appear only
    when complete, and never over the input or an existing output unless `overwrite` (see
    `frame_writers`). Returns the number of frames written."""
    check_distinct(source.path, {'--output': output, '--prior': prior_output})
    if prior_output is not None and not deblurrer.model.use_mmam:
        raise UserError('--prior: this model has no MMP-Net (use_mmam is off)')
    with contextlib.ExitStack() as stack:
        with interrupts.held():  # each temporary is the stack's to remove from the moment it exists
            out = stack.enter_context(FrameWriter(output, source.fps, overwrite, **writer_options,
                                                  audio_from=source.path if audio else None))
            prior_out = (stack.enter_context(FrameWriter(prior_output, source.fps, overwrite, **writer_options))
                         if prior_output is not None else None)
        bar = stack.enter_context(tqdm.tqdm(total=source.count, unit='frame', disable=not progress,
                                            desc=str(source.path.name)))
        written = 0
        frames = _checked_sizes(source, deblurrer.model)
        stream = deblur_in_chunks(deblurrer, frames, reset_every) if reset_every else deblurrer(frames)
        for frame in stream:
            picture = frame.sharp
            if side_by_side:
                picture = np.concatenate([frame.blurry, picture], axis=1)
            name = frame_name(source, frame.index)
            time = None if source.times is None else source.times[frame.index]  # a video's: kept
            out.write(picture, name, time)
            if prior_out is not None:
                prior_out.write(heat_map(frame.prior), name, time)
            written += 1
            bar.update(1)
        with interrupts.held():  # every output committed, or (an error, a signal) none
            interrupts.raise_if_received()  # a signal whose exception a finalizer swallowed
            stack.close()
    return written
