"""`python -m tools.score` from a checkout: runs mmp_jax.cli.score (see there)."""
import sys

from mmp_jax.cli.score import main

if __name__ == '__main__':
    sys.exit(main())
