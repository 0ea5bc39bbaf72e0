"""The file layer, under everything that reads or writes: paths that may be URLs (`paths`),
files written whole (`atomic`), bytes read at an offset (`random_access`), and folders staged
locally for URLs that their writer cannot write (`staging`). It imports nothing of mmp_jax but
`mmp_jax.errors`."""
