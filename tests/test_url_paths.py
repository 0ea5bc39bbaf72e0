"""Paths as URLs, offline: TensorFlow's in-memory `ram://` filesystem (`tests.ram_filesystem`)
stands for a bucket. Records are exported to it (resumably, atomically) and read back by both
readers; a run trains on them, resumes, and evaluates into a `ram://` workdir. Orbax cannot
write `ram://` (TensorStore, which writes the arrays, has only local files and gs:// among
orbax's drivers), so checkpoints, model folders and a training workdir there are refused with
one line before anything is written; deblur reads and writes local media only."""
import json
import os

import numpy as np
import pytest

from mmp_jax import checkpoint, train
from mmp_jax.cli import deblur
from mmp_jax.data import atomic, input_pipeline, paths, tfrecords
from tests import ram_filesystem  # noqa: F401 (registers ram://)
from tests.test_train_robustness import _stage_two_config
from tools import export_tfrecords

tf = pytest.importorskip('tensorflow')
ROOT = 'ram://url_paths'


def _export(out: str, sequences: int, seed: int) -> int:
    return export_tfrecords.main(['--source', 'synthetic', '--flow', 'exact', '--out', out,
                                  '--num-sequences', str(sequences), '--num-shards', str(sequences),
                                  '--frames-per-sequence', '80', '--height', '32', '--width', '48',
                                  '--seed', str(seed), '--workers', '1', '--quiet'])


@pytest.fixture(scope='module')
def records():
    """Records of 3 tiny synthetic scenes exported to ram:// (`train/`; ~8 s: a spawned worker)."""
    assert _export(f'{ROOT}/train', 3, 0) == 0
    return paths.path(ROOT)


def _nothing_local() -> bool:
    """Whether no local `ram:` folder was made (orbax turns `ram://x` into the local `ram:/x`)."""
    return not os.path.lexists('ram:')


@pytest.mark.slow
def test_an_export_to_a_url_is_whole_and_resumes(records, capsys):
    out = records / 'train'
    manifest = tfrecords.load_manifest(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([tfrecords.MANIFEST] + [s['file'] for s in
                                                                                   manifest['shards'].values()])
    for shard in manifest['shards'].values():
        assert tfrecords.sha256(out / shard['file']) == shard['sha256']
    (out / manifest['shards']['1']['file']).write_bytes(b'damaged')
    assert _export(str(out), 3, 0) == 0
    assert tfrecords.load_manifest(out) == manifest  # the damaged shard written again, the same bytes
    assert _nothing_local()
    assert _export('mem://x', 3, 0) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'export_tfrecords: mem://x: no filesystem for the scheme mem:// (etils.epath knows gs://, s3://, az://, '
        'hf:// and local paths)']


@pytest.mark.slow
def test_both_readers_of_url_records_agree(records):
    files = input_pipeline.record_files(records / 'train')
    assert all(name.startswith(f'{ROOT}/train/') for name in files)
    held, on_disk = (input_pipeline.load_windows(files, 3, in_memory=flag) for flag in (True, False))
    assert np.array_equal(held.frames, on_disk.frames) and len(held.records) == len(on_disk.records) == 24
    for frame in (0, 11, 23):
        assert held.records.encoded(frame) == on_disk.records.encoded(frame)
    assert sorted(input_pipeline.read_sequences(files)) == ['scene000', 'scene001', 'scene002']


def test_atomic_writes_on_a_url_leave_no_temporary():
    target = paths.path(f'{ROOT}/atomic/value.json')
    atomic.write_json(target, {'a': 1})
    atomic.write_json(target, {'a': 2})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        paths.path(tmp).write_text('half')
        raise RuntimeError('killed while writing')
    assert json.loads(target.read_text()) == {'a': 2}
    assert [p.name for p in target.parent.iterdir()] == ['value.json'] and atomic.temporaries(target) == []


def test_orbax_paths_on_ram_fail_with_one_line_before_writing(tmp_path, capsys):
    config = _stage_two_config(paths.path(ROOT), num_steps=1)  # refused before any record is read
    message = r'^ram://url_paths/run: orbax checkpoints need a local folder or a gs:// URL \(TensorStore'
    with pytest.raises(checkpoint.CheckpointError, match=message):
        train.train_and_evaluate(config, f'{ROOT}/run')
    for mode in (train.evaluate_checkpoints, train.export_checkpoint):  # the stage's checkpoints: orbax
        with pytest.raises(checkpoint.CheckpointError, match=message):
            mode(config, f'{ROOT}/run')
    assert not paths.path(f'{ROOT}/run').exists()
    with pytest.raises(checkpoint.CheckpointError, match='^ram://url_paths/model: orbax checkpoints need'):
        checkpoint.save_model(f'{ROOT}/model', {}, {})
    assert deblur.main(['--checkpoint', f'{ROOT}/model', '--input', str(tmp_path), '--output',
                        str(tmp_path / 'out')]) == 2
    assert deblur.main(['--checkpoint', str(tmp_path), '--input', f'{ROOT}/video.mp4', '--output',
                        str(tmp_path / 'out.mp4')]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith('deblur: ram://url_paths/model: orbax checkpoints need a local folder') \
        and errors[1].startswith('deblur: ram://url_paths/video.mp4: deblur reads and writes local') \
        and len(errors) == 2
    assert _nothing_local()


@pytest.mark.slow
def test_train_on_url_records_resume_and_evaluate_into_a_url_workdir(records, tmp_path):
    config = _stage_two_config(records, num_steps=1, checkpoint_every=1)  # no evaluation while training
    train.train_and_evaluate(config, tmp_path)
    config.mmprnn.num_steps = 2  # resumes from step 1's checkpoint
    train.train_and_evaluate(config, tmp_path)
    with checkpoint.training_manager(tmp_path, 'mmprnn', 3) as manager:
        assert manager.all_steps() == [1, 2]

    config.data.eval_records = str(records / 'train')  # the same scenes: a test of the reading
    config.eval.update(checkpoint=str(tmp_path / 'model'), save_outputs=True, save_videos=False)
    report = train.evaluate_checkpoints(config, f'{ROOT}/eval_run')['mmprnn']
    workdir = paths.path(f'{ROOT}/eval_run')
    stored = json.loads((workdir / 'eval' / 'metrics.json').read_text())['mmprnn']
    assert stored['psnr'] == report['psnr'] > 0 and stored['checkpoint'] == str(tmp_path / 'model')
    assert len(list((workdir / 'eval' / 'outputs' / 'scene000').iterdir())) > 0
    assert tf.io.gfile.glob(f'{ROOT}/eval_run/events.out.tfevents.*')  # clu's writer, through gfile
    assert atomic.temporaries(workdir / 'eval' / 'metrics.json') == [] and _nothing_local()

    config.eval.save_videos = True
    with pytest.raises(train.TrainingError, match='comparison videos are encoded to local files'):
        train.evaluate_checkpoints(config, f'{ROOT}/eval_run')
