"""Paths as URLs, offline: TensorFlow's in-memory `ram://` filesystem (`tests.ram_filesystem`)
stands for a bucket. Records are exported to it (resumably, atomically) and read back by both
readers; with every path on it, a run trains on them with its workdir (checkpoints, model) there,
resumes, evaluates into a `ram://` workdir, and deblurs a video from `ram://` to `ram://`. Orbax
cannot write `ram://` (TensorStore has only local files and gs://), so its checkpoints are staged
(`mmp_jax.io.staging`): whole or refused, one process only."""
import json
import os
import tempfile

import cv2
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mmp_jax import checkpoint, modes, train
from mmp_jax.io import staging
from mmp_jax.cli import deblur
from mmp_jax.io import atomic, paths
from mmp_jax.data import input_pipeline, tfrecords
from tests import ram_filesystem  # noqa: F401 (registers ram://)
from tests.test_train_robustness import _stage_two_config
from mmp_jax.cli import export_tfrecords

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


def test_staged_training_steps_are_pruned_as_orbax_prunes_and_restore():
    def items(step):
        return ocp.args.Composite(state=ocp.args.StandardSave({'w': np.full(2, step)}), meta=ocp.args.JsonSave({}))

    steps = paths.path(f'{ROOT}/pruned/checkpoints/mmprnn')
    with checkpoint.training_manager(f'{ROOT}/pruned', 'mmprnn', 2) as manager:
        for step in (1, 2, 3):
            manager.save(step, args=items(step))
    assert sorted(p.name for p in steps.iterdir()) == ['2', '3']
    with checkpoint.training_manager(f'{ROOT}/pruned', 'mmprnn', 2) as manager:
        assert manager.all_steps() == [2, 3]
        state = manager.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
        assert np.array_equal(state['w'], [2, 2])
        manager.save(4, args=items(4))
    assert sorted(p.name for p in steps.iterdir()) == ['3', '4']
    assert np.array_equal(checkpoint.latest_saved_state(steps)['w'], [4, 4]) and _nothing_local()


def test_staged_checkpoints_are_whole_and_one_process_only(monkeypatch):
    folder = paths.path(f'{ROOT}/staged/model')
    checkpoint.save_model(folder, {'params': {'w': np.arange(3.0)}}, {'variant': 'x'})
    checkpoint.replace_model(folder, {'params': {'w': np.arange(4.0)}}, {'variant': 'y'})
    assert checkpoint.load_model_config(folder) == {'variant': 'y'}
    assert [p.name for p in folder.parent.iterdir()] == ['model']  # no .model.new / .model.old left
    (folder / staging.MARKER).unlink()  # as an upload cut short
    with pytest.raises(checkpoint.CheckpointError, match=r'/model: written in part \(no COMPLETE file'):
        checkpoint.load_model_config(folder)
    monkeypatch.setattr(jax, 'process_count', lambda: 2)  # (train.train_and_evaluate stops its job on it)
    with pytest.raises(checkpoint.CheckpointError, match=r'^ram://url_paths/one: checkpoints on ram:// go through '
                                                         r'a local staging folder, one process only \(2 run\)'):
        checkpoint.training_manager(f'{ROOT}/one', 'mmprnn', 1)
    assert not paths.path(f'{ROOT}/one').exists() and _nothing_local()


def _video(path, count: int = 6) -> None:
    """A small MJPG video of noise, 32x48 (any file OpenCV reads would do)."""
    frames = np.random.default_rng(0).integers(0, 256, (count, 32, 48, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 25.0, (48, 32))
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.mark.slow
def test_train_resume_evaluate_and_deblur_with_every_path_on_a_url(records, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))  # staging and deblur's folders: checked gone below
    (tmp_path / 'tmp').mkdir()
    run = paths.path(f'{ROOT}/run')
    config = _stage_two_config(records, num_steps=1, checkpoint_every=1)  # no evaluation while training
    train.train_and_evaluate(config, run)
    config.mmprnn.num_steps = 2  # resumes from step 1's checkpoint, downloaded
    train.train_and_evaluate(config, run)
    with checkpoint.training_manager(run, 'mmprnn', 3) as manager:
        assert manager.all_steps() == [1, 2]
    assert sorted(p.name for p in (run / 'checkpoints' / 'mmprnn').iterdir()) == ['1', '2']
    assert checkpoint.latest_saved_state(run / 'checkpoints' / 'mmprnn')['step'] == 2

    config.data.eval_records = str(records / 'train')  # the same scenes: a test of the reading
    config.eval.update(checkpoint=str(run / 'model'), save_outputs=True, save_videos=False)
    report = modes.evaluate_checkpoints(config, f'{ROOT}/eval_run')['mmprnn']
    workdir = paths.path(f'{ROOT}/eval_run')
    stored = json.loads((workdir / 'eval' / 'metrics.json').read_text())['mmprnn']
    assert stored['psnr'] == report['psnr'] > 0 and stored['checkpoint'] == str(run / 'model')
    assert len(list((workdir / 'eval' / 'outputs' / 'scene000').iterdir())) > 0
    assert tf.io.gfile.glob(f'{ROOT}/eval_run/events.out.tfevents.*')  # clu's writer, through gfile
    assert atomic.temporaries(workdir / 'eval' / 'metrics.json') == [] and _nothing_local()
    config.eval.save_videos = True
    with pytest.raises(train.TrainingError, match='comparison videos are encoded to local files'):
        modes.evaluate_checkpoints(config, f'{ROOT}/eval_run')

    _video(tmp_path / 'copy.avi')  # one program deblurs a ram:// video and its local copy, to ram://
    atomic.copy_file(tmp_path / 'copy.avi', f'{ROOT}/media/video.avi')
    deblurring = ['--quiet', '--checkpoint', str(run), '--input', f'{ROOT}/media/video.avi', str(tmp_path / 'copy.avi'),
                  '--output', f'{ROOT}/out']
    assert deblur.main(deblurring) == 0
    out = paths.path(f'{ROOT}/out')
    written = [f'wrote 6 frames to {out / name}' for name in ('video.avi', 'copy.avi')]
    assert capsys.readouterr().out.splitlines() == written
    assert sorted(p.name for p in out.iterdir()) == ['copy.avi', 'video.avi']
    assert (out / 'video.avi').read_bytes() == (out / 'copy.avi').read_bytes()
    (out / 'copy.avi').unlink()
    assert deblur.main(deblurring) == 2  # video.avi is there: refused before anything is written
    assert capsys.readouterr().err.strip() == (f'deblur: {out}/video.avi: already exists (file); choose a new name, '
                                               f'or pass --overwrite to replace it')
    assert [p.name for p in out.iterdir()] == ['video.avi']
    assert [p for p in (tmp_path / 'tmp').iterdir() if p.name.startswith('mmp_jax_')] == [] and _nothing_local()
