"""tools.export_tfrecords: the notebook's windows by default for gopro_raw, random ones as an
option, and RAFT served to the workers from the exporting process."""
import cv2
import numpy as np
import pytest

from mmp_jax.cli import export_tfrecords as cli
from mmp_jax.data import build, flow, tfrecords
from mmp_jax.cli import export_tfrecords

LENGTHS = {'GOPR0001_07_00': 16, 'GOPR0002_09_01': 14}  # name -> sharp frames; N is in the name


def _raw_tree(root, lengths, size=(48, 64)):
    rng = np.random.default_rng(0)
    for name, count in lengths.items():
        folder = root / 'train' / name
        folder.mkdir(parents=True)
        for t in range(count):
            cv2.imwrite(str(folder / f'{t:06d}.png'), rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return root


def _by_sequence(out) -> dict[str, list[dict]]:
    examples = [e for path in sorted(out.glob('mmp.tfrecord-*')) for e in tfrecords.read_examples(path)]
    return {name: [e for e in examples if e['sequence'] == name] for name in {e['sequence'] for e in examples}}


@pytest.mark.slow
def test_gopro_raw_gives_the_notebooks_windows_unless_told_random(tmp_path):
    raw = _raw_tree(tmp_path / 'raw', LENGTHS)
    common = ['--source', 'gopro_raw', '--input', str(raw), '--quiet', '--workers', '1', '--num-shards', '2']
    assert export_tfrecords.main(common + ['--out', str(tmp_path / 'sliding')]) == 0
    sliding = _by_sequence(tmp_path / 'sliding')
    for name, length in LENGTHS.items():
        n = int(name.split('_')[1])
        assert [e['index'] for e in sliding[name]] == list(range(length - n))  # range(0, len(images) - frames)
        assert {e['window'] for e in sliding[name]} == {n}
    assert export_tfrecords.main(common + ['--windows', 'random', '--out', str(tmp_path / 'random')]) == 0
    drawn = _by_sequence(tmp_path / 'random')
    for index, (name, length) in enumerate(LENGTHS.items()):
        windows = build.draw_windows(length, np.random.default_rng([0, index]))
        assert [e['window'] for e in drawn[name]] == [n for _, n in windows]


@pytest.mark.slow
def test_a_sequence_whose_name_gives_no_n_needs_blur_frames(tmp_path, capsys):
    raw = _raw_tree(tmp_path / 'raw', {'GOPR0001_07_00': 9, 'clip': 9})
    out = tmp_path / 'out'
    assert export_tfrecords.main(['--source', 'gopro_raw', '--input', str(raw), '--out', str(out), '--quiet']) == 2
    err = capsys.readouterr().err.strip()
    assert f'{raw / "train" / "clip"}: sliding windows need' in err and '--blur-frames' in err
    assert len(err.splitlines()) == 1 and not out.exists()
    clip = ['--source', 'frames', '--input', str(raw / 'train' / 'clip'), '--quiet', '--workers', '1']
    assert export_tfrecords.main(clip + ['--blur-frames', '9', '--out', str(tmp_path / 'short')]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f'export_tfrecords: {raw / "train" / "clip"}: 9 sharp frames are fewer than one window (10)'
    assert not any((tmp_path / 'short').iterdir())
    assert export_tfrecords.main(clip + ['--blur-frames', '5', '--out', str(out)]) == 0
    assert [e['window'] for e in _by_sequence(out)['clip']] == [5] * 4


@pytest.mark.slow  # two pools of two spawned workers: about 30 s on 2 cores
def test_raft_runs_in_the_exporting_process_for_all_workers(tmp_path, monkeypatch):
    """`--flow raft` with 2 workers gives the bytes of `--flow dis` when the parent's "RAFT" is
    DIS: the workers asked the parent (a worker opening the placeholder weights would fail)."""
    weights = tmp_path / 'raft-things.pth'
    weights.write_bytes(b'not weights')
    opened = []
    monkeypatch.setattr(cli, 'raft_backend', lambda path, size: opened.append(path) or flow.dis_backend())
    common = ['--source', 'synthetic', '--num-sequences', '2', '--num-shards', '2', '--frames-per-sequence', '20',
              '--height', '48', '--width', '64', '--quiet', '--workers', '2']
    assert export_tfrecords.main(common + ['--flow', 'dis', '--out', str(tmp_path / 'dis')]) == 0
    assert export_tfrecords.main(common + ['--flow', 'raft', '--raft-checkpoint', str(weights),
                                           '--out', str(tmp_path / 'raft')]) == 0
    assert opened == [str(weights)]
    names = sorted(p.name for p in (tmp_path / 'dis').glob('mmp.tfrecord-*'))
    assert len(names) == 2
    for name in names:
        assert (tmp_path / 'dis' / name).read_bytes() == (tmp_path / 'raft' / name).read_bytes(), name
