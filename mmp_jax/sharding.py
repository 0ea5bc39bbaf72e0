"""Data parallelism over every accelerator of every host with `jax.sharding`.

One mesh axis, `data`, over all devices of all processes (`jax.make_mesh`); batches are split
along it, parameters replicated; `jax.jit` with these shardings (no pmap). Multi-host runs join
the other processes first (`initialize`: `jax.distributed.initialize()`, which reads the cluster
from the environment on TPU pods and SLURM/Open MPI clusters, or from `config.distributed`), and
run inside `failing_fast`, so that one process's error ends the job instead of hanging it.
"""
import contextlib
import os
import sys
import traceback

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from mmp_jax.errors import UserError

DATA_AXIS = 'data'


def initialize(config) -> None:
    """Joins the other processes of a multi-host job (before any other JAX call) where
    `config.multi_host`; the coordinator, process count and id from `config.distributed` where set
    there, else from the cluster (TPU pod, SLURM, Open MPI) or `$JAX_COORDINATOR_ADDRESS`."""
    if not config.multi_host:
        return
    settings = config.distributed
    jax.distributed.initialize(coordinator_address=settings.coordinator_address or None,
                               num_processes=settings.num_processes or None,
                               process_id=None if settings.process_id < 0 else settings.process_id,
                               heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds)


@contextlib.contextmanager
def failing_fast(but: tuple[type[Exception], ...] = ()):
    """In a job of several processes, an exception in the block (other than those in `but`,
    raised by every process together) ends this process at once: the traceback to stderr, then
    `os._exit(1)`. A normal exit would wait at jax.distributed's shutdown
    barrier for the others while they wait for this process in their next collective (a hang
    until its shutdown timeout, 5 minutes); gone, the others' next collective fails at once (or
    their heartbeat check, within `heartbeat_timeout_seconds`), and they end the same way."""
    try:
        yield
    except Exception as error:  # pylint: disable=broad-exception-caught
        if jax.process_count() == 1 or isinstance(error, but):
            raise
        print(f'process {jax.process_index()} of {jax.process_count()} stopped the job:', file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)


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
        raise UserError(f'the global batch {global_batch} does not divide over {mesh.size} devices; '
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
