"""`python -m tools.deblur` from a checkout: runs mmp_jax.cli.deblur (see there)."""
import sys

from mmp_jax.cli.deblur import main

if __name__ == '__main__':
    sys.exit(main())
