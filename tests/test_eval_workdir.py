"""`--mode=eval` on a small set (issue 27): the speed is measured though every frame size is
evaluated in its compiling round (a second, timed pass), and the workdir records the run in
`config.json` as training does."""
import dataclasses
import json

import numpy as np
import pytest

from configs import test as test_config
from mmp_jax import checkpoint, evaluate, modes, sharding
from mmp_jax.data import export
from mmp_jax.models.variants import model_from_config
from tests.conftest import init_variables


@dataclasses.dataclass(frozen=True)
class Dimmer:
    """Stands in for MMPRNN in the evaluator: outputs each frame's blurry input dimmed and
    brightened off the 8-bit levels (so that truncation matters), frames 2..T-3 of the chunk."""
    past_frames: int = 2
    future_frames: int = 2
    window: int = 5
    needs_prior: bool = False

    def apply(self, variables, blurry, mmp=None):
        return blurry[:, self.past_frames:blurry.shape[1] - self.future_frames] * 0.9 + 0.0537 + variables['w']


def test_a_frame_size_evaluated_in_one_round_is_timed():
    """Two sequences of other lengths, whole: each shape is one job, one round, which compiles."""
    rng = np.random.default_rng(0)
    sequences = {f's{t}': {'blurry': rng.integers(0, 256, (t, 12, 12, 3), dtype=np.uint8),
                           'sharp': rng.integers(0, 256, (t, 12, 12, 3), dtype=np.uint8), 'mmp': None} for t in (6, 7)}
    evaluator = evaluate.MMPRNNEvaluator(Dimmer(), chunk_frames=0, sample_images=0)
    report, _ = evaluator({'w': np.float32(0.0)}, sequences, sharding.make_mesh())
    assert report['seconds_per_frame'] > 0 and report['timed_frames'] == report['count'] == 2 + 3


@pytest.mark.slow
def test_eval_of_one_round_times_it_and_records_the_run(tmp_path):
    pytest.importorskip('tensorflow')
    records = tmp_path / 'records'
    export.export(export.ExportSettings(source='synthetic', flow='exact', out=str(records), num_sequences=1,
                                        frames_per_sequence=60, height=32, width=32, quiet=True))
    config = test_config.get_config()
    model = model_from_config(config.model)
    variables = init_variables(model)
    checkpoint.save_model(tmp_path / 'model', variables, dict(config.model))
    config.data.eval_records = str(records)
    config.eval.update(checkpoint=str(tmp_path / 'model'), chunk_frames=0)  # one sequence, whole: one round

    report = modes.evaluate_checkpoints(config, tmp_path / 'run')['mmprnn']
    assert report['seconds_per_frame'] > 0 and report['timed_frames'] == report['count'] > 0
    runs = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert len(runs) == 1 and runs[0]['mode'] == 'eval'
    assert runs[0]['config']['eval']['checkpoint'] == str(tmp_path / 'model')
