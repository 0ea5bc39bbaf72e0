"""Training batches from records, through tf.data and through the numpy reader."""
import pathlib

import numpy as np
import pytest

from mmp_jax.data import input_pipeline, tfrecords
from mmp_jax.errors import UserError


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    """Two sequences whose frames differ by known offsets: blurry_t = base + 10 t,
    sharp_t = blurry_t + 5, mmp_t = 0.1 t, so any crop or flip that is not shared by all
    frames (and by blurry, sharp and mmp) shows."""
    pytest.importorskip('tensorflow')
    out = tmp_path_factory.mktemp('records')
    rng = np.random.default_rng(0)
    shards = {}
    for shard, name in enumerate(('a', 'b')):
        base = rng.integers(0, 150, (24, 40, 3), dtype=np.uint8)
        records = [tfrecords.frame_example('synthetic', name, t, 9, base + 10 * t, base + 10 * t + 5,
                                           np.full((24, 40, 1), 0.1 * t, np.float32)) for t in range(5)]
        shards[str(shard)] = tfrecords.write_shard(out / tfrecords.shard_name('mmp', shard, 2), records)
    tfrecords.save_manifest(out, {'shards': shards})
    return input_pipeline.record_files(out)


def _check_batch(batch, length=3, patch=16, size=4):
    assert batch['blurry'].shape == batch['sharp'].shape == (size, length, patch, patch, 3)
    assert batch['mmp'].shape == (size, length, patch, patch, 1)
    steps = batch['blurry'] - batch['blurry'][:, :1]
    offsets = steps[:, :, 0, 0, 0]  # 10 t / 255 from the window's first frame
    np.testing.assert_allclose(steps, np.broadcast_to(offsets[:, :, None, None, None], steps.shape), atol=1e-6)
    assert set(np.round(np.diff(offsets, axis=1) * 255).ravel()) == {10.0}  # consecutive frames
    np.testing.assert_allclose(batch['sharp'] - batch['blurry'], 5 / 255, atol=1e-6)
    np.testing.assert_allclose(batch['mmp'][..., 0], batch['mmp'][:, :, :1, :1, 0] * np.ones((16, 16)), atol=1e-6)


def test_tf_data_batches_share_one_crop_per_window_and_are_seeded(records):
    windows = input_pipeline.load_windows(records, 3)
    first = next(input_pipeline.train_dataset(windows, 16, 4, seed=1).as_numpy_iterator())
    again = next(input_pipeline.train_dataset(windows, 16, 4, seed=1).as_numpy_iterator())
    other = next(input_pipeline.train_dataset(windows, 16, 4, seed=2).as_numpy_iterator())
    _check_batch(first)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first['blurry'], other['blurry'])


def test_numpy_and_tf_readers_give_the_same_batches(records):
    windows = input_pipeline.load_windows(records, 3)
    assert windows.frames.shape == (6, 3)  # 3 windows in each 5-frame sequence
    from_tf, from_numpy = (input_pipeline.train_batches(windows, reader, 16, 4, seed=1) for reader in ('tf', 'numpy'))
    for _ in range(4):  # past an epoch of 6 windows
        a, b = next(from_tf), next(from_numpy)
        _check_batch(b)
        assert all(isinstance(a[k], np.ndarray) and np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="unknown config.data.reader 'torch'"):
        input_pipeline.train_batches(windows, 'torch', 16, 4, seed=1)


def test_resuming_at_a_step_and_splitting_over_hosts_change_nothing(records):
    windows = input_pipeline.load_windows(records, 3)
    straight = input_pipeline.numpy_train_batches(windows, 16, 4, seed=3)
    batches = [next(straight) for _ in range(3)]
    resumed = next(input_pipeline.numpy_train_batches(windows, 16, 4, seed=3, start_step=2))
    assert all(np.array_equal(resumed[k], batches[2][k]) for k in resumed)
    hosts = [next(input_pipeline.train_dataset(windows, 16, 4, seed=3, start_step=2, process_index=i,
                                               process_count=2).as_numpy_iterator()) for i in range(2)]
    assert all(np.array_equal(np.concatenate([h[k] for h in hosts]), batches[2][k]) for k in resumed)


def test_each_epoch_takes_every_window_once(records):
    windows = input_pipeline.load_windows(records, 3)
    for epoch in range(2):
        chosen = [input_pipeline.item_plan(windows, epoch * 6 + i, 16, seed=0)[0] for i in range(6)]
        assert sorted(chosen) == list(range(6))


def test_a_folder_without_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='no finished shards'):
        input_pipeline.record_files(tmp_path)


def test_patches_larger_than_the_frames_are_a_clear_error(records):
    windows = input_pipeline.load_windows(records, 3)
    with pytest.raises(ValueError, match='24x40 are smaller than the 32x32 patch'):
        next(input_pipeline.numpy_train_batches(windows, 32, 4, seed=0))


def test_read_sequences_gives_whole_sequences_in_order(records):
    sequences = input_pipeline.read_sequences(records)
    assert list(sequences) == ['a', 'b']
    item = sequences['a']
    assert item['blurry'].shape == (5, 24, 40, 3) and item['mmp'].shape == (5, 24, 40, 1)
    np.testing.assert_array_equal(np.diff(item['blurry'].astype(int), axis=0), 10)  # in order


