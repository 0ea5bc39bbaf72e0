"""The command-line tools, run as a user runs them."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True,
                          cwd=cwd or REPO)


@pytest.mark.slow
def test_model_stats_json_line():
    result = _run('tools.model_stats', '--variant', 'A9B10C18F8', '--height', '720',
                  '--width', '1280', '--json')
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats['params'] == 4079940 and stats['gmacs'] == pytest.approx(263.99, abs=0.01)


def test_model_stats_refuses_a_bad_variant():
    result = _run('tools.model_stats', '--variant', 'A9B10')
    assert result.returncode == 2
    assert "unknown variant 'A9B10'" in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize('flag, problem', [('--bogus', "UnrecognizedFlagError: Unknown command line flag 'bogus'"),
                                           ('--width=abc', 'IllegalFlagValueError: flag --width=abc: invalid')])
def test_model_stats_flag_errors_are_one_line_and_exit_2(flag, problem):
    """absl printed two lines and exited 1."""
    result = _run('tools.model_stats', flag)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.count('\n') == 1 and result.stderr.startswith(f'model_stats: error: {problem}')
