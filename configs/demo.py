"""`--config=configs/demo.py` from a checkout: the installed mmp_jax/configs/demo.py (see there)."""
from mmp_jax.configs.demo import get_config  # noqa: F401 (what --config reads)