def test_folders_mix_as_one_or_by_weight(records):
    whole = input_pipeline.load_windows(records, 3)
    parts = [input_pipeline.load_windows([shard], 3) for shard in records]
    mixed = input_pipeline.mix(parts)
    assert np.array_equal(mixed.frames, whole.frames) and mixed.records.blurry == whole.records.blurry
    on_disk = input_pipeline.mix([input_pipeline.load_windows([shard], 3, in_memory=False) for shard in records])
    assert [on_disk.records.encoded(f) for f in range(len(whole.records))] == \
           [whole.records.encoded(f) for f in range(len(whole.records))]
    assert [input_pipeline.item_plan(mixed, g, 16, 0)[0] for g in range(12)] == \
           [input_pipeline.item_plan(whole, g, 16, 0)[0] for g in range(12)]

    only_first = input_pipeline.mix(parts, [1, 0])
    assert {input_pipeline.item_plan(only_first, g, 16, 0)[0] for g in range(50)} == {0, 1, 2}
    weighted = input_pipeline.mix(parts, [1, 3])
    plan = [input_pipeline.item_plan(weighted, g, 16, 5) for g in range(400)]
    assert 0.68 < np.mean([window >= 3 for window, _ in plan]) < 0.82
    again = [input_pipeline.item_plan(weighted, g, 16, 5) for g in range(400)]
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(plan, again))
    batch = next(input_pipeline.numpy_train_batches(weighted, 16, 4, seed=5))
    _check_batch(batch)
    with pytest.raises(ValueError, match=r'2 records folders need 2 weights, >= 0 and not all 0; got \[1.0, 0'):
        input_pipeline.mix(parts, [1, 0, 2])


@pytest.mark.parametrize('reader', ['numpy', 'tf'])
def test_frames_read_from_disk_give_the_batches_of_frames_held_in_memory(records, reader):
    held, on_disk = (input_pipeline.load_windows(records, 3, in_memory) for in_memory in (True, False))
    assert isinstance(on_disk.records, input_pipeline.RecordsOnDisk) and on_disk.has_mmp
    batches = (input_pipeline.numpy_train_batches if reader == 'numpy' else
               lambda *args, **kw: input_pipeline.train_dataset(*args, **kw).as_numpy_iterator())

    def global_batch(windows):  # two hosts' parts of a global batch of 4, at step 5 (past an epoch)
        parts = [next(batches(windows, 16, 4, seed=4, start_step=5, process_index=i, process_count=2))
                 for i in range(2)]
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}

    a, b = global_batch(held), global_batch(on_disk)
    _check_batch(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_record_damaged_after_indexing_is_an_error_naming_it(records, tmp_path):
    copy = tmp_path / 'shard'
    copy.write_bytes(pathlib.Path(records[0]).read_bytes())
    windows = input_pipeline.load_windows([str(copy)], 3, in_memory=False)
    offsets = windows.records.places[:, 1]
    data = bytearray(copy.read_bytes())
    data[offsets[1]:offsets[1] + 8] = (1 << 40).to_bytes(8, 'little')  # a length past the end of the file
    data[offsets[2] + 200] ^= 0xFF  # inside the third frame's blurry PNG
    copy.write_bytes(bytes(data))
    windows.records.encoded(0)  # the first frame is intact
    with pytest.raises(ValueError, match=f'{copy}: record at byte {offsets[1]}: damaged record header'):
        windows.records.encoded(1)
    blurry, _, _ = windows.records.encoded(2)
    with pytest.raises(ValueError, match='not a PNG'):
        tfrecords.decode_png(blurry)


def test_a_fraction_of_the_windows_is_kept_the_same_way_each_time(records):
    """The authors' stage 1 trained on a random half of the pairs (`config.mmpnet.train_fraction`)."""
    whole = input_pipeline.load_windows(records, 1)  # 10 frames, 10 one-frame windows
    half = input_pipeline.keep_fraction(whole, 0.5, seed=0)
    assert len(half.frames) == 5 and len(input_pipeline.keep_fraction(whole, 0.55, seed=0).frames) == 5  # floor
    np.testing.assert_array_equal(half.frames, input_pipeline.keep_fraction(whole, 0.5, seed=0).frames)
    assert not np.array_equal(half.frames, input_pipeline.keep_fraction(whole, 0.5, seed=1).frames)
    assert np.all(np.diff(half.frames[:, 0]) > 0) and set(half.frames[:, 0]) <= set(whole.frames[:, 0])
    assert input_pipeline.keep_fraction(whole, 1.0, seed=0) is whole
    for bad in (0.0, 1.5, 0.05):
        with pytest.raises(ValueError, match='fraction'):
            input_pipeline.keep_fraction(whole, bad, seed=0)


def test_a_record_bomb_is_refused_before_either_reader_decodes_it(tmp_path, monkeypatch):
    """A record whose blurry PNG states 12000x12000 (about 100 KB of zeros) beside 24x40 frames:
    refused, naming the record, when the windows are listed, before tf.data's or the numpy
    reader's decoder would allocate it."""
    from tests.data.test_decode_limits import png_bomb  # noqa: PLC0415
    pytest.importorskip('tensorflow')
    bomb = png_bomb(tmp_path / 'bomb.png').read_bytes()
    frame = np.zeros((24, 40, 3), np.uint8)
    records = [tfrecords.frame_example('synthetic', 'a', t, 9, frame, frame, None) for t in range(2)]
    real_encode = tfrecords.encode_png
    monkeypatch.setattr(tfrecords, 'encode_png', lambda image: bomb)
    records.append(tfrecords.frame_example('synthetic', 'a', 2, 9, frame, frame, None))
    monkeypatch.setattr(tfrecords, 'encode_png', real_encode)
    shard = tmp_path / tfrecords.shard_name('mmp', 0, 1)
    tfrecords.save_manifest(tmp_path, {'shards': {'0': tfrecords.write_shard(shard, records)}})
    with pytest.raises(ValueError, match=f"{shard}: record 2: 12000x12000 frames .* over the limit"):
        input_pipeline.load_windows(input_pipeline.record_files(tmp_path), 3)
