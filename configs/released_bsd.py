"""`--config=configs/released_bsd.py` from a checkout: the installed mmp_jax/configs/released_bsd.py (see there)."""
from mmp_jax.configs.released_bsd import get_config  # noqa: F401 (what --config reads)
