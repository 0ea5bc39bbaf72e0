"""XLA options the project sets for the backends it runs on, before any backend initialises.

`mmp_jax/__init__.py` calls `set_xla_flags()` on import, so they take effect when the package
is imported before JAX's first computation. A flag the user already put in XLA_FLAGS (with
any value) is left as the user set it.
"""
import os
from collections.abc import MutableMapping

# Read by the CPU backend only (other backends ignore xla_cpu_ options). Measured on a 2-core
# Zen 4 CPU, A9B10C18F8 at 640x480: see benchmarks/README.md.
CPU_FLAGS = (
    '--xla_cpu_experimental_ynn_fusion_type=',  # no XNNPACK fusions: Eigen/XLA convolutions, ~1.5x faster
)


def _flag_name(flag: str) -> str:
    return flag.split('=', 1)[0]


def set_xla_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Appends each of CPU_FLAGS to `environ['XLA_FLAGS']` unless that flag is already there."""
    flags = environ.get('XLA_FLAGS', '').split()
    present = {_flag_name(flag) for flag in flags}
    missing = [flag for flag in CPU_FLAGS if _flag_name(flag) not in present]
    if missing:
        environ['XLA_FLAGS'] = ' '.join(flags + missing)
