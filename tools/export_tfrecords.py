"""`python -m tools.export_tfrecords` from a checkout: runs mmp_jax.cli.export_tfrecords (see there)."""
import sys

from mmp_jax.cli.export_tfrecords import main

if __name__ == '__main__':
    sys.exit(main())
