"""Input pipeline throughput next to the time of one training step on the same batch.

    python -m benchmarks.input_pipeline [--records DIR] [--batch 8] [--length 10] [--patch 256] \\
        [--batches 20] [--variant A9B10C18F8] [--step-repeats 2]

Without --records, synthetic records large enough for 256 x 256 patches are exported first
(exact flow). Reports batches per second of the tf.data pipeline and of the numpy reader
(median of 3 timed runs of --batches batches, after one warm-up batch), and the seconds of
one jitted training step of --variant on the same batch (Charbonnier + 0.5 gradient loss,
Adam; median of --step-repeats after compilation). The pipeline keeps up when its batches per
second exceed 1 / step seconds on the accelerator the step runs on.
"""
import argparse
import os
import pathlib
import statistics
import tempfile
import time

import jax

from benchmarks.report import report
from benchmarks.train_step_speed import step_seconds
from mmp_jax.data import export, input_pipeline
from mmp_jax.models.variants import model_from_variant


def batches_per_second(iterator, count: int) -> float:
    next(iterator)  # warm-up: tracing, caches, first files
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            next(iterator)
        runs.append(count / (time.perf_counter() - start))
    return statistics.median(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--records', help='an exported data set (default: make a synthetic one)')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--length', type=int, default=10)
    parser.add_argument('--patch', type=int, default=256)
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--variant', default='A9B10C18F8')
    parser.add_argument('--step-repeats', type=int, default=2)
    parser.add_argument('--step-batch', type=int, help='samples of the batch in the timed step '
                        '(default: all; fewer where the whole batch does not fit in memory)')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = args.records
        if records is None:
            records = str(pathlib.Path(tmp) / 'records')
            side = args.patch + 32
            export.export(export.ExportSettings(source='synthetic', flow='exact', out=records, num_sequences=8,
                                                num_shards=8, height=side, width=side + 64, quiet=True,
                                                frames_per_sequence=14 * args.length, workers=os.cpu_count()))
        windows = input_pipeline.load_windows(input_pipeline.record_files(records), args.length)
        tf_iter = input_pipeline.train_dataset(windows, args.patch, args.batch, seed=0).as_numpy_iterator()
        tf_rate = batches_per_second(tf_iter, args.batches)
        np_rate = batches_per_second(input_pipeline.numpy_train_batches(windows, args.patch, args.batch, seed=0),
                                     args.batches)
        step_batch = args.step_batch or args.batch
        batch = {k: v[:step_batch] for k, v in next(tf_iter).items()}
        seconds = step_seconds(model_from_variant(args.variant), batch, args.step_repeats)
    shape = f'{args.batch}x{args.length}x{args.patch}x{args.patch}'
    step_shape = f'{step_batch}x{args.length}x{args.patch}x{args.patch}'
    rows = [{'what': 'tf.data batches/s', 'value': tf_rate, 'batch': shape},
            {'what': 'numpy reader batches/s', 'value': np_rate, 'batch': shape},
            {'what': f'{args.variant} train step s', 'value': seconds, 'batch': step_shape},
            {'what': f'{args.variant} step s per batch of {args.batch}', 'value': seconds * args.batch / step_batch,
             'batch': shape}]
    report('input_pipeline', rows, args.json, device=str(jax.devices()[0]))


if __name__ == '__main__':
    main()
