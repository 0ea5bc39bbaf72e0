"""`--config=configs/default.py` from a checkout: the installed mmp_jax/configs/default.py (see there)."""
from mmp_jax.configs.default import get_config  # noqa: F401 (what --config reads)
