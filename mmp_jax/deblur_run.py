"""A deblur run as `DeblurSettings` say (the flags of `mmp-deblur`, `mmp_jax.cli.deblur`, whose
help says what each means): the checkpoint loaded, the jobs planned and every input opened and
checked before anything is written (`deblur_plan`), one deblurrer for all of them (one compiled
program per frame size), each input deblurred into its outputs (`deblur_files`) and, where they
are URLs, published.
"""
import dataclasses
import pathlib

from mmp_jax import deblur_plan
from mmp_jax.checkpoint import CheckpointError, load_model
from mmp_jax.data.decode_limits import DEFAULT_MAX_PIXELS
from mmp_jax.data.sources import open_frames
from mmp_jax.deblur_files import check_length, deblur_file
from mmp_jax.errors import UserError
from mmp_jax.infer import make_deblurrer
from mmp_jax.io import staging


@dataclasses.dataclass(frozen=True)
class DeblurSettings:
    """One run: inputs, outputs and how they are deblurred and written; settings that contradict
    one another are refused when made (a UserError naming the flags)."""
    checkpoint: str                        # a model folder or a training workdir (paths or URLs)
    input: tuple[str, ...]                 # videos and frame folders; a folder of videos
    output: str                            # the output, or the folder of several inputs' outputs
    overwrite: bool = False
    prior: str | None = None               # also the prior as a heat map here
    side_by_side: bool = False
    dtype: str | None = None               # compute dtype (None: the model's)
    ends: str = 'replicate'                # `mmp_jax.infer.ENDS`
    reset_every: int = 0                   # > 0: the original test's state resets every N frames
    codec: str | None = None               # 'h264' or 'lossless' (None: by suffix)
    crf: int | None = None                 # H.264 quality
    no_audio: bool = False
    tile: tuple[int, int] | None = None    # (height, width) of tiles, each with its own state
    tile_overlap: int = 32
    chunk_frames: int = 1                  # frames per call of the non-recurrent parts
    fps: float = 25.0                      # of a frame folder
    allow_truncated: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    variant: str | None = None             # refuse a checkpoint of another variant
    quiet: bool = False                    # no progress bar

    def __post_init__(self):
        # one path given alone, and sizes as lists, are taken as what they mean
        object.__setattr__(self, 'input', (self.input,) if isinstance(self.input, str) else tuple(self.input))
        object.__setattr__(self, 'tile', None if self.tile is None else tuple(self.tile))
        if self.tile is not None and (min(self.tile) < 16 or not 0 <= self.tile_overlap < min(self.tile)):
            raise UserError(f'--tile {self.tile[0]} {self.tile[1]}: tiles need at least 16 pixels a side and an '
                            f'overlap of 0 .. {min(self.tile) - 1} (got --tile-overlap {self.tile_overlap})')
        if self.chunk_frames < 1:
            raise UserError(f'--chunk-frames must be at least 1, got {self.chunk_frames}')
        if self.reset_every < 0:
            raise UserError(f'--reset-every must be 0 or positive, got {self.reset_every}')


def deblur(settings: DeblurSettings) -> list[tuple[str, int]]:
    """Deblurs as `settings` say; returns (output, frames written) per input. Every input is
    opened and every output checked before the first is written (`deblur_plan`)."""
    model, variables, config = load_model(settings.checkpoint)
    if settings.variant and settings.variant != config['variant']:
        raise CheckpointError(f'{settings.checkpoint}: holds {config["variant"]}, --variant says {settings.variant}')
    with staging.scratch() as scratch:
        jobs = deblur_plan.plan(list(settings.input), settings.output, settings.prior, settings.overwrite,
                                pathlib.Path(scratch))
        source_of = lambda job: open_frames(job.input, folder_fps=settings.fps, max_pixels=settings.max_pixels,
                                            allow_truncated=settings.allow_truncated)
        for job in jobs:  # every input opened and checked first, each closed again until its turn
            with source_of(job) as source:
                check_length(source, settings.ends, model)
        deblurrer = make_deblurrer(model, variables, settings.ends, settings.dtype, settings.tile,
                                   settings.tile_overlap, settings.chunk_frames)
        written = []
        for job in jobs:
            with source_of(job) as source:
                count = deblur_file(deblurrer, source, job.write_output, job.write_prior, settings.side_by_side,
                                    progress=not settings.quiet, overwrite=settings.overwrite,
                                    reset_every=settings.reset_every, audio=not settings.no_audio,
                                    codec=settings.codec, quality=settings.crf)
            deblur_plan.publish(job)
            written.append((job.output, count))
        return written
