"""`python -m tools.model_stats` from a checkout: runs mmp_jax.cli.model_stats (see there)."""
from mmp_jax.cli.model_stats import console_main

if __name__ == '__main__':
    console_main()
