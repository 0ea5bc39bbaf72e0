"""One user-facing error: every command turns a UserError (and an OSError) into one line and exit
2; anything else, a bug, keeps its traceback."""
import pytest

from mmp_jax import errors
from mmp_jax.checkpoint import CheckpointError
from mmp_jax.cli import deblur, export_tfrecords, score
from mmp_jax.data import export
from mmp_jax.data.decode_limits import FrameSizeError
from mmp_jax.data.sources import SourceError
from mmp_jax.frame_writers import OutputError
from mmp_jax.stages import TrainingError
from mmp_jax.torch_pickle import CheckpointReadError
from mmp_jax.video_encoding import EncodingError


def _raise(error: BaseException):
    def body(*args, **kwargs) -> int:
        raise error
    return body


def test_user_errors_are_one_line_and_exit_2(capsys):
    assert errors.run_command('tool', _raise(errors.UserError('in.mp4: no such file'))) == 2
    assert capsys.readouterr().err == 'tool: in.mp4: no such file\n'
    assert errors.run_command('tool', _raise(PermissionError(13, 'Permission denied', '/out/x.png'))) == 2
    assert capsys.readouterr().err == 'tool: /out/x.png: Permission denied\n'
    assert errors.run_command('tool', _raise(OSError(28, 'No space left on device'))) == 2
    assert capsys.readouterr().err == 'tool: No space left on device\n'  # no file named, none made up
    assert errors.run_command('tool', _raise(OSError(28, 'No space left on device')), 'out/') == 2
    assert capsys.readouterr().err == 'tool: out/: No space left on device\n'
    assert errors.run_command('tool', lambda: 0) == 0


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ValueError, match='a bug'):
        errors.run_command('tool', _raise(ValueError('a bug')))
    with pytest.raises(KeyError):
        errors.run_command('tool', _raise(KeyError('a bug')))


def test_every_layers_error_is_a_user_error():
    for kind in (SourceError, FrameSizeError, CheckpointError, CheckpointReadError, OutputError, EncodingError,
                 TrainingError, export.WorkerDied):
        assert issubclass(kind, errors.UserError), kind


@pytest.mark.parametrize('command, argv, engine', [
    (deblur, ['--checkpoint', 'c', '--input', 'i', '--output', 'o.mp4'], 'settings_of'),
    (export_tfrecords, ['--source', 'synthetic', '--out', 'o'], 'settings_of'),
    (score, ['--outputs', 'a', '--sharp', 'b'], 'match_sequences')])
def test_the_commands_let_a_bug_through(monkeypatch, command, argv, engine):
    monkeypatch.setattr(command, engine, _raise(ValueError('a bug, not the user')))
    with pytest.raises(ValueError, match='a bug, not the user'):
        command.main(argv)
