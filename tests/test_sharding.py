"""Data parallelism on 8 forced host devices (in a subprocess: the flag must precede jax)."""
import json

import pytest


SCRIPT = r'''
import json, jax, jax.numpy as jnp, numpy as np
from mmp_jax import sharding
from mmp_jax.models.mmp_rnn import MMPRNN
from tests.conftest import TINY_MMPRNN, init_variables
mesh = sharding.make_mesh()
model = MMPRNN(**TINY_MMPRNN)
frames = np.random.default_rng(0).uniform(0, 1, (8, 5, 16, 16, 3)).astype(np.float32)
variables = init_variables(model, 0, frames[:1])
loss = lambda v, x: jnp.mean(model.apply(v, x) ** 2)
grad = jax.jit(jax.grad(loss))
single = grad(variables, jnp.asarray(frames))
batch = sharding.shard_batch({'frames': frames}, mesh)
sharded = jax.jit(jax.grad(loss), in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                  out_shardings=sharding.replicated(mesh))(sharding.replicate(variables, mesh), batch['frames'])
diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(single),
                                                       jax.tree_util.tree_leaves(sharded)))
try:
    sharding.check_global_batch(12, mesh)
    error = ''
except ValueError as e:
    error = str(e)
print(json.dumps({'devices': mesh.size, 'shards': len(batch['frames'].addressable_shards),
                  'diff': diff, 'error': error, 'per_host': sharding.check_global_batch(16, mesh)}))
'''


@pytest.mark.slow
def test_eight_devices_give_the_single_device_gradient(cpu_devices_run):
    result = cpu_devices_run(SCRIPT, 8)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['devices'] == 8 and out['shards'] == 8 and out['per_host'] == 16
    assert out['diff'] <= 1e-5
    assert 'global batch 12 does not divide over 8 devices' in out['error']
