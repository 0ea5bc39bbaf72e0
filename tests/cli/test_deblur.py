"""The original's checkpoint through `tools.convert_checkpoint` and `tools.deblur`.

A checkpoint with the original's keys (`module.` prefixes, as DataParallel saves them) and the
seeded random weights of `tests/references/original_reference.npz` is written as .npz (and as a
torch.save .pth.tar where torch is installed); its frames are written as PNGs the way the
original reads them (cv2, BGR). Our output must be the original's.
"""
import dataclasses
import pathlib

import cv2
import numpy as np
import pytest

from mmp_jax import deblur_run
from mmp_jax.checkpoint import load_model
from mmp_jax.infer import StreamingDeblurrer
from tests import original_reference as ref
from mmp_jax.cli import convert_checkpoint, deblur

VARIANT = f'A{ref.TINY["n_blocks_a"]}B{ref.TINY["n_blocks_b"]}C{ref.TINY["n_features"]}F7'


def _write_checkpoint(directory: pathlib.Path, fmt: str) -> pathlib.Path:
    state = {f'module.{k}': v for k, v in ref.random_state_dict(ref.load_keys()['mmp_rnn_tiny']).items()}
    if fmt == 'npz':
        path = directory / 'original.npz'
        np.savez(path, **state)
        return path
    torch = pytest.importorskip('torch')
    path = directory / 'original.pth.tar'
    torch.save({'epoch': 1, 'state_dict': {k: torch.from_numpy(v) for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope='module')
def reference():
    return dict(np.load(ref.REFERENCE_FILE))


@pytest.fixture(scope='module')
def frames_dir(tmp_path_factory, reference):
    folder = tmp_path_factory.mktemp('frames')
    for t, frame in enumerate(reference['frames'][0]):
        cv2.imwrite(str(folder / f'{t:08d}.png'), frame)  # the original reads these as BGR
    return folder


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    directory = tmp_path_factory.mktemp('ckpt')
    out = directory / 'converted'
    assert convert_checkpoint.main(['--mmp-rnn', str(_write_checkpoint(directory, 'npz')),
                                    '--variant', VARIANT, '--trained-on', 'bsd', '--out', str(out)]) == 0
    return out


def test_converted_weights_give_the_original_outputs(converted, reference):
    model, variables, config = load_model(converted)
    assert config['variant'] == VARIANT and config['fusion_attention']
    rgb = reference['frames'][0][..., ::-1]  # what our readers give for those PNGs
    outputs = [f.output for f in StreamingDeblurrer(model, variables, 'drop')(iter(rgb))]
    ours = np.stack(outputs)[..., ::-1] - 0.5  # back to the original's BGR, normalised
    assert np.abs(ours - reference['mmp_rnn_attention'][0]).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('fmt,chunk', [('npz', '3'), ('pth', '1')])
def test_deblur_cli_writes_the_original_frames(tmp_path, frames_dir, reference, fmt, chunk):
    ckpt = tmp_path / 'ckpt'
    assert convert_checkpoint.main(['--mmp-rnn', str(_write_checkpoint(tmp_path, fmt)),
                                    '--variant', VARIANT, '--trained-on', 'bsd', '--out', str(ckpt)]) == 0
    out, prior = tmp_path / 'out', tmp_path / 'prior'
    assert deblur.main(['--checkpoint', str(ckpt), '--input', str(frames_dir), '--output', str(out),
                        '--prior', str(prior), '--chunk-frames', chunk, '--quiet']) == 0
    written = sorted(out.iterdir())
    assert len(written) == ref.FRAMES and len(list(prior.iterdir())) == ref.FRAMES
    expected = np.round(np.clip(reference['mmp_rnn_attention'][0] + 0.5, 0, 1) * 255)
    got = np.stack([cv2.imread(str(p)) for p in written[2:5]]).astype(np.float64)  # BGR, as saved
    assert np.abs(got - expected).max() <= 1  # 8-bit rounding of values within 1e-4


def test_video_in_video_out_side_by_side(tmp_path, converted, reference):
    video = tmp_path / 'in.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 12.0, (ref.WIDTH, ref.HEIGHT))
    for frame in reference['frames'][0]:
        writer.write(frame)
    writer.release()
    out = tmp_path / 'out.mp4'
    assert deblur.main(['--checkpoint', str(converted), '--input', str(video), '--output', str(out),
                        '--side-by-side', '--quiet']) == 0
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == ref.FRAMES
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 2 * ref.WIDTH
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.avi', 'out.mp4']


def test_every_setting_of_the_engine_is_a_flag_of_the_command():
    args = deblur.parse_args(['--checkpoint', 'c', '--input', 'a.mp4', 'b', '--output', 'o', '--tile', '48', '64'])
    settings = deblur.settings_of(args)
    assert (settings.input, settings.tile, settings.chunk_frames) == (('a.mp4', 'b'), (48, 64), 1)
    fields = dataclasses.fields(deblur_run.DeblurSettings)
    assert {field.name for field in fields} == set(vars(args))
    defaults = deblur.parse_args(['--checkpoint', 'c', '--input', 'a', '--output', 'o'])
    assert all(field.default == getattr(defaults, field.name) for field in fields
               if field.default is not dataclasses.MISSING)


@pytest.mark.slow
def test_the_engine_deblurs_without_the_command_line(tmp_path, converted, frames_dir):
    out = tmp_path / 'out'
    settings = deblur_run.DeblurSettings(checkpoint=str(converted), input=(str(frames_dir),), output=str(out),
                                         ends='drop', quiet=True)
    assert deblur_run.deblur(settings) == [(str(out), ref.FRAMES - 4)]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in frames_dir.iterdir())[2:-2]


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(('.', 'out')))


