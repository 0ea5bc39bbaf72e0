"""`--config=configs/gopro.py` from a checkout: the installed mmp_jax/configs/gopro.py (see there)."""
from mmp_jax.configs.gopro import get_config  # noqa: F401 (what --config reads)
