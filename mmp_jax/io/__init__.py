"""The file layer, under everything that reads or writes: paths that may be URLs (`paths`),
files written whole (`atomic`), bytes read at an offset (`random_access`), and local stand-ins
for URLs that their reader or writer cannot use (`staging`). It imports nothing of mmp_jax but
`mmp_jax.errors`."""
