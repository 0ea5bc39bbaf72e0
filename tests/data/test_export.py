"""tools.export_tfrecords: round trip, resume after kill -9, bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from mmp_jax.data import synthetic, tfrecords
from mmp_jax.data.blur import gamma_response, synthesize_blur
from mmp_jax.data.motion import window_mmp
from tests.conftest import REPO
from mmp_jax.cli import export_tfrecords

SMALL = ['--source', 'synthetic', '--flow', 'exact', '--num-sequences', '3', '--num-shards', '2', '--store-flows',
         '--frames-per-sequence', '30', '--height', '48', '--width', '64', '--workers', '1', '--quiet']


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp('records')
    assert export_tfrecords.main(SMALL + ['--out', str(out)]) == 0
    return out


@pytest.mark.slow
def test_records_give_back_the_frames_and_the_true_mmp(exported):
    shards = sorted(exported.glob('mmp.tfrecord-*'))
    assert [p.name for p in shards] == ['mmp.tfrecord-00000-of-00002', 'mmp.tfrecord-00001-of-00002']
    examples = [e for path in shards for e in tfrecords.read_examples(path)]
    scene = synthetic.make_scene(seed=0, length=30, height=48, width=64)  # scene000: --seed 0, index 0
    first = [e for e in examples if e['sequence'] == 'scene000']
    assert [e['index'] for e in first] == list(range(len(first))) and len(first) >= 2
    start = 0
    for example in first:
        n = example['window']
        assert 7 <= n <= 13
        window = scene.frames[start:start + n]
        np.testing.assert_array_equal(example['sharp'], window[n // 2])  # bit-exact through PNG
        np.testing.assert_array_equal(example['blurry'], synthesize_blur(window, gamma_response()))
        truth = window_mmp(scene.forward[start:start + n - 1], scene.backward[start:start + n - 1])
        assert np.abs(example['mmp'] - truth).max() <= 1e-3
        np.testing.assert_allclose(example['flow_forward'], scene.forward[start:start + n - 1], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(example['flow_backward'], scene.backward[start:start + n - 1], rtol=1e-3, atol=1e-3)
        start += n


def test_numpy_reader_agrees_with_tensorflow(exported):
    tf = pytest.importorskip('tensorflow')
    path = next(exported.glob('mmp.tfrecord-*'))
    ours = [tfrecords.parse_example(r) for r in tfrecords.read_records(path)]
    theirs = [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    assert len(ours) == len(theirs) > 0
    for mine, example in zip(ours, theirs):
        assert mine['index'] == list(example.features.feature['index'].int64_list.value)
        assert mine['blurry'] == list(example.features.feature['blurry'].bytes_list.value)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_bytes(tmp_path):
    args = ['--source', 'synthetic', '--flow', 'exact', '--num-sequences', '8', '--num-shards', '8',
            '--frames-per-sequence', '60', '--height', '64', '--width', '96', '--workers', '1', '--quiet']
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    command = [sys.executable, '-m', 'tools.export_tfrecords'] + args
    subprocess.run(command + ['--out', str(straight)], check=True, cwd=REPO, capture_output=True)
    process = subprocess.Popen(command + ['--out', str(killed)], cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        manifest = killed / tfrecords.MANIFEST
        if manifest.exists() and 1 <= len(json.loads(manifest.read_text())['shards']) < 8:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait() == -signal.SIGKILL, 'the export finished before it could be killed'
    done_before = len(json.loads((killed / tfrecords.MANIFEST).read_text())['shards'])
    assert done_before < 8
    result = subprocess.run(command + ['--out', str(killed)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and 'resumed' in result.stdout
    names = sorted(p.name for p in straight.glob('mmp.tfrecord-*'))
    assert len(names) == 8 and names == sorted(p.name for p in killed.glob('mmp.tfrecord-*'))
    for name in names:
        assert (straight / name).read_bytes() == (killed / name).read_bytes(), name
    assert not list(killed.glob('.*'))  # no temporary files left


def _frames_dir(path, count=20, size=(48, 64)):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(path / f'{i:04d}.png'), rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return path


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    corrupt = _frames_dir(tmp_path / 'corrupt')
    (corrupt / '0005.png').write_bytes(b'not a png')
    video = tmp_path / 'broken.mp4'
    video.write_bytes(os.urandom(256))
    gopro = tmp_path / 'gopro'
    (gopro / 'test' / 'GOPR0001' / 'blur').mkdir(parents=True)
    cases = [(['--source', 'frames', '--input', str(empty)], f'{empty}: no frames'),
             (['--source', 'frames', '--input', str(corrupt)], '0005.png: cannot be read as an image'),
             (['--source', 'video', '--input', str(video)], f'{video}: '),
             (['--source', 'gopro', '--input', str(gopro), '--split', 'train'], "no 'train' split"),
             (['--source', 'frames', '--input', str(tmp_path / 'nothing')], 'no such file or folder')]
    for args, message in cases:
        out = tmp_path / 'out'
        assert export_tfrecords.main(args + ['--out', str(out), '--quiet', '--workers', '1']) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists() or not any(out.iterdir()), args


@pytest.mark.slow
def test_a_frame_folder_becomes_blurry_frames_with_dis_flow(tmp_path):
    frames = _frames_dir(tmp_path / 'clip', count=30)
    out = tmp_path / 'out'
    assert export_tfrecords.main(['--source', 'frames', '--input', str(frames), '--out', str(out),
                                  '--quiet', '--workers', '1']) == 0
    examples = list(tfrecords.read_examples(next(out.glob('mmp.tfrecord-*'))))
    assert len(examples) >= 2 and all(e['sequence'] == 'clip' and e['mmp'] is not None for e in examples)
