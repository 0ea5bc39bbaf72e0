"""Training batches from records, through tf.data and through the numpy reader."""
import numpy as np
import pytest

from data_pipeline import input_pipeline, tfrecords


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
    first = next(input_pipeline.train_dataset(records, 3, 16, 4, seed=1).as_numpy_iterator())
    again = next(input_pipeline.train_dataset(records, 3, 16, 4, seed=1).as_numpy_iterator())
    other = next(input_pipeline.train_dataset(records, 3, 16, 4, seed=2).as_numpy_iterator())
    _check_batch(first)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first['blurry'], other['blurry'])


def test_numpy_batches_follow_the_same_recipe(records):
    batches = input_pipeline.numpy_train_batches(records, 3, 16, 4, seed=1)
    for _ in range(3):
        _check_batch(next(batches))


def test_hosts_get_disjoint_shards(records):
    assert input_pipeline.host_files(records, 0, 2) == records[:1]
    assert input_pipeline.host_files(records, 1, 2) == records[1:]
    with pytest.raises(ValueError, match='2 shards cannot feed 3 hosts'):
        input_pipeline.host_files(records, 2, 3)


def test_a_folder_without_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='no finished shards'):
        input_pipeline.record_files(tmp_path)


@pytest.mark.parametrize('hosts', [1, 2, 3])
def test_eval_sequences_count_each_sequence_once_on_any_number_of_hosts(records, hosts):
    items = [list(input_pipeline.eval_sequences(records, i, hosts)) for i in range(hosts)]
    assert len({len(host) for host in items}) == 1  # hosts stay in step
    counted = sorted(item['name'] for host in items for item in host if item['mask'] == 1.0)
    assert counted == ['a', 'b']
    item = items[0][0]
    assert item['blurry'].shape == (5, 24, 40, 3) and item['mmp'].shape == (5, 24, 40, 1)
    np.testing.assert_array_equal(np.diff(item['blurry'].astype(int), axis=0), 10)  # in order
