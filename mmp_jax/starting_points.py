"""What stage 2 starts from, read from disk: MMP-Net for the prior (`mmpnet_variables`) and,
for fine-tuning, a whole MMP-RNN (`mmprnn_variables`).

`config.mmpnet.checkpoint` may be
    a stage-1 workdir            its latest `checkpoints/mmpnet/` checkpoint
    a model folder               the prior inside a converted (`tools.convert_checkpoint`) or
                                 exported MMP-RNN (`<workdir>/model`, or a workdir holding one)
    an original MMP-Net file     the repository's `model_best.pth.tar` (`UNet().state_dict()`;
                                 `.pth`, `.npz` too), converted in memory as the converter does;
                                 `config.mmpnet.channel_order` ('rgb' or 'bgr') must say which
                                 colour order its frames had (the repository's was trained on
                                 PIL-read frames, RGB: LearningMMP/MMPtraining.ipynb).
`config.mmprnn.init_checkpoint` is a model folder whose model config must match `config.model`.

Both return Flax variables `{'params': ..., 'batch_stats': ...}` (nested dicts of arrays).
"""
import pathlib

import numpy as np

from mmp_jax.errors import UserError
from mmp_jax import checkpoint, convert
from mmp_jax.io import paths
from mmp_jax.models.mmp_rnn import prior_variables
from mmp_jax.torch_pickle import load_state_dict

# Model config fields that do not change what the weights compute (how the recurrence compiles).
NOT_MODEL_FIELDS = ('scan_unroll',)
# ... and those that change how stage 2 trains, not what the weights compute (evaluation and
# inference run MMP-Net on its running statistics either way): a resume keeps them, a start
# from other weights may change them.
TRAINING_FIELDS = ('prior_batch_norm',)


def _weights_part(variant):
    """'A9B10C18F8' -> 'A9B10C18' (F, the training sequence length, is not in the weights)."""
    return variant.split('F')[0] if isinstance(variant, str) else variant


def _original_file_variables(source: pathlib.Path, channel_order: str) -> dict:
    """An original MMP-Net file converted in memory; BGR-trained weights made to take RGB frames."""
    if channel_order not in convert.CHANNEL_ORDERS:
        raise UserError(f'config.mmpnet.checkpoint={source} is an original MMP-Net file: set '
                        f'--config.mmpnet.channel_order to the colour order of the frames it was trained on '
                        f'(rgb or bgr; the repository\'s model_best.pth.tar: rgb, read with PIL in '
                        f'LearningMMP/MMPtraining.ipynb); got {channel_order!r}')
    state = convert.mmp_net_state(load_state_dict(source), str(source))
    if channel_order == 'bgr':
        state = convert.bgr_to_rgb(state)
    return convert.convert_state_dict({k: np.asarray(v, np.float32) for k, v in state.items()})


def mmpnet_variables(source: str | pathlib.Path, channel_order: str = '') -> dict:
    """MMP-Net's variables from `source`: a stage-1 workdir, a model folder or an original file
    (see the module's docstring); `channel_order` applies to an original file only."""
    source = paths.as_path(source)
    if source.is_file():
        if paths.is_url(source):
            raise UserError(f'config.mmpnet.checkpoint={source}: an original MMP-Net file is read as a local '
                            f'file (zip or pickle); copy it to this machine')
        return _original_file_variables(pathlib.Path(source), channel_order)
    if channel_order:
        raise UserError(f'config.mmpnet.channel_order={channel_order!r} applies to an original MMP-Net file; '
                        f'{source} is a folder (its weights already take RGB frames): leave it empty')
    stage_one = source / 'checkpoints' / 'mmpnet'
    if stage_one.is_dir():
        restored = checkpoint.latest_saved_state(stage_one)
        if restored is None:
            raise UserError(f'{stage_one}: no MMP-Net checkpoint; train stage 1 first (configs/mmpnet_gopro.py)')
        return {'params': restored['params'], 'batch_stats': restored['batch_stats']}
    if not source.exists():
        raise UserError(f'config.mmpnet.checkpoint={source}: no such file or folder')
    try:
        return prior_variables(checkpoint.load_model(source)[1])
    except KeyError:
        raise UserError(f'config.mmpnet.checkpoint={source}: its model has no MMP-Net (use_mmam off or '
                        f'prior_source given)') from None


def model_differences(stored: dict, configured: dict) -> list[str]:
    """'field: stored X, config Y' for each model config field that differs (`NOT_MODEL_FIELDS`
    and `TRAINING_FIELDS` aside; the variants compared without F)."""
    fields = sorted((stored.keys() | configured.keys()) - set(NOT_MODEL_FIELDS) - set(TRAINING_FIELDS))
    stored, configured = ({**c, 'variant': _weights_part(c.get('variant'))} for c in (stored, configured))
    return [f'{field}: stored {stored.get(field)!r}, config {configured.get(field)!r}'
            for field in fields if stored.get(field) != configured.get(field)]


def mmprnn_variables(source: str | pathlib.Path, model_config) -> dict:
    """The variables of the MMP-RNN model folder `source`, whose stored model config must equal
    `model_config` (`config.model`); a ValueError naming every differing field otherwise."""
    directory = checkpoint.model_folder(source)
    differences = model_differences(checkpoint.load_model_config(directory), dict(model_config))
    if differences:
        raise UserError(f'config.mmprnn.init_checkpoint={directory}: a different model than config.model ('
                        f'{"; ".join(differences)}): set config.model to match it')
    return checkpoint.load_model(directory)[1]
