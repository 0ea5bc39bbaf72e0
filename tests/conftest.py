"""Shared test helpers: the repository root (`REPO`), the tiny MMP-RNN (`TINY_MMPRNN`), a model's
initial variables (`init_variables`), Python subprocesses on N forced host CPU devices, alone or as
the processes of one `jax.distributed` job on localhost; one persistent compilation cache for the
whole run. (`tests` is a package, so pytest puts the repository root on sys.path: the tests import
`configs` and `tools` from it.)"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from mmp_jax.backend import with_flags

REPO = Path(__file__).resolve().parents[1]  # the repository root, for every test that needs it
TINY_MMPRNN = dict(n_features=4, n_blocks_a=1, n_blocks_b=1)  # the tiny MMP-RNN of the model and step tests
TINY_VARIANT = 'A1B1C4F5'  # the same model by its variant name (commands, benchmarks, configs)

COMPILATION_FOLDER = pytest.StashKey[str]()  # the run's compilation cache, made by pytest_configure

# What the test run adds to XLA_FLAGS (in this process, the xdist workers and every subprocess):
# nearly all of the suite's time is XLA:CPU compiling tiny programs, so the programs are compiled
# for compile time. The HLO is the same (XLA's own passes still run); its machine code is not
# optimised by LLVM (level 0: a tiny MMP-RNN's jitted init compiles in 70 s at the default level,
# 7 s at 0), and fusions are emitted by XLA's older loop emitters, not its MLIR fusion emitters
# (the init in 4.5 s, the tiny model's gradient in 8 s instead of 14 s; jax 0.10.2). The
# programs run about 3x slower, a good trade at the tests' shapes. Float results stay within the
# tests' tolerances (the comparisons with the original's stored outputs and the trainer's
# included). A value the user set in XLA_FLAGS wins.
TEST_XLA_FLAGS = ('--xla_backend_optimization_level=0', '--xla_cpu_use_fusion_emitters=false')


def pytest_configure(config):
    """Many tests compile the same tiny programs (in this process, in the xdist workers and in
    the subprocesses they start): JAX's persistent compilation cache in a folder of this run
    compiles each once (the suite's CPU time halves). Set in the environment before any test
    module imports jax; the workers and subprocesses inherit it. A JAX_COMPILATION_CACHE_DIR of
    your own is used as it is (and kept: a cache across runs). XLA compiles with LLVM's
    optimisations off (`TEST_XLA_FLAGS`)."""
    if 'PYTEST_XDIST_WORKER' in os.environ:
        return
    os.environ['XLA_FLAGS'] = with_flags(os.environ.get('XLA_FLAGS', ''), TEST_XLA_FLAGS)
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')  # tiny programs too
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
    if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
        config.stash[COMPILATION_FOLDER] = os.environ['JAX_COMPILATION_CACHE_DIR'] = \
            tempfile.mkdtemp(prefix='mmp-jax-test-compilations-')


def pytest_unconfigure(config):
    """Removes the run's compilation cache (`pytest_configure`)."""
    folder = config.stash.get(COMPILATION_FOLDER, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def init_variables(model, key: int = 0, *inputs) -> dict:
    """The variables of `model` (a flax module), its `init` jitted, from `jax.random.key(key)` on
    `inputs`; with none, on zero frames [1, model.window, 16, 16, 3] float32 (an MMP-RNN's)."""
    import jax  # here, not above: jax starts after pytest_configure has set its flags and cache
    if not inputs:
        inputs = (np.zeros((1, model.window, 16, 16, 3), np.float32),)
    return jax.jit(model.init)(jax.random.key(key), *inputs)


def _cpu_env(devices: int) -> dict:
    """The environment of a process on `devices` host CPU devices (the XLA flag must be set
    before jax starts, hence subprocesses)."""
    flags = with_flags(os.environ.get('XLA_FLAGS', ''), [f'--xla_force_host_platform_device_count={devices}'],
                       replace=True)
    return dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS='cpu')


def _job_env(devices: int, processes: int) -> dict:
    """`_cpu_env` for a process of a job of `processes`: a `jax.distributed` job (more than one)
    runs without the compilation cache (a process running a collective from the cache while
    another compiled it timed out in Gloo's context set-up, jax 0.10.2; nor can process 0 hand
    its programs to the others, `jax_share_binary_between_hosts`: on CPU each process's cache
    key differs, and the others wait for theirs forever). A job of one process has no peer to
    wait for: it uses the run's cache."""
    env = _cpu_env(devices)
    if processes > 1:
        env.pop('JAX_COMPILATION_CACHE_DIR', None)
    return env


def run_on_cpu_devices(script: str, devices: int) -> subprocess.CompletedProcess:
    """`python -c script` from the repository root on `devices` host CPU devices; output captured as text."""
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=_cpu_env(devices),
                          cwd=REPO)


@pytest.fixture
def cpu_devices_run():
    """`run_on_cpu_devices`, for the tests that compare runs over several devices."""
    return run_on_cpu_devices


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('localhost', 0))
        return probe.getsockname()[1]


def start_processes(script: str, processes: int, devices: int, logs: Path, *args: str) -> list[subprocess.Popen]:
    """The processes of one job on this machine: `python -c script COORDINATOR PROCESSES ID *args`
    for ID in 0 .. `processes` - 1, each on `devices` host CPU devices, from the repository root;
    the script joins the job with `jax.distributed.initialize(COORDINATOR, PROCESSES, ID)` (or
    `config.distributed`), COORDINATOR a free localhost port. Process ID's stdout and stderr go to
    `logs`/ID.out and ID.err (files, so that no pipe fills up while the job runs)."""
    coordinator = f'localhost:{_free_port()}'
    started = []
    for index in range(processes):
        with open(logs / f'{index}.out', 'w') as out, open(logs / f'{index}.err', 'w') as err:
            started.append(subprocess.Popen([sys.executable, '-c', script, coordinator, str(processes), str(index),
                                             *args],
                                            stdout=out, stderr=err, env=_job_env(devices, processes), cwd=REPO))
    return started


def finish_processes(started: list[subprocess.Popen], logs: Path, timeout: float) -> list[subprocess.CompletedProcess]:
    """Waits for `start_processes`' processes (killing all of them past `timeout` seconds from
    now, then failing the test); their exit codes and output."""
    deadline = time.monotonic() + timeout
    try:
        for process in started:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for process in started:
            process.kill()
        pytest.fail(f'the processes did not end within {timeout} s: logs in {logs}')
    return [subprocess.CompletedProcess(process.args, process.returncode, (logs / f'{i}.out').read_text(),
                                        (logs / f'{i}.err').read_text()) for i, process in enumerate(started)]


@pytest.fixture
def job_of_processes(tmp_path):
    """`run(script, processes, devices, *args, timeout=900)`: `start_processes` then
    `finish_processes` (logs in a fresh folder under tmp_path)."""
    def run(script: str, processes: int, devices: int, *args: str,
            timeout: float = 900) -> list[subprocess.CompletedProcess]:
        logs = tmp_path / f'logs{len(list(tmp_path.glob("logs*")))}'
        logs.mkdir()
        return finish_processes(start_processes(script, processes, devices, logs, *args), logs, timeout)
    return run
