"""`tools.deblur` never loses a user's file: collisions, the input named as output, kills,
damaged videos, names and permissions, run as a user runs the command."""
import hashlib
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests import original_reference as ref
from tests.cli.test_deblur import converted, frames_dir, reference  # noqa: F401 (fixtures)
from mmp_jax.cli import deblur
from tests.conftest import REPO



def _digest(path: pathlib.Path) -> str:
    """A hash of a file, or of every file under a folder (names and bytes)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p for p in path.rglob('*') if p.is_file())
    return hashlib.sha256(b''.join(str(p.relative_to(path)).encode() + p.read_bytes() for p in files)).hexdigest()


def _deblur(converted, *args) -> int:  # noqa: F811
    return deblur.main(['--checkpoint', str(converted), '--quiet', *map(str, args)])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def _video(path: pathlib.Path, frames: np.ndarray, fps: float = 12.0) -> pathlib.Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _temporaries(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if '.tmp-' in p.name)


def test_an_existing_output_folder_is_refused_then_only_its_frames_replaced(tmp_path, converted, frames_dir,
                                                                            capsys):  # noqa: F811
    out = tmp_path / 'out'
    (out / 'sub').mkdir(parents=True)
    (out / 'notes.txt').write_text('mine')
    (out / 'sub' / 'thesis.tex').write_text('also mine')
    (out / 'old_frame.png').write_bytes(b'an old output')
    before = _digest(out)
    assert _deblur(converted, '--input', frames_dir, '--output', out) == 2
    assert f'{out}: already exists (folder)' in _one_line(capsys) and _digest(out) == before
    assert _deblur(converted, '--input', frames_dir, '--output', out, '--overwrite') == 0
    assert (out / 'notes.txt').read_text() == 'mine' and (out / 'sub' / 'thesis.tex').read_text() == 'also mine'
    assert sorted(p.name for p in out.glob('*.png')) == sorted(p.name for p in frames_dir.iterdir())
    assert _temporaries(tmp_path) == []


def test_an_existing_video_is_refused_then_replaced(tmp_path, converted, frames_dir, capsys):  # noqa: F811
    out = tmp_path / 'out.mp4'
    out.write_bytes(b'my holiday video')
    assert _deblur(converted, '--input', frames_dir, '--output', out) == 2
    assert f'{out}: already exists (file)' in _one_line(capsys) and out.read_bytes() == b'my holiday video'
    assert _deblur(converted, '--input', frames_dir, '--output', out, '--overwrite') == 0
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == ref.FRAMES


def test_the_input_is_never_an_output(tmp_path, converted, frames_dir, reference, capsys):  # noqa: F811
    video = _video(tmp_path / 'in.avi', reference['frames'][0])
    (tmp_path / 'link').symlink_to(frames_dir)
    folder_before, video_before = _digest(frames_dir), _digest(video)
    cases = [(['--input', frames_dir, '--output', frames_dir, '--overwrite'], 'given as --input and as --output'),
             (['--input', video, '--output', video, '--overwrite'], 'given as --input and as --output'),
             (['--input', frames_dir, '--output', tmp_path / 'link', '--overwrite'],
              'given as --input and as --output'),
             (['--input', video, '--output', tmp_path, '--overwrite'], '--output would hold the input'),
             (['--input', video, '--output', tmp_path / 'o', '--prior', tmp_path / 'o'], '--prior and --output'),
             (['--input', video, '--output', tmp_path / 'o', '--prior', tmp_path / 'o' / 'p'], '--prior and --output')]
    for args, message in cases:
        assert _deblur(converted, *args) == 2, args
        assert message in _one_line(capsys), args
    assert _digest(frames_dir) == folder_before and _digest(video) == video_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.avi', 'link']


def test_parents_are_created_names_kept_and_umask_respected(tmp_path, converted, frames_dir, reference):  # noqa: F811
    named = tmp_path / 'named'
    named.mkdir()
    for i, src in enumerate(sorted(frames_dir.iterdir())):
        (named / f'shot_{i * 10:03d}.png').write_bytes(src.read_bytes())
    old = os.umask(0o027)
    try:
        assert _deblur(converted, '--input', named, '--output', tmp_path / 'a' / 'b' / 'out') == 0
        assert _deblur(converted, '--input', _video(tmp_path / 'in.avi', reference['frames'][0]),
                       '--output', tmp_path / 'drop', '--ends', 'drop') == 0
        assert _deblur(converted, '--input', named, '--output', tmp_path / 'v.mp4', '--fps', '7') == 0
    finally:
        os.umask(old)
    out = tmp_path / 'a' / 'b' / 'out'
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in named.iterdir())
    assert sorted(p.name for p in (tmp_path / 'drop').iterdir()) == [f'{t:06d}.png' for t in range(2, ref.FRAMES - 2)]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / 'v.mp4').stat().st_mode) == 0o640
    assert cv2.VideoCapture(str(tmp_path / 'v.mp4')).get(cv2.CAP_PROP_FPS) == pytest.approx(7.0)


def test_a_failed_run_leaves_nothing_it_made(tmp_path, converted, frames_dir, capsys):  # noqa: F811
    (tmp_path / 'file').write_text('a file, not a folder')
    assert _deblur(converted, '--input', frames_dir, '--output', tmp_path / 'file' / 'out.mp4') == 2
    assert f'{tmp_path / "file"}: not a folder' in _one_line(capsys)
    assert _deblur(converted, '--input', frames_dir, '--output', tmp_path / 'x' / 'y' / 'out.mp4',
                   '--variant', 'A9B10C18F8') == 2
    _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file']


@pytest.mark.slow
def test_damaged_videos_are_errors_unless_allowed(tmp_path, converted, reference, capsys):  # noqa: F811
    frames = np.concatenate([reference['frames'][0]] * 6)  # 42 frames
    data = _video(tmp_path / 'good.avi', frames).read_bytes()
    (tmp_path / 'truncated.avi').write_bytes(data[:len(data) // 2])
    middle = bytearray(data)
    middle[len(data) // 2:len(data) // 2 + 3000] = bytes(3000)
    (tmp_path / 'corrupt.avi').write_bytes(bytes(middle))
    for name in ('truncated.avi', 'corrupt.avi'):
        out = tmp_path / f'{name}.out'
        assert _deblur(converted, '--input', tmp_path / name, '--output', out) == 2
        err = _one_line(capsys)
        assert f'{tmp_path / name}: frame ' in err and 'cannot be decoded (the video states 42 frames' in err
        assert not out.exists() and _temporaries(tmp_path) == []
    assert _deblur(converted, '--input', tmp_path / 'truncated.avi', '--output', tmp_path / 'kept',
                   '--allow-truncated') == 0
    assert 5 <= len(list((tmp_path / 'kept').iterdir())) < 42


def _start(converted, *args) -> subprocess.Popen:  # noqa: F811
    return subprocess.Popen([sys.executable, '-m', 'tools.deblur', '--checkpoint', str(converted), '--quiet',
                             *map(str, args)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_temporary(folder: pathlib.Path, run: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not _temporaries(folder) and run.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert _temporaries(folder), 'the run ended before it wrote anything'


@pytest.mark.slow
def test_sigterm_and_kill_mid_run_leave_nothing_stale(tmp_path, converted, reference):  # noqa: F811
    video = _video(tmp_path / 'long.avi', np.concatenate([reference['frames'][0]] * 60))  # 420 frames
    outputs = tmp_path / 'outputs'
    outputs.mkdir()
    run = _start(converted, '--input', video, '--output', outputs / 'out.mp4')
    _wait_for_temporary(outputs, run)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 128 + signal.SIGTERM
    assert 'stopped by SIGTERM; nothing was written' in run.stderr.read()
    assert sorted(outputs.iterdir()) == []

    run = _start(converted, '--input', video, '--output', outputs / 'out.mp4')
    _wait_for_temporary(outputs, run)
    run.kill()
    run.wait()
    assert _temporaries(outputs) != [] and not (outputs / 'out.mp4').exists()  # what kill -9 leaves
    assert _deblur(converted, '--input', video, '--output', outputs / 'out.mp4') == 0
    assert sorted(p.name for p in outputs.iterdir()) == ['out.mp4']  # the next run cleaned it


def test_tiles_state_resets_and_chunks_from_the_command_line(tmp_path, converted, frames_dir, capsys):  # noqa: F811
    assert _deblur(converted, '--input', frames_dir, '--output', tmp_path / 'tiled', '--tile', '24', '24',
                   '--tile-overlap', '8', '--reset-every', '5', '--chunk-frames', '3') == 0
    assert len(list((tmp_path / 'tiled').iterdir())) == ref.FRAMES
    capsys.readouterr()
    assert _deblur(converted, '--input', frames_dir, '--output', tmp_path / 'x', '--tile', '24', '24',
                   '--tile-overlap', '24') == 2
    assert capsys.readouterr().err.startswith('deblur: --tile 24 24: tiles need at least 16 pixels a side and an '
                                              'overlap of 0 .. 23')
    assert _deblur(converted, '--input', frames_dir, '--output', tmp_path / 'x', '--chunk-frames', '0') == 2
    assert capsys.readouterr().err == 'deblur: --chunk-frames must be at least 1, got 0\n'
    assert not (tmp_path / 'x').exists()


@pytest.mark.slow
def test_several_inputs_and_a_folder_of_videos(tmp_path, converted, frames_dir, reference, capsys):  # noqa: F811
    clips = tmp_path / 'clips'
    clips.mkdir()
    _video(clips / 'b.avi', reference['frames'][0])
    _video(clips / 'a.avi', reference['frames'][0][::-1])
    (clips / 'notes.txt').write_text('not a video')
    assert _deblur(converted, '--input', clips, '--output', tmp_path / 'out') == 0
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.avi', 'b.avi']
    assert _deblur(converted, '--input', clips / 'a.avi', frames_dir, '--output', tmp_path / 'mixed') == 0
    assert sorted(p.name for p in (tmp_path / 'mixed').iterdir()) == ['a.avi', frames_dir.name]
    assert len(list((tmp_path / 'mixed' / frames_dir.name).iterdir())) == ref.FRAMES
    assert _deblur(converted, '--input', clips / 'a.avi', clips / 'b.avi', '--output', tmp_path / 'x.mp4') == 2
    assert '2 inputs need an output folder' in _one_line(capsys)
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'taken' / 'b.avi').write_bytes(b'mine')
    assert _deblur(converted, '--input', clips, '--output', tmp_path / 'taken') == 2  # checked before any work
    assert 'b.avi: already exists' in _one_line(capsys)
    assert sorted(p.name for p in (tmp_path / 'taken').iterdir()) == ['b.avi']


@pytest.mark.slow
def test_h264_out_keeps_the_audio_of_the_input(tmp_path, converted, reference):  # noqa: F811
    from tests.test_video_encoding import _audio_seconds, _make_input  # noqa: PLC0415
    source = tmp_path / 'talk.mp4'
    _make_input(source, np.repeat(reference['frames'][0][..., ::-1], 4, axis=0), 'aac')  # 28 frames, RGB
    assert _deblur(converted, '--input', source, '--output', tmp_path / 'out.mp4', '--crf', '20') == 0
    assert _deblur(converted, '--input', source, '--output', tmp_path / 'mute.mp4', '--no-audio') == 0
    assert _audio_seconds(tmp_path / 'out.mp4') == pytest.approx(_audio_seconds(source), abs=1 / 12)
    assert _audio_seconds(tmp_path / 'mute.mp4') is None
    capture = cv2.VideoCapture(str(tmp_path / 'out.mp4'))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 28
