"""XLA's memory analysis of the compiled stage-2 training step on one device (compile only, nothing runs).

    python -m benchmarks.train_step_memory [--variant A9B10C18F8] [--batch 8x10x256x256] \\
        [--dtypes float32,bfloat16] [--remats none,full] [--unrolls true,false] [--program accelerator|cpu]

The project's step (`mmp_jax.train_step`: the paper's loss, Adam with cosine annealing, MMP-Net
frozen, the old state donated), jitted for one device and lowered on abstract shapes, so the
sizes are what the compiled program would allocate on this backend (CPU here; an accelerator's
compiler may schedule differently). `--program accelerator` (the default) compiles the program a
GPU or TPU gets (`formulations.using(platform="tpu")`): the CPU's formulations (Winograd, parts
never concatenated) off, XLA's convolutions of concatenated maps as there; `--program cpu` the
one this CPU runs. Per dtype, remat and unroll setting (`MMPRNN.dtype`,
`MMPRNN.remat`, `MMPRNN.scan_unroll`; remat needs scan_unroll False):
the temporary, argument, output, aliased (donated) and generated-code bytes, the peak
(arguments + outputs + temporaries - aliased, XLA's own total where it gives one) and the compile
seconds.
"""
import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks.report import report
from mmp_jax import sharding, stages, train_step
from mmp_jax.models import formulations
from mmp_jax.models.mmp_rnn import MMPRNN
from mmp_jax.models.variants import model_from_variant

GB = 1e9


def abstract_state(model: MMPRNN, optimizer) -> train_step.TrainState:
    """The stage-2 train state of `model` as shapes (`jax.ShapeDtypeStruct` leaves)."""
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, model.window, 16, 16, 3)))
    return jax.eval_shape(lambda v: stages.get('mmprnn').create_state(v, optimizer), variables)


def compiled_step(model: MMPRNN, batch_shape: tuple[int, ...]):
    """The jitted stage-2 step of `model`, compiled for one device and a batch `[B, T, P, P, 3]`."""
    mesh = jax.sharding.Mesh(jax.devices()[:1], (sharding.DATA_AXIS,))
    optimizer = stages.get('mmprnn').make_optimizer(5e-4, 1000)
    step = train_step.jit_step(stages.get('mmprnn').make_step(model, optimizer),
                               sharding.replicated(mesh), sharding.batch_sharding(mesh))
    frames = jax.ShapeDtypeStruct(batch_shape, jnp.float32)
    batch = {'blurry': frames, 'sharp': frames, 'mmp': jax.ShapeDtypeStruct(batch_shape[:-1] + (1,), jnp.float32)}
    return step.lower(abstract_state(model, optimizer), batch).compile()


def memory_row(model: MMPRNN, batch_shape: tuple[int, ...]) -> dict:
    start = time.perf_counter()
    stats = compiled_step(model, batch_shape).memory_analysis()
    seconds = time.perf_counter() - start
    sizes = {name: getattr(stats, f'{name}_size_in_bytes') / GB
             for name in ('temp', 'argument', 'output', 'alias', 'generated_code')}
    peak = sizes['argument'] + sizes['output'] + sizes['temp'] - sizes['alias']
    xla_peak = getattr(stats, 'peak_memory_in_bytes', 0) / GB
    return {'dtype': model.dtype, 'remat': model.remat, 'scan_unroll': model.scan_unroll,
            **{f'{k}_gb': v for k, v in sizes.items()},
            'peak_gb': max(peak, xla_peak), 'compile_s': seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--batch', default='8x10x256x256', help='B x T x H x W')
    parser.add_argument('--dtypes', default='float32,bfloat16')
    parser.add_argument('--remats', default='none,full')
    parser.add_argument('--unrolls', default='true,false', help='scan_unroll settings')
    parser.add_argument('--program', choices=('accelerator', 'cpu'), default='accelerator',
                        help="the program a GPU or TPU compiles, or this CPU's own (see above)")
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    print(f'{jax.default_backend()}, {args.variant}, batch {args.batch}', flush=True)
    batch_shape = tuple(int(n) for n in args.batch.split('x')) + (3,)
    rows = []
    # 'accelerator': the program a TPU gets (XLA's convolutions, none of the CPU's formulations)
    with formulations.using(platform='tpu' if args.program == 'accelerator' else 'cpu'):
        for dtype in args.dtypes.split(','):
            for remat in args.remats.split(','):
                for unroll in args.unrolls.split(','):
                    if remat != 'none' and unroll == 'true':
                        continue  # refused: remat needs the recurrence as a loop
                    model = model_from_variant(args.variant, dtype=dtype, remat=remat, scan_unroll=unroll == 'true')
                    rows.append(memory_row(model, batch_shape))
                    print(rows[-1], flush=True)
    report('train_step_memory', rows, args.json, variant=args.variant, batch=args.batch,
           backend=jax.default_backend(), program=args.program, goal='peak_gb <= 40 in bfloat16 with remat')


if __name__ == '__main__':
    main()
