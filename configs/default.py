"""Shared defaults. The model fields are the Table 4 / 5 switches of the paper.

    python -m tools.run_clip --config=configs/default.py --config.model.variant=A3B4C16F5
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict({
        'variant': 'A9B10C18F8',      # A<n_a>B<n_b>C<n_c>F<frames>
        'past_frames': 2,             # features f(t-2), f(t-1) fused for frame t
        'future_frames': 2,           # f(t+1), f(t+2): output t waits two frames
        'activation': 'gelu',         # the original's --activation
        'do_skip': True,              # global 9x9 skip of the input frame
        'fusion_attention': True,     # channel attention in the fusion (outer copy of the code)
        'use_mmam': True,             # Table 4 "MMAM": off removes MMAM and MMP-Net
        'transmit_ndf': True,         # Table 4 "NDF": off feeds zeros for l(t-1)
        'prior_source': 'mmpnet',     # Table 5: 'mmpnet' (VI) or 'given' (I-III: a prior fed in)
        'centralize': True,           # input minus 0.5, as the original's data loader
        'normalize': True,            # input in units of 1/255 (off: units of 1)
    })
    return config
