"""Data parallelism over every accelerator of every host with `jax.sharding`.

One mesh axis, `data`, over all devices of all processes (`jax.make_mesh`); batches are split
along it, parameters replicated; `jax.jit` with these shardings (no pmap). Multi-host runs call
`initialize(True)` first (`jax.distributed.initialize()`, which reads the cluster from the
environment on TPU pods and SLURM/Open MPI clusters).
"""
import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def initialize(multi_host: bool) -> None:
    """Joins the other processes of a multi-host job (before any other JAX call)."""
    if multi_host:
        jax.distributed.initialize()


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over all devices of all processes."""
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) axis split over the devices, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_global_batch(global_batch: int, mesh: jax.sharding.Mesh) -> int:
    """The per-host batch; ValueError unless the global batch divides over the devices."""
    if global_batch % mesh.size:
        raise ValueError(f'the global batch {global_batch} does not divide over {mesh.size} devices; '
                         f'use a multiple of {mesh.size}')
    return global_batch // jax.process_count()


def shard_batch(host_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """This host's part of a batch `[B_host, ...]` -> global arrays `[B_global, ...]` split
    over the data axis (each host passes its own part)."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in host_batch.items()}


def replicate(tree, mesh: jax.sharding.Mesh):
    """Parameters (any pytree) on every device."""
    return jax.device_put(tree, replicated(mesh))
