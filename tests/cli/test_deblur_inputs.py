"""`tools.deblur` on the videos users bring: Matroska with audio (its own outputs among them),
variable frame rates, and frames too large to decode."""
import fractions

import av
import numpy as np

from tests.data.test_decode_limits import png_bomb, video_bomb
from tests.test_video_encoding import _make_input
from tests.cli.test_deblur import converted, reference  # noqa: F401 (fixtures)
from mmp_jax.cli import deblur


def _deblur(converted, *args) -> int:  # noqa: F811
    return deblur.main(['--checkpoint', str(converted), '--quiet', *map(str, args)])


def _times(path) -> list[fractions.Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [frame.pts * stream.time_base for frame in container.decode(stream)]


def test_its_own_matroska_output_with_audio_is_read_back(tmp_path, converted, reference):  # noqa: F811
    source = tmp_path / 'talk.mp4'
    _make_input(source, np.repeat(reference['frames'][0][..., ::-1], 2, axis=0), 'aac')  # 14 frames
    assert _deblur(converted, '--input', source, '--output', tmp_path / 'once.mkv') == 0
    assert _deblur(converted, '--input', tmp_path / 'once.mkv', '--output', tmp_path / 'twice') == 0
    assert len(list((tmp_path / 'twice').glob('*.png'))) == 14


def test_a_variable_frame_rate_is_kept(tmp_path, converted, reference):  # noqa: F811
    source, milliseconds = tmp_path / 'phone.mp4', [0, 40, 80, 200, 240, 400, 440]
    frames = reference['frames'][0][..., ::-1]
    with av.open(str(source), 'w') as container:
        stream = container.add_stream('libx264', rate=12)
        stream.height, stream.width = frames.shape[1:3]
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for ms, rgb in zip(milliseconds, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24').reformat(format='yuv420p')
            frame.pts, frame.time_base = ms, fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert _deblur(converted, '--input', source, '--output', tmp_path / 'out.mp4') == 0
    assert _times(tmp_path / 'out.mp4') == [fractions.Fraction(ms, 1000) for ms in milliseconds]
    assert _deblur(converted, '--input', source, '--output', tmp_path / 'dropped.mkv', '--ends', 'drop') == 0
    assert _times(tmp_path / 'dropped.mkv') == [fractions.Fraction(ms, 1000) for ms in milliseconds[2:-2]]


def test_frames_over_the_limit_are_refused_before_decoding(tmp_path, converted, capsys):  # noqa: F811
    frames = tmp_path / 'frames'
    frames.mkdir()
    png_bomb(frames / '000000.png')
    for given in (frames, video_bomb(tmp_path / 'clip.mp4')):
        assert _deblur(converted, '--input', given, '--output', tmp_path / 'out.mp4') == 2
        err = capsys.readouterr().err.strip()
        assert err.count('\n') == 0 and f'{given}' in err and '12000x12000 frames' in err, err
        assert not (tmp_path / 'out.mp4').exists()