def test_bad_inputs_fail_with_one_line_and_leave_nothing(tmp_path, converted, frames_dir, capsys):
    corrupt = tmp_path / 'corrupt.mp4'
    corrupt.write_bytes(b'\x00' * 100)
    empty = tmp_path / 'empty'
    empty.mkdir()
    broken = tmp_path / 'broken'
    broken.mkdir()
    for src in sorted(frames_dir.iterdir())[:4]:
        (broken / src.name).write_bytes(src.read_bytes())
    (broken / '00000004.png').write_bytes(b'not a png')
    cases = [
        (['--input', str(corrupt)], f'{corrupt}: '),
        (['--input', str(empty)], f'{empty}: no frames'),
        (['--input', str(broken)], '00000004.png: cannot be read as an image'),
        (['--input', str(tmp_path / 'missing.mp4')], 'missing.mp4: no such file or folder'),
        (['--input', str(frames_dir), '--checkpoint', str(tmp_path / 'nockpt')], 'nockpt: no such checkpoint'),
        (['--input', str(frames_dir), '--variant', 'A9B10C18F8'], f'holds {VARIANT}, --variant says A9B10C18F8'),
    ]
    for args, message in cases:
        argv = ['--checkpoint', str(converted), '--output', str(tmp_path / 'out.mp4'), '--quiet'] + args
        assert deblur.main(argv) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert _leftovers(tmp_path) == [], args


def test_converter_refuses_another_variant_and_unknown_keys(tmp_path, capsys):
    source = _write_checkpoint(tmp_path, 'npz')
    assert convert_checkpoint.main(['--mmp-rnn', str(source), '--variant', 'A9B10C18F8', '--trained-on', 'bsd',
                                    '--out', str(tmp_path / 'x')]) == 2
    assert 'holds A2B2C8, --variant says A9B10C18F8' in capsys.readouterr().err
    state = dict(np.load(source))
    state['module.cell.extra.weight'] = np.zeros((1, 1, 1, 1), np.float32)
    np.savez(tmp_path / 'extra.npz', **state)
    assert convert_checkpoint.main(['--mmp-rnn', str(tmp_path / 'extra.npz'), '--variant', VARIANT,
                                    '--trained-on', 'bsd', '--out', str(tmp_path / 'y')]) == 2
    assert 'unexpected params/cell/extra/kernel' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists() and not (tmp_path / 'y').exists()
