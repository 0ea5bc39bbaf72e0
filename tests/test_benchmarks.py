"""The benchmarks still run (tiny settings) and write their JSON; no timing is asserted."""
import collections
import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import chunked_inference, infer_speed
from tests.conftest import REPO, TINY_VARIANT, init_variables


def _run(tmp_path, module, *args):
    out = tmp_path / 'result.json'
    result = subprocess.run([sys.executable, '-m', module, '--json', str(out), *args],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_infer_speed(tmp_path):
    result = _run(tmp_path, 'benchmarks.infer_speed', '--variant', TINY_VARIANT, '--sizes', '32x16',
                  '--dtypes', 'float32,bfloat16', '--frames', '2', '--repeats', '1')
    assert [(r['size'], r['side'], r['dtype']) for r in result['rows']] == [
        ('32x16', 'ours', 'float32'), ('32x16', 'ours', 'bfloat16')]
    assert result['work_per_side'] == infer_speed.work(2, 1)
    for row in result['rows']:
        assert row['fps'] == 1 / row['s_per_frame'] and row['gmac_per_s'] > 0
        assert all(row[f'{part}_s'] > 0 for part in infer_speed.PARTS)
    assert result['machine']['cpu_count'] >= 1


def _counting_side(calls: collections.Counter) -> infer_speed.Side:
    step = lambda name: lambda t: calls.update([(name, t)])
    return infer_speed.Side(step('cell'), step('reconstruct'), {p: step(p) for p in infer_speed.PARTS})


@pytest.mark.parametrize('frames, repeats', [(1, 1), (4, 2), (6, 3)])
def test_infer_speed_gives_both_sides_the_same_work(frames, repeats):
    """Ours and the original go through one driver call: one cell step and one
    reconstruction per frame, whole and part by part, the same frames, as `work` says."""
    ours, original = collections.Counter(), collections.Counter()
    timings = infer_speed.time_sides({'ours': _counting_side(ours), 'original': _counting_side(original)},
                                     frames, repeats)
    assert timings.keys() == {'ours', 'original'}
    assert ours == original
    per_step = collections.Counter()
    for (name, _), n in ours.items():
        per_step[name] += n
    assert per_step == infer_speed.work(frames, repeats)
    assert {t for _, t in ours} == set(range(frames))


@pytest.mark.slow
def test_infer_memory(tmp_path):
    result = _run(tmp_path, 'benchmarks.infer_memory', '--variant', TINY_VARIANT, '--size', '32x16',
                  '--frames', '2,6', '--chunks', '3')  # each row a child process: two
    rows = result['rows']
    assert [(r['chunk_frames'], r['frames']) for r in rows] == [(3, 2), (3, 6)]
    assert rows[0]['vs_first'] == 1.0 and rows[1]['vs_first'] == rows[1]['peak_rss_mb'] / rows[0]['peak_rss_mb']
    assert all(r['peak_rss_mb'] > 50 for r in rows)


class _CountingDeblurrer:
    """A stand-in `StreamingDeblurrer` that logs (its K, frames) per pass."""

    def __init__(self, chunk_frames, log):
        self.chunk_frames, self.log = chunk_frames, log

    def __call__(self, frames):
        frames = list(frames)
        self.log.append((self.chunk_frames, len(frames)))
        return iter(frames)


def test_chunked_inference_warms_up_then_interleaves_the_chunk_sizes():
    log = []
    passes = chunked_inference.time_chunks({k: _CountingDeblurrer(k, log) for k in (1, 4)}, np.zeros((8, 1)), 2)
    assert log == [(1, 1), (4, 4), (1, 8), (4, 8), (1, 8), (4, 8)]
    assert [len(seconds) for seconds in passes.values()] == [2, 2]


@pytest.mark.slow
def test_chunked_inference(tmp_path):
    result = _run(tmp_path, 'benchmarks.chunked_inference', '--variant', TINY_VARIANT, '--size', '32x16',
                  '--chunks', '1,2', '--frames', '4', '--repeats', '1')
    assert [r['chunk_frames'] for r in result['rows']] == [1, 2] and result['rows'][0]['vs_first'] == 1.0
    assert all(r['s_per_frame'] > 0 and len(r['pass_s']) == 1 for r in result['rows'])


@pytest.mark.slow
def test_export_memory(tmp_path):
    result = _run(tmp_path, 'benchmarks.export_memory', '--size', '64x48', '--frames', '12,20', '--blur-frames', '7')
    rows = result['rows']
    assert [(r['frames'], r['windows']) for r in rows] == [(12, 5), (20, 13)]  # T - N, as the notebook
    assert all(r['worker_peak_rss_mb'] > 50 and r['windows_per_s'] > 0 for r in rows)


@pytest.mark.slow
def test_train_step_speed(tmp_path):
    result = _run(tmp_path, 'benchmarks.train_step_speed', '--variants', TINY_VARIANT, '--batch', '1',
                  '--frames', '5', '--patch', '16', '--repeats', '1')
    (row,) = result['rows']
    assert row['variant'] == TINY_VARIANT and row['batch'] == '1x5x16x16'
    assert row['loop_s'] > 0 and row['unrolled_s'] > 0 and row['speedup'] == row['loop_s'] / row['unrolled_s']


@pytest.mark.slow
def test_tiled_inference(tmp_path):
    result = _run(tmp_path, 'benchmarks.tiled_inference', '--variant', TINY_VARIANT, '--size', '64x48', '--tile', '32',
                  '--overlap', '8', '--frames', '2', '--fidelity-size', '64x48', '--fidelity-frames', '5')
    fidelity, tiled, untiled = result['rows']
    assert fidelity['measure'] == 'fidelity' and 0 < fidelity['mean_diff'] <= fidelity['max_diff'] < 1
    assert fidelity['max_diff_away_from_seams'] <= fidelity['max_diff']
    assert tiled['measure'] == 'memory tiled' and untiled['measure'] == 'memory untiled'
    assert tiled['peak_rss_mb'] > 50 and untiled['peak_rss_mb'] > 50


@pytest.mark.slow
def test_state_drift(tmp_path):
    from mmp_jax.checkpoint import save_model  # noqa: PLC0415
    from mmp_jax.models.variants import model_from_variant  # noqa: PLC0415
    model = model_from_variant(TINY_VARIANT)
    save_model(tmp_path / 'model', init_variables(model), {'variant': TINY_VARIANT})
    result = _run(tmp_path, 'benchmarks.state_drift', '--checkpoint', str(tmp_path / 'model'), '--frames', '30',
                  '--block', '10', '--reset-every', '8', '--size', '48x32')
    assert [r['frames'] for r in result['rows']] == ['0..9', '10..19', '20..29']
    assert all(r['psnr_blurry'] > 15 and np.isfinite(r['psnr_carried']) for r in result['rows'])


@pytest.mark.slow
def test_train_step_memory(tmp_path):
    result = _run(tmp_path, 'benchmarks.train_step_memory', '--variant', TINY_VARIANT, '--batch', '1x5x32x32',
                  '--dtypes', 'float32', '--remats', 'none,full', '--unrolls', 'false')
    rows = result['rows']
    assert result['program'] == 'accelerator'  # the default: what a GPU or TPU compiles
    assert [(r['remat'], r['scan_unroll']) for r in rows] == [('none', False), ('full', False)]
    for row in rows:
        assert row['peak_gb'] >= row['argument_gb'] + row['output_gb'] + row['temp_gb'] - row['alias_gb'] > 0
    assert rows[1]['temp_gb'] < rows[0]['temp_gb']  # remat keeps less for the backward pass


@pytest.mark.slow
def test_train_loop_sync(tmp_path):
    result = _run(tmp_path, 'benchmarks.train_loop_sync', '--variant', TINY_VARIANT, '--batch', '1', '--frames', '5',
                  '--patch', '16', '--steps', '2', '--log-every', '2', '--repeats', '1', '--prefetch', '0,2',
                  '--frame', '32')
    every, logged, read, prefetched = result['rows']
    assert [(r['sync'], r['batches']) for r in result['rows']] == [
        ('every step', 'on the device'), ('every 2 steps', 'on the device'),
        ('every 2 steps', 'read, prefetch 0'), ('every 2 steps', 'read, prefetch 2')]
    assert every['vs_every_step'] == 1 and read['vs_prefetch_0'] == 1 and 'vs_prefetch_0' not in logged
    assert logged['s_per_step'] > 0 and logged['vs_every_step'] == every['s_per_step'] / logged['s_per_step']
    assert prefetched['vs_prefetch_0'] == read['s_per_step'] / prefetched['s_per_step']
    assert len(result['load_average']) == 3


@pytest.mark.slow
def test_accelerator_speed(tmp_path):
    """An inference row per dtype, several videos in lockstep. No training row: its step is
    `train_step_speed`'s (tested there) and its compilation would double the test's time; the
    training rows were measured on an H200 (`benchmarks/results/accelerator_speed_h200_train.json`)."""
    result = _run(tmp_path, 'benchmarks.accelerator_speed', '--variant', TINY_VARIANT, '--size', '32x16',
                  '--frames', '4', '--dtypes', 'float32,bfloat16', '--chunks', '2', '--videos', '2',
                  '--train-settings', '')
    rows = result['rows']
    assert [(r['measure'], r['dtype'], r['chunk']) for r in rows] == [
        ('inference', 'float32', 2), ('inference', 'bfloat16', 2)]
    assert all(r['fps'] > 0 and r['shape'] == '32x16' and r['videos'] == 2 for r in rows)


@pytest.mark.slow
def test_records_reader(tmp_path):
    result = _run(tmp_path, 'benchmarks.records_reader', '--gigabytes', '0.005', '--frame', '48', '--patch', '16',
                  '--length', '3', '--batches', '2')
    rows = result['rows']
    assert [r['reader'] for r in rows] == ['frames held in memory', 'frames read by offset']
    assert all(r['batches_per_s'] > 0 and r['peak_rss_mb'] > 20 for r in rows)


@pytest.mark.slow
def test_layer_speed(tmp_path):
    """Every convolution of a frame is in the table once: 54 + 4 (n_a + n_b) calls for MMP-RNN
    (MMP-Net 24; the cell 21 + 4 n_a; fusion, reconstruction and skip 9 + 4 n_b), and with the
    frame's other MACs they add up to `network_stats`."""
    from mmp_jax.models.macs import network_stats  # noqa: PLC0415
    result = _run(tmp_path, 'benchmarks.layer_speed', '--variant', 'A2B1C4F5', '--size', '32x16',
                  '--repeats', '1', '--torch-python', '')
    *rows, total = result['rows']
    assert total['layer'] == 'all convolutions'
    assert sum(row['count'] for row in rows) == total['count'] == 54 + 4 * (2 + 1)
    assert len({(row['layer'], row['channels'], row['input']) for row in rows}) == len(rows)
    assert sum(row['ours_ms_per_frame'] for row in rows) == pytest.approx(total['ours_ms_per_frame'])
    assert all(row['ours_ms'] > 0 and row['ours_gflops'] > 0 and 'torch_ms' not in row for row in rows)
    macs = result['conv_macs_per_frame']
    assert macs == pytest.approx(total['gmacs_per_call'] * 1e9)
    assert macs + result['other_macs_per_frame'] == network_stats('A2B1C4F5', 16, 32)['macs']


@pytest.mark.slow
def test_gpu_suite_ours_side(tmp_path):
    """Our side of the GPU suite on this CPU (the CUDA formulations computed here): frame by frame
    through `time_sides` and in chunks through `StreamingDeblurrer`, and the training step; the
    original's rows skipped (no torch in this environment), one row per job in plan order."""
    fake_original = tmp_path / 'MMP-RNN'
    (fake_original / 'model').mkdir(parents=True)
    (fake_original / 'model' / 'MMPRNN.py').write_text('')
    result = _run(tmp_path, 'benchmarks.gpu_suite', '--variant', TINY_VARIANT, '--size', '32x16', '--frames', '2',
                  '--repeats', '1', '--stream-frames', '4', '--train-batch', '1x5x16x16', '--steps', '1',
                  '--platform', 'cuda', '--original', str(fake_original),
                  '--only', 'bfloat16 x8 K8,bfloat16 x8 K1,bfloat16 x8 remat,original inference float32',
                  '--layers-json', str(tmp_path / 'layers.json'))
    rows = {(row['side'], row['measure'], row['mode']): row for row in result['rows']}
    assert list(rows) == [('original', 'inference', 'float32'), ('ours', 'inference', 'bfloat16 x8 K8'),
                          ('ours', 'inference', 'bfloat16 x8 K1'), ('ours', 'training', 'bfloat16 x8 remat none loop'),
                          ('original', 'inference', 'float32 + channels_last')]
    for key, row in rows.items():
        if key[0] == 'original':
            # skipped without torch; with it, the fake original fails to import: never measured
            assert row['status'] in ('skipped: torch is not importable', "failed: ModuleNotFoundError: "
                                     "No module named 'model.UNet'")
            continue
        assert row['status'] == 'measured' and row['jax'] and row['device'] == 'cpu:cpu'
        if key[1] == 'inference':  # fps is 1 / s_per_frame, and 1 / (1 / x) is x only to the last bit
            assert row['fps'] > 0 and row['s_per_frame'] == pytest.approx(1 / row['fps'], rel=1e-12)
        else:
            assert row['steps_per_s'] > 0 and row['batch'] == '1x5x16x16'
    assert rows[('ours', 'inference', 'bfloat16 x8 K8')]['driver'] == 'StreamingDeblurrer'
    assert rows[('ours', 'inference', 'bfloat16 x8 K1')]['driver'] == 'time_sides'
    assert result['platform_formulations'] == 'cuda'


_FAKE_WORKER = '''
import json, sys, time
print('SUITE ' + json.dumps({'ready': True, 'device': 'fake'}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    time.sleep(job['sleep'])
    print('noise', flush=True)
    print('SUITE ' + json.dumps({'slept': job['sleep']}), flush=True)
'''


def test_gpu_suite_keeps_to_its_budget():
    """A job that outruns its limit is stopped (its worker killed and restarted for the next
    job), a job that needs more than is left is skipped, each gives a row, in order."""
    from benchmarks import gpu_suite  # noqa: PLC0415
    started = []

    def start(side):
        started.append(side)
        return gpu_suite.Worker([sys.executable, '-c', _FAKE_WORKER])

    job = lambda sleep, needs, limit: gpu_suite.Job('ours', {'measure': 'inference', 'dtype': 'float32',
                                                               'multiple': 1, 'chunk': 1, 'sleep': sleep}, needs, limit)
    rows = []
    gpu_suite.run_plan([job(0.1, 0, 30), job(60, 0, 1.0), job(0.1, 0, 30), job(0.1, 100, 30), job(0.1, 0, 30)],
                       20, start, rows.append)
    assert [row['status'] for row in rows] == ['measured', 'timed out after 1 s', 'measured',
                                                rows[3]['status'], 'measured']
    assert rows[3]['status'].startswith('skipped: ') and rows[3]['status'].endswith('needs 100')
    assert rows[0]['slept'] == 0.1 and rows[0]['device'] == 'fake' and rows[1]['wall_s'] < 5
    assert started == ['ours', 'ours']  # restarted once, after the time-out
    skipped = []
    gpu_suite.run_plan([job(0.1, 0, 30)], 20, start, skipped.append, {'ours': 'no device'})
    assert skipped[0]['status'] == 'skipped: no device' and len(started) == 2


@pytest.mark.slow
def test_roofline_fills_and_totals(tmp_path):
    """The fill model on known shapes, and the frame's totals from every conv call."""
    from benchmarks.roofline import ConvWork  # noqa: PLC0415
    dense = ConvWork((3, 3), 1, False, 90, 36, (180, 320), (180, 320))
    assert dense.h100_fill() == 90 * 36 / (96 * 40) and dense.tpu_fill() == 90 * 36 / 128 ** 2
    assert dense.tpu_folded_fill() == 810 * 36 / (896 * 128)
    assert dense.bytes() == 2 * (180 * 320 * (90 + 36) + 9 * 90 * 36)
    transposed = ConvWork((3, 3), 2, True, 90, 36, (180, 320), (360, 640))
    assert transposed.macs * 4 == 360 * 640 * 9 * 90 * 36  # a quarter of thop's count
    result = _run(tmp_path, 'benchmarks.roofline', '--variant', 'A2B1C4F5', '--size', '32x16')
    *rows, total = result['rows']
    assert sum(row['count'] for row in rows) == total['count'] == 54 + 4 * (2 + 1)
    assert all(0 < row[f'{unit}_fill'] <= 1 for row in rows for unit in ('tpu', 'tpu_folded', 'h100'))
    assert total['h100_fps'] <= total['h100_fps_full_fill'] and total['tpu_fps'] <= total['tpu_folded_fps']
    assert total['tpu_ms_per_frame'] == pytest.approx(sum(row['tpu_ms_per_frame'] for row in rows))


@pytest.mark.slow
def test_layer_speed_device_table(tmp_path):
    """Every part and conv shape of a frame timed on the default device, with rates against the
    measured ceilings."""
    result = _run(tmp_path, 'benchmarks.layer_speed', '--device-table', '--variant', 'A2B1C4F5', '--size', '32x16',
                  '--dtype', 'bfloat16')
    parts = [row for row in result['rows'] if row['row'] == 'part']
    convs = [row for row in result['rows'] if row['row'] == 'conv']
    assert [row['name'] for row in parts] == ['MMP-Net', 'cell (given the prior)', 'fusion', 'reconstruction', 'skip']
    assert sum(row['convs'] for row in parts) == sum(row['count'] for row in convs) == 54 + 4 * (2 + 1)
    assert result['matmul_tflops'] > 0 and result['copy_gbs'] > 0 and result['dtype'] == 'bfloat16'
    for row in result['rows']:
        assert row['ms'] > 0 and row['tflops'] == pytest.approx(row['gflop'] / row['ms'])
        assert row['of_matmul_ceiling'] == pytest.approx(row['tflops'] / result['matmul_tflops'])
