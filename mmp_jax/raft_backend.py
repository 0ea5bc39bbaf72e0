"""RAFT as a flow backend of `mmp_jax.data.flow` (the signature `FlowBackend`).

Weights are the official checkpoints (princeton-vl/RAFT `models.zip`: `raft-things.pth` for
'large', as the original MMP ground truth uses, or `raft-small.pth`), read without running
code (`mmp_jax.torch_pickle`) and converted on load. Nothing is downloaded. A call's pairs,
both directions, run `batch` at a time (fewer where a call has fewer: a sliding window's one new
pair runs as a batch of 2), the last batch padded (one compiled program per batch size).
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from mmp_jax.data.flow import FlowBackend
from mmp_jax.convert import check_same_structure, convert_raft_state_dict
from mmp_jax.models.raft import RAFT, raft_flow
from mmp_jax.torch_pickle import load_state_dict

ITERATIONS = 20  # as the original's PrepareGTMMP notebook
BATCH = 4       # image pairs per RAFT call: 720p pairs take about 1 GB each on the accelerator


def raft_backend(checkpoint: str | pathlib.Path, size: str = 'large', iters: int = ITERATIONS,
                 batch: int = BATCH) -> FlowBackend:
    path = pathlib.Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: RAFT weights not found; get raft-things.pth (large) or '
                                f'raft-small.pth from princeton-vl/RAFT (models.zip) and pass its path')
    model = RAFT(size, iters)
    variables = convert_raft_state_dict(load_state_dict(path), str(path))
    probe = jnp.zeros((1, 128, 128, 3))
    check_same_structure(variables, jax.eval_shape(model.init, jax.random.key(0), probe, probe), str(path))
    flow_fn = jax.jit(lambda v, a, b: raft_flow(model, v, a, b))

    def flows(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.concatenate([frames[:-1], frames[1:]])   # forward pairs, then backward ones
        second = np.concatenate([frames[1:], frames[:-1]])
        size, out = min(batch, len(first)), []
        for start in range(0, len(first), size):
            count = min(size, len(first) - start)
            pad = ((0, size - count),) + ((0, 0),) * 3
            a, b = (jnp.asarray(np.pad(x[start:start + count], pad), jnp.float32) for x in (first, second))
            out.append(np.asarray(flow_fn(variables, a, b))[:count])
        out = np.concatenate(out)
        return out[:len(frames) - 1], out[len(frames) - 1:]
    return flows
