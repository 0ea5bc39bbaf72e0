"""`--config=configs/bsd.py` from a checkout: the installed mmp_jax/configs/bsd.py (see there)."""
from mmp_jax.configs.bsd import get_config  # noqa: F401 (what --config reads)
