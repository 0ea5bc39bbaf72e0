"""Converts the original PyTorch MMP-RNN checkpoint (and optionally its MMP-Net) to ours.

    python -m tools.convert_checkpoint --mmp-rnn MODEL.pth.tar [--mmp-net MMPNET.pth.tar] \\
        --variant A9B10C18F8 --out DIR

Checkpoints are dicts with a `state_dict` (DataParallel `module.` prefixes or not), or a
bare state_dict; `.npz` files of the same keys work too. Nothing in the file is executed (see
`mmp_jax.torch_pickle`). `--mmp-net` replaces the prior's weights stored in the MMP-RNN
checkpoint (`cell.prior.*`). The original reads frames with OpenCV, in BGR order: by default
the colour axes of the first and last layers are reversed so that our RGB pipeline gives the
original's results (`--channel-order rgb` keeps them). Every tensor must find its place by
name and shape; anything else is an error listing the keys. `DIR` is then read by
`python -m tools.deblur --checkpoint DIR`.
"""
import argparse
import sys

import numpy as np

from mmp_jax import checkpoint
from mmp_jax.models.variants import model_from_config, parse_variant
from mmp_jax.torch_pickle import CheckpointReadError, load_state_dict
from configs import default

PRIOR_PREFIX = 'cell.prior.'


def convert(mmp_rnn: str, variant: str, out: str, mmp_net: str | None = None,
            fusion_attention: bool = True, channel_order: str = 'bgr') -> dict:
    """Reads, converts, checks and saves; returns the stored model config."""
    parse_variant(variant)
    state = checkpoint.without_data_parallel_prefix(load_state_dict(mmp_rnn))
    found = checkpoint.infer_variant(state)
    if found is None:
        raise checkpoint.CheckpointError(f'{mmp_rnn}: not an MMP-RNN state_dict (no cell.F_B0)')
    if not variant.startswith(found + 'F'):
        raise checkpoint.CheckpointError(f'{mmp_rnn}: holds {found}, --variant says {variant}')
    if mmp_net is not None:
        prior = load_state_dict(mmp_net)
        state = {k: v for k, v in state.items() if not k.startswith(PRIOR_PREFIX)}
        state.update({PRIOR_PREFIX + k: v
                      for k, v in checkpoint.without_data_parallel_prefix(prior).items()})
    if channel_order == 'bgr':
        state = checkpoint.bgr_to_rgb(state)
    model_config = dict(default.get_config().model, variant=variant,
                        fusion_attention=fusion_attention)
    model = model_from_config(model_config)
    drop = () if fusion_attention else ('fusion.ca.',)
    variables = checkpoint.convert_state_dict({k: np.asarray(v, np.float32) for k, v in state.items()},
                                              drop_prefixes=drop)
    checkpoint.check_same_structure(variables, checkpoint.expected_variables(model),
                                    mmp_net or mmp_rnn)
    checkpoint.save_model(out, variables, model_config)
    return model_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--mmp-rnn', required=True, help='original MMP-RNN checkpoint (.pth.tar, .pth, .npz)')
    parser.add_argument('--mmp-net', help='original MMP-Net checkpoint for the prior (optional)')
    parser.add_argument('--variant', required=True, help='e.g. A9B10C18F8')
    parser.add_argument('--out', required=True, help='new folder for the converted checkpoint')
    parser.add_argument('--no-fusion-attention', action='store_true',
                        help='the checkpoint was trained with the copy of the code whose fusion '
                             'has no channel attention (MMP-RNN/MMP-RNN/model/MMPRNN.py)')
    parser.add_argument('--channel-order', choices=('bgr', 'rgb'), default='bgr',
                        help='colour order the weights were trained on (the original: bgr)')
    args = parser.parse_args(argv)
    try:
        config = convert(args.mmp_rnn, args.variant, args.out, args.mmp_net,
                         not args.no_fusion_attention, args.channel_order)
    except (CheckpointReadError, checkpoint.CheckpointError, ValueError) as error:
        print(f'convert_checkpoint: {error}', file=sys.stderr)
        return 2
    print(f'wrote {args.out} ({config["variant"]}, fusion attention '
          f'{"on" if config["fusion_attention"] else "off"}, channel order {args.channel_order})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
