"""MMP-RNN (ECCV 2022) in JAX/Flax."""
from mmp_jax.backend import set_tensorflow_defaults, set_xla_flags

set_xla_flags()
set_tensorflow_defaults()
