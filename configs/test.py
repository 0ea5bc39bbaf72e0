"""`--config=configs/test.py` from a checkout: the installed mmp_jax/configs/test.py (see there)."""
from mmp_jax.configs.test import get_config  # noqa: F401 (what --config reads)
