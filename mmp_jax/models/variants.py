"""Variant names of the paper, `A<n_a>B<n_b>C<n_c>F<frames>`, and the model factory.

n_a: RDBs in RDB-Net-A (the cell), n_b: RDBs in RDB-Net-B (reconstruction), n_c: base
channels, frames: length of a training sequence (not part of the network's weights).
"""
import dataclasses
import re

from mmp_jax.errors import UserError
from mmp_jax.models.mmp_rnn import MMPRNN

PAPER_VARIANTS = ('A3B4C16F5', 'A7B8C16F8', 'A8B9C18F8', 'A9B10C18F8')
_PATTERN = re.compile(r'A(\d+)B(\d+)C(\d+)F(\d+)')
# bounds on a variant's numbers, far above the paper's (A9B10C18F8): a name from a command line or
# a checkpoint's config cannot make a model whose tracing never ends or whose weights fill memory
MAX_BLOCKS, MAX_FEATURES, MAX_FRAMES = 256, 1024, 256

# A model's config (configs/default.py's `config.model`; what a converted checkpoint records):
# the paper's model with every switch on.
MODEL_DEFAULTS = {
    'variant': 'A9B10C18F8',      # A<n_a>B<n_b>C<n_c>F<frames>
    'past_frames': 2,             # features f(t-2), f(t-1) fused for frame t
    'future_frames': 2,           # f(t+1), f(t+2): output t waits two frames
    'activation': 'gelu',         # the original's --activation
    'do_skip': True,              # global 9x9 skip of the input frame
    'fusion_attention': True,     # channel attention in the fusion (outer copy of the code)
    'use_mmam': True,             # Table 4 "MMAM": off removes MMAM and MMP-Net
    'transmit_ndf': True,         # Table 4 "NDF": off feeds zeros for l(t-1)
    'prior_source': 'mmpnet',     # Table 5: 'mmpnet' (VI) or 'given' (I-III: GT MMP fed in)
    'prior_batch_norm': 'running',  # MMP-Net's BatchNorm in stage-2 training: 'running' statistics
                                  # (the paper's frozen prior) or 'batch' ones (the released code's)
    'centralize': True,           # input minus 0.5, as the original's data loader
    'normalize': True,            # input in units of 1/255 (off: units of 1)
    'scan_unroll': True,          # recurrence unrolled (3-7x faster steps on CPU); False: a loop
    'dtype': 'float32',           # compute dtype: 'float32' or 'bfloat16' (parameters stay float32)
    'remat': 'none',              # 'full': the cell recomputed in the backward pass (needs scan_unroll False)
}


@dataclasses.dataclass(frozen=True)
class Variant:
    n_blocks_a: int
    n_blocks_b: int
    n_features: int
    frames: int

    @property
    def name(self) -> str:
        return f'A{self.n_blocks_a}B{self.n_blocks_b}C{self.n_features}F{self.frames}'


def parse_variant(name: str) -> Variant:
    """'A9B10C18F8' -> Variant(9, 10, 18, 8); anything else raises ValueError."""
    match = _PATTERN.fullmatch(name.strip())
    if not match:
        raise UserError(f'unknown variant {name!r}: expected A<n_a>B<n_b>C<n_c>F<frames>, '
                        f'e.g. A9B10C18F8 (the paper\'s: {", ".join(PAPER_VARIANTS)})')
    variant = Variant(*(int(g) for g in match.groups()))
    if min(variant.n_blocks_a, variant.n_blocks_b, variant.frames) < 1 or variant.n_features < 2:
        raise UserError(f'variant {name!r}: block counts and frames must be >= 1, channels >= 2')
    if (max(variant.n_blocks_a, variant.n_blocks_b) > MAX_BLOCKS or variant.n_features > MAX_FEATURES
            or variant.frames > MAX_FRAMES):
        raise UserError(f'variant {name!r}: at most {MAX_BLOCKS} blocks, {MAX_FEATURES} channels and '
                        f'{MAX_FRAMES} frames')
    return variant


def model_from_variant(name: str, **overrides) -> MMPRNN:
    """`MMPRNN` of a named variant; `overrides` set the other fields (ablation switches)."""
    variant = parse_variant(name)
    return MMPRNN(n_features=variant.n_features, n_blocks_a=variant.n_blocks_a,
                  n_blocks_b=variant.n_blocks_b, **overrides)


def model_from_config(model_config) -> MMPRNN:
    """`MMPRNN` from a `config.model` ConfigDict or mapping: `variant` plus MMPRNN fields."""
    fields = dict(model_config)
    variant = fields.pop('variant')
    allowed = {f.name for f in dataclasses.fields(MMPRNN)} - {'parent', 'name', 'n_features',
                                                              'n_blocks_a', 'n_blocks_b'}
    unknown = set(fields) - allowed
    if unknown:
        raise UserError(f'unknown model config fields: {", ".join(sorted(unknown))}')
    return model_from_variant(variant, **fields)
