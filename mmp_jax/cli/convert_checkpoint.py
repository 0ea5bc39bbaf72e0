"""Converts the original PyTorch MMP-RNN checkpoint (and optionally its MMP-Net) to ours.

`mmp-convert` once installed (the same arguments), or from a checkout:
    python -m tools.convert_checkpoint --mmp-rnn MODEL.pth.tar --trained-on bsd|gopro \\
        [--mmp-net MMPNET.pth.tar] --variant A9B10C18F8 --out DIR

Every form the original writes is read: the trainer's (`module.model.` keys, beside `epoch`,
`optimizer`, `scheduler`, `register_dict`, which are ignored), DataParallel's `module.`,
`model.`, bare keys; with or without the `state_dict` wrapper; `.npz` files of the same keys
too. Nothing in the file is executed (see `mmp_jax.torch_pickle`).

Colour order: the weights expect frames in the order they were trained on. `--trained-on gopro`
(RGB) or `--trained-on bsd` (BGR), or `--channel-order rgb|bgr` for other weights, is required:
for BGR weights the colour axes of the first and last layers are reversed so that our RGB
pipeline gives the original's results.

`--mmp-net` replaces the prior's weights stored in the MMP-RNN checkpoint (`cell.prior.*`)
with the repository's MMP-Net file (`UNet().state_dict()`). The original's test does not do
that: it loads the checkpoint last, so the checkpoint's own prior (whose BatchNorm statistics
moved during stage 2) is the one that gives the authors' figures. Every tensor must find its
place by name and shape; anything else is an error listing the keys. `DIR` is then read by
`python -m tools.deblur --checkpoint DIR` and `python -m mmp_jax.main --mode=eval
--config.eval.checkpoint=DIR`.
"""
import argparse
import sys

import numpy as np

from mmp_jax.cli.arguments import one_line
from mmp_jax import checkpoint, convert
from mmp_jax.models.variants import MODEL_DEFAULTS, model_from_config, parse_variant
from mmp_jax.torch_pickle import CheckpointReadError, load_state_dict


def convert_files(mmp_rnn: str, variant: str, out: str, order: str, mmp_net: str | None = None,
                  fusion_attention: bool = True) -> dict:
    """Reads, converts, checks and saves; returns the stored model config. `order` is the
    colour order the weights were trained on ('rgb' or 'bgr')."""
    parse_variant(variant)
    state = convert.mmp_rnn_state(load_state_dict(mmp_rnn), mmp_rnn)
    found = convert.infer_variant(state)
    if not variant.startswith(found + 'F'):
        raise checkpoint.CheckpointError(f'{mmp_rnn}: holds {found}, --variant says {variant}')
    if mmp_net is not None:
        prior = convert.mmp_net_state(load_state_dict(mmp_net), mmp_net)
        state = {k: v for k, v in state.items() if not k.startswith(convert.PRIOR_PREFIX)}
        state.update({convert.PRIOR_PREFIX + k: v for k, v in prior.items()})
    if order == 'bgr':
        state = convert.bgr_to_rgb(state)
    # sorted, as a ConfigDict lists them: the JSON the checkpoint records keeps its key order
    model_config = dict(sorted(MODEL_DEFAULTS.items()), variant=variant, fusion_attention=fusion_attention)
    model = model_from_config(model_config)
    drop = () if fusion_attention else ('fusion.ca.',)
    variables = convert.convert_state_dict({k: np.asarray(v, np.float32) for k, v in state.items()},
                                           drop_prefixes=drop)
    convert.check_same_structure(variables, checkpoint.expected_variables(model),
                                 f'{mmp_rnn}' + (f' with {mmp_net}' if mmp_net else ''))
    checkpoint.save_model(out, variables, model_config)
    return model_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--mmp-rnn', required=True, help='original MMP-RNN checkpoint (.pth.tar, .pth, .npz)')
    parser.add_argument('--mmp-net', help='original MMP-Net file to replace the prior stored in --mmp-rnn')
    parser.add_argument('--variant', required=True, help='e.g. A9B10C18F8')
    parser.add_argument('--out', required=True, help='new folder for the converted checkpoint')
    parser.add_argument('--trained-on', choices=tuple(convert.TRAINED_ON),
                        help='the data set of the released checkpoint: gopro (RGB frames) or bsd (BGR)')
    parser.add_argument('--channel-order', choices=convert.CHANNEL_ORDERS,
                        help='colour order of the frames the weights were trained on (other weights)')
    parser.add_argument('--no-fusion-attention', action='store_true',
                        help='the checkpoint was trained with the copy of the code whose fusion '
                             'has no channel attention (MMP-RNN/MMP-RNN/model/MMPRNN.py)')
    args = parser.parse_args(argv)
    try:
        order = convert.channel_order(args.trained_on, args.channel_order)
        config = convert_files(args.mmp_rnn, args.variant, args.out, order, args.mmp_net,
                               not args.no_fusion_attention)
    except (CheckpointReadError, checkpoint.CheckpointError, ValueError) as error:
        print(one_line(f'convert_checkpoint: {error}'), file=sys.stderr)
        return 2
    except OSError as error:  # an unwritable --out, a full disk
        print(one_line(f'convert_checkpoint: {error.filename or args.out}: {error.strerror or error}'), file=sys.stderr)
        return 2
    print(f'wrote {args.out} ({config["variant"]}, fusion attention '
          f'{"on" if config["fusion_attention"] else "off"}, weights trained on {order.upper()} frames)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
