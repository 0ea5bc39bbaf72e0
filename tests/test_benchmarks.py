"""The benchmarks still run (tiny settings) and write their JSON; no timing is asserted."""
import json
import subprocess
import sys

import pytest

from tests import original_reference as ref


def _run(tmp_path, module, *args):
    out = tmp_path / 'result.json'
    result = subprocess.run([sys.executable, '-m', module, '--json', str(out), *args],
                            capture_output=True, text=True, cwd=ref.DATA_DIR.parents[1])
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_infer_speed(tmp_path):
    result = _run(tmp_path, 'benchmarks.infer_speed', '--variant', 'A1B1C4F5', '--sizes', '32x16',
                  '--dtypes', 'float32,bfloat16', '--frames', '2', '--repeats', '1')
    assert [(r['size'], r['dtype']) for r in result['rows']] == [('32x16', 'float32'), ('32x16', 'bfloat16')]
    assert all(r['fps'] > 0 for r in result['rows']) and result['machine']['cpu_count'] >= 1


@pytest.mark.slow
def test_infer_memory(tmp_path):
    result = _run(tmp_path, 'benchmarks.infer_memory', '--variant', 'A1B1C4F5', '--size', '32x16',
                  '--frames', '2,6')
    rows = result['rows']
    assert [r['frames'] for r in rows] == [2, 6] and rows[0]['vs_first'] == 1.0
    assert all(r['peak_rss_mb'] > 50 for r in rows)


@pytest.mark.slow
def test_train_step_speed(tmp_path):
    result = _run(tmp_path, 'benchmarks.train_step_speed', '--variants', 'A1B1C4F5', '--batch', '1',
                  '--frames', '5', '--patch', '16', '--repeats', '1')
    (row,) = result['rows']
    assert row['variant'] == 'A1B1C4F5' and row['batch'] == '1x5x16x16'
    assert row['loop_s'] > 0 and row['unrolled_s'] > 0 and row['speedup'] == row['loop_s'] / row['unrolled_s']


@pytest.mark.slow
def test_tiled_inference(tmp_path):
    result = _run(tmp_path, 'benchmarks.tiled_inference', '--variant', 'A1B1C4F5', '--size', '64x48', '--tile', '32',
                  '--overlap', '8', '--frames', '2', '--fidelity-size', '64x48', '--fidelity-frames', '5')
    fidelity, tiled, untiled = result['rows']
    assert fidelity['measure'] == 'fidelity' and 0 < fidelity['mean_diff'] <= fidelity['max_diff'] < 1
    assert fidelity['max_diff_away_from_seams'] <= fidelity['max_diff']
    assert tiled['measure'] == 'memory tiled' and untiled['measure'] == 'memory untiled'
    assert tiled['peak_rss_mb'] > 50 and untiled['peak_rss_mb'] > 50
