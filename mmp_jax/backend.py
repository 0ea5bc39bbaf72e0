"""XLA options the project sets for the backends it runs on, before any backend initialises, and
TensorFlow's defaults.

`mmp_jax/__init__.py` calls `set_xla_flags()` and `set_tensorflow_defaults()` on import, so they
take effect when the package is imported before JAX's first computation and TensorFlow's import.
A flag the user already put in XLA_FLAGS (with any value), or a variable the user set, is left as
the user set it.
"""
import os
from collections.abc import MutableMapping

# Read by the CPU backend only (other backends ignore xla_cpu_ options). Measured on a 2-core
# Zen 4 CPU, A9B10C18F8 at 640x480: see benchmarks/README.md.
CPU_FLAGS = (
    '--xla_cpu_experimental_ynn_fusion_type=',  # no XNNPACK fusions: Eigen/XLA convolutions, ~1.5x faster
)


def with_flags(xla_flags: str, flags, replace: bool = False) -> str:
    """The XLA_FLAGS value `xla_flags` with `flags` added: a flag of the same name already there
    is kept as it is (the user's wins), or replaced where `replace`."""
    name = lambda flag: flag.split('=', 1)[0]
    given = {name(flag) for flag in flags}
    kept = [flag for flag in xla_flags.split() if not (replace and name(flag) in given)]
    present = {name(flag) for flag in kept}
    return ' '.join(kept + [flag for flag in flags if name(flag) not in present])


# TensorFlow only reads and writes records and summaries here (JAX computes), so its oneDNN kernels
# are never used; with them off and its log level at warnings, importing it prints nothing (on CPUs
# with AVX-512 it otherwise prints oneDNN and CPU-feature lines to stderr, even for `--help`).
TENSORFLOW_DEFAULTS = {'TF_ENABLE_ONEDNN_OPTS': '0', 'TF_CPP_MIN_LOG_LEVEL': '2'}


def set_tensorflow_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets each of TENSORFLOW_DEFAULTS in `environ` that the user has not set."""
    for name, value in TENSORFLOW_DEFAULTS.items():
        environ.setdefault(name, value)


def set_xla_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Appends each of CPU_FLAGS to `environ['XLA_FLAGS']` unless that flag is already there."""
    environ['XLA_FLAGS'] = with_flags(environ.get('XLA_FLAGS', ''), CPU_FLAGS)
