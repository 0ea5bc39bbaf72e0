"""`--help` of every installed program (run as pip's console-script wrapper runs it, and as a
checkout's `python -m tools.<name>`) lists every flag the program defines; the examples of
`mmp_jax.main`'s help run as written."""
import configparser
import importlib
import re
import runpy
import shlex
import subprocess
import sys

import pytest

from mmp_jax import main
from tests.conftest import REPO

_SETUP = configparser.ConfigParser()
_SETUP.read(REPO / 'setup.cfg')
SCRIPTS = dict(line.replace(' ', '').split('=') for line in
               _SETUP['options.entry_points']['console_scripts'].strip().splitlines())
# pip's wrapper (console_scripts): the program's name in argv[0], the entry point called
WRAPPER = """import re, sys
from {module} import {function}
sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
sys.exit({function}())
"""


def defined_flags(module: str) -> set[str]:
    """The flags `module`'s source defines: absl's DEFINE_*('name', ...) and argparse's add_argument('--name')."""
    source = importlib.util.find_spec(module).loader.get_source(module)
    absl = re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source)
    return {f'--{name}' for name in absl} | set(re.findall(r"add_argument\(\s*'(--[\w-]+)'", source))


@pytest.mark.slow  # a few seconds each (the imports)
@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_every_console_script_lists_its_flags(script, tmp_path):
    module, function = SCRIPTS[script].split(':')
    wrapper = tmp_path / script
    wrapper.write_text(WRAPPER.format(module=module, function=function))
    run = subprocess.run([sys.executable, str(wrapper), '--help'], capture_output=True, text=True, cwd=REPO,
                         env={'PYTHONPATH': str(REPO), 'JAX_PLATFORMS': 'cpu'}, timeout=300)
    assert run.returncode in (0, 1) and not run.stderr, run.stderr[-2000:]  # absl's --help exits with 1
    shown = run.stdout.replace('--[no]', '--')  # absl's booleans
    wanted = defined_flags(module)
    assert len(wanted) >= 3 and not {flag for flag in wanted if flag not in shown}, run.stdout


def test_a_checkouts_model_stats_lists_its_flags():
    run = subprocess.run([sys.executable, '-m', 'tools.model_stats', '--help'], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert run.returncode == 1 and '--variant' in run.stdout and '--[no]paper' in run.stdout, run.stdout


def _examples(doc: str) -> list[list[str]]:
    """The commands of a docstring: lines from `python -m` on, `\\` continuations joined."""
    joined = re.sub(r'\\\s*\n\s*', ' ', doc)
    return [shlex.split(line.strip().replace('[', '').replace(']', '')) for line in joined.splitlines()
            if line.strip().startswith('python -m mmp_jax.main')]


def test_the_examples_of_mmp_jax_main_set_what_their_mode_needs():
    """`--mode=eval` needs evaluation records; the config files the examples name have none, so
    each such example must give them (the second example once did not)."""
    examples = _examples(main.__doc__)
    assert len(examples) == 4
    for example in examples:
        flags = dict(arg.split('=', 1) for arg in example if arg.startswith('--'))
        config = runpy.run_path(str(REPO / flags['--config']))['get_config']()
        if flags.get('--mode') == 'eval':
            assert config.data.eval_records or flags.get('--config.data.eval_records'), ' '.join(example)
