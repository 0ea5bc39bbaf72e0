"""`tools.score`: another method's output folders scored by the protocol of our evaluation,
checked against `mmp_jax.evaluate`'s own numbers for the same frames; mismatched folders are
one line and exit 2."""
import json

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax import evaluate, sharding
from mmp_jax.cli import score
from tests.test_eval_workdir import Dimmer
from mmp_jax.cli import score as score_tool

LENGTHS = {'seq_a': 9, 'seq_b': 7}


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
    """Sequences of 9 and 7 frames (20x24) evaluated by `MMPRNNEvaluator` (outputs written), and
    their sharp frames written as a method's ground-truth folders: (root, report)."""
    root = tmp_path_factory.mktemp('score')
    rng = np.random.default_rng(0)
    sequences = {name: {'blurry': rng.integers(0, 256, (t, 20, 24, 3), dtype=np.uint8),
                        'sharp': rng.integers(0, 256, (t, 20, 24, 3), dtype=np.uint8), 'mmp': None}
                 for name, t in LENGTHS.items()}
    evaluator = evaluate.MMPRNNEvaluator(Dimmer(), chunk_frames=0, sample_images=0, outputs_dir=root / 'outputs')
    report, _ = evaluator({'w': jnp.float32(0.0)}, sequences, sharding.make_mesh())
    for name, seq in sequences.items():
        (root / 'sharp' / name).mkdir(parents=True)
        for t, frame in enumerate(seq['sharp']):
            cv2.imwrite(str(root / 'sharp' / name / f'{t:05d}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return root, report


def _score(*args) -> int:
    return score.main([*map(str, args)])


def test_scores_equal_the_evaluations_for_the_same_frames(evaluated, tmp_path, capsys):
    root, report = evaluated
    assert sorted(p.name for p in (root / 'outputs' / 'seq_b').iterdir()) == [f'{t:08d}.png' for t in (2, 3, 4)]
    assert _score('--outputs', root / 'outputs', '--sharp', root / 'sharp', '--json', tmp_path / 'scores.json') == 0
    ours = json.loads((tmp_path / 'scores.json').read_text())
    assert ours['count'] == report['count'] == (9 - 4) + (7 - 4)
    assert ours['psnr'] == pytest.approx(report['psnr'], abs=1e-12)
    assert ours['ssim'] == pytest.approx(report['ssim'], abs=1e-12)
    for name in LENGTHS:
        mine, theirs = ours['sequences'][name], report['sequences'][name]
        assert (mine['frames'], mine['count']) == (theirs['frames'], theirs['count'])
        assert (mine['psnr'], mine['ssim']) == pytest.approx((theirs['psnr'], theirs['ssim']), abs=1e-12)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['sequence', 'frames', 'PSNR', 'SSIM'] and lines[-1].split()[:2] == ['mean', '8']
    assert float(lines[-1].split()[2]) == pytest.approx(report['psnr'], abs=1e-4)


def test_all_t_outputs_are_scored_on_frames_2_to_t_minus_3(evaluated, tmp_path):
    """Outputs of every frame (here the scored ones, and noise at the four ends) give the same scores."""
    root, report = evaluated
    rng = np.random.default_rng(1)
    for name, length in LENGTHS.items():
        folder = tmp_path / 'all' / name
        folder.mkdir(parents=True)
        for t in range(length):
            scored = root / 'outputs' / name / f'{t:08d}.png'
            frame = cv2.imread(str(scored)) if scored.exists() else rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f'frame{t}.png'), frame)  # 'frame10' after 'frame9': natural order
    assert score_tool.main(['--outputs', str(tmp_path / 'all'), '--sharp', str(root / 'sharp'),
                            '--json', str(tmp_path / 'all.json')]) == 0
    assert json.loads((tmp_path / 'all.json').read_text())['psnr'] == pytest.approx(report['psnr'], abs=1e-12)


def test_identical_frames_score_inf_in_the_table_and_null_in_valid_json(evaluated, tmp_path, capsys):
    """The sharp frames scored against themselves: PSNR infinite, which JSON cannot hold."""
    root, _ = evaluated
    assert _score('--outputs', root / 'sharp', '--sharp', root / 'sharp', '--json', tmp_path / 'same.json') == 0
    refuse = lambda constant: pytest.fail(f'not JSON: {constant}')
    report = json.loads((tmp_path / 'same.json').read_text(), parse_constant=refuse)
    assert report['psnr'] is None and report['ssim'] == pytest.approx(1.0)
    assert all(seq['psnr'] is None for seq in report['sequences'].values())
    assert capsys.readouterr().out.splitlines()[-1].split()[2:] == ['inf', '1.0000']


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def test_mismatched_folders_are_one_line_and_exit_2(evaluated, tmp_path, capsys):
    root, _ = evaluated
    outputs = tmp_path / 'outputs'
    (outputs / 'seq_a').mkdir(parents=True)
    assert _score('--outputs', outputs, '--sharp', root / 'sharp', '--json', tmp_path / 'no.json') == 2
    assert _one_line(capsys) == f"score: {outputs}: its sequences differ from {root / 'sharp'}'s: missing seq_b"
    for name in LENGTHS:
        (outputs / name).mkdir(exist_ok=True)
        for t in range(3):
            cv2.imwrite(str(outputs / name / f'{t}.png'), np.zeros((20, 24, 3), np.uint8))
    assert _score('--outputs', outputs, '--sharp', root / 'sharp') == 2
    assert _one_line(capsys) == (f'score: {outputs / "seq_a"}: 3 frames, but {root / "sharp" / "seq_a"} has 9: '
                                 f'give all 9 outputs or the 5 scored ones (frames 2..6)')
    cv2.imwrite(str(outputs / 'seq_a' / '3.png'), np.zeros((20, 24, 3), np.uint8))
    cv2.imwrite(str(outputs / 'seq_a' / '4.png'), np.zeros((22, 24, 3), np.uint8))
    assert _score('--outputs', outputs, '--sharp', root / 'sharp') == 2
    assert _one_line(capsys) == (f'score: {outputs / "seq_a" / "4.png"}: 24x22, but '
                                 f'{root / "sharp" / "seq_a" / "00006.png"} is 24x20')
    assert not (tmp_path / 'no.json').exists()


def test_lpips_where_the_package_is_installed(evaluated, tmp_path, monkeypatch, capsys):
    root, _ = evaluated
    monkeypatch.setattr(score, 'lpips_distance', lambda: None)  # as without the package
    assert _score('--outputs', root / 'outputs', '--sharp', root / 'sharp', '--lpips') == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == 'score: LPIPS skipped: the lpips package is not installed (pip install lpips)'
    assert 'LPIPS' not in captured.out
    monkeypatch.setattr(score, 'lpips_distance', lambda: lambda out, sharp: float(np.mean(out != sharp)))
    assert _score('--outputs', root / 'outputs', '--sharp', root / 'sharp', '--lpips',
                  '--json', tmp_path / 's.json') == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-1] == 'LPIPS'
    assert 0 < json.loads((tmp_path / 's.json').read_text())['lpips'] <= 1
