"""Shared test helpers: a Python subprocess on N forced host CPU devices. (`tests` is a package,
so pytest puts the repository root on sys.path: the tests import `configs` and `tools` from it.)"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_on_cpu_devices(script: str, devices: int) -> subprocess.CompletedProcess:
    """`python -c script` from the repository root on `devices` host CPU devices (the XLA flag
    must be set before jax starts, hence a subprocess); output captured as text."""
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}', JAX_PLATFORMS='cpu')
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, cwd=REPO)


@pytest.fixture
def cpu_devices_run():
    """`run_on_cpu_devices`, for the tests that compare runs over several devices."""
    return run_on_cpu_devices
