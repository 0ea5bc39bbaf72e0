"""`python -m tools.convert_checkpoint` from a checkout: runs mmp_jax.cli.convert_checkpoint (see there)."""
import sys

from mmp_jax.cli.convert_checkpoint import main

if __name__ == '__main__':
    sys.exit(main())
