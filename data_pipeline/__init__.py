"""The old name of `mmp_jax.data`, for scripts run from a checkout (`import data_pipeline.sources`).

This package is not installed; its path is `mmp_jax/data`, so `data_pipeline.<module>` loads the same
file as `mmp_jax.data.<module>` (a second module object: import one name or the other in a program).
"""
from mmp_jax import data as _data

__path__ = _data.__path__
