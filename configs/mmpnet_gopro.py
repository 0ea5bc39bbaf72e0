"""`--config=configs/mmpnet_gopro.py` from a checkout: the installed mmp_jax/configs/mmpnet_gopro.py (see there)."""
from mmp_jax.configs.mmpnet_gopro import get_config  # noqa: F401 (what --config reads)
