"""The job configs (ml_collections), installed with the package: `default.py` holds every field
and the paper's settings; the others change what differs. `--config` takes a file's path; the
installed ones are in this folder:

    mmp-train --config="$(python -c 'import mmp_jax.configs as c; print(c.__path__[0])')/bsd.py" ...

A checkout's `configs/<name>.py` is each of them under its old path (`--config=configs/bsd.py`).
A copy of one of these files runs from anywhere: they import each other as `mmp_jax.configs.*`.
"""
