"""Batches prefetched to the devices (`config.data.device_prefetch`) change no bit of training,
also when a run stops with batches prefetched and unused and resumes with another depth."""
import threading

import numpy as np
import pytest
from clu import metric_writers

from mmp_jax import sharding, stages, train
from tests.test_train import _final_params, records  # noqa: F401 (fixture)
from tests.test_train_robustness import _stage_two_config


def _config(records, depth: int, num_steps: int = 4):
    """Stage 2 alone, 4 steps (a checkpoint every 2), the numpy reader, `depth` batches prefetched."""
    config = _stage_two_config(records, num_steps=num_steps)
    config.data.reader = 'numpy'
    config.data.device_prefetch = depth
    return config


@pytest.mark.slow
def test_prefetch_on_and_off_train_the_same_bits(records, tmp_path):
    train.train_and_evaluate(_config(records, depth=0), tmp_path / 'off')

    stopped = _config(records, depth=2)  # stops at step 1 on request, steps 2 and 3 prefetched, unused
    request = threading.Event()
    request.set()
    with pytest.raises(train.Preempted, match='stopped at step 1'):
        train.train_stage(stopped, stages.get('mmprnn'), tmp_path / 'on', sharding.make_mesh(),
                          metric_writers.LoggingWriter(), request)
    train.train_and_evaluate(_config(records, depth=3), tmp_path / 'on')  # resumes at step 2

    (step_off, off), (step_on, on) = _final_params(tmp_path / 'off'), _final_params(tmp_path / 'on')
    assert step_off == step_on == 4
    assert [p for p, _ in off] == [p for p, _ in on]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(off, on))
