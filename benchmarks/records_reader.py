"""Training batches from records larger than a memory cap: frames read from the files by byte
offset (`load_windows(..., in_memory=False)`) against frames held in memory (today's reader).

    python -m benchmarks.records_reader [--gigabytes 1.5] [--cap-mb 400] [--frame 512] \\
        [--batch 4] [--length 5] [--patch 128] [--batches 20]

Writes records of random frames (noise does not compress: about 2.1 MB per 512 x 512 frame,
blurry + sharp + 16-bit MMP PNGs; a few distinct frames, many records) to a temporary folder,
then runs each reader in a child process of its own (numpy reader, seed 0, from step 0): the
index or load time, batches per second over --batches batches, and the child's peak RSS
(VmHWM, `infer_memory.peak_rss_mb`), against the stated cap. The files were just written, so
they are read from the page cache: the speed of a local disk on a second pass, not of a cold one.
"""
import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

from mmp_jax.data import input_pipeline, tfrecords

DISTINCT = 4  # distinct frames; the records repeat them


def write_records(folder: pathlib.Path, gigabytes: float, frame: int, frames_per_sequence: int = 24) -> int:
    """Shards of random frames of `frame` x `frame` pixels, about `gigabytes` in all, one
    sequence per shard; returns the bytes written."""
    import tensorflow as tf  # noqa: PLC0415 (only the writer needs it)
    rng = np.random.default_rng(0)
    pngs = [(tfrecords.encode_png(rng.integers(0, 256, (frame, frame, 3), dtype=np.uint8)),
             tfrecords.encode_png(rng.integers(0, 256, (frame, frame, 3), dtype=np.uint8)),
             tfrecords.mmp_to_png(rng.uniform(0, 1, (frame, frame, 1)))) for _ in range(DISTINCT)]
    per_record = sum(len(png) for png in pngs[0])
    sequences = max(1, round(gigabytes * 1e9 / per_record / frames_per_sequence))
    as_bytes = lambda value: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    as_int = lambda value: tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    shards = {}
    for number in range(sequences):
        records = []
        for index in range(frames_per_sequence):
            blurry, sharp, mmp = pngs[(number + index) % DISTINCT]
            feature = {'source': as_bytes(b'synthetic'), 'sequence': as_bytes(f's{number}'.encode()),
                       'index': as_int(index), 'window': as_int(9), 'blurry': as_bytes(blurry),
                       'sharp': as_bytes(sharp), 'mmp': as_bytes(mmp)}
            records.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        shards[str(number)] = tfrecords.write_shard(folder / tfrecords.shard_name('noise', number, sequences), records)
    tfrecords.save_manifest(folder, {'shards': shards})
    return sum(shard['bytes'] for shard in shards.values())


def child(args) -> None:
    """One reader: its times to `args.out` (JSON)."""
    start = time.perf_counter()
    windows = input_pipeline.load_windows(input_pipeline.record_files(args.records), args.length,
                                          in_memory=args.child == 'memory')
    loaded = time.perf_counter()
    batches = input_pipeline.numpy_train_batches(windows, args.patch, args.batch, seed=0)
    digest = [float(np.sum(next(batches)['blurry'], dtype=np.float64)) for _ in range(args.batches)]
    seconds = time.perf_counter() - loaded
    pathlib.Path(args.out).write_text(json.dumps({'load_s': loaded - start, 'batches_per_s': args.batches / seconds,
                                                  'digest': digest}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gigabytes', type=float, default=1.5, help='records to write')
    parser.add_argument('--cap-mb', type=float, default=400, help='the memory cap the disk reader must stay under')
    parser.add_argument('--frame', type=int, default=512, help='frame side, pixels')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--length', type=int, default=5)
    parser.add_argument('--patch', type=int, default=128)
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    parser.add_argument('--child', choices=['memory', 'disk'], help=argparse.SUPPRESS)
    parser.add_argument('--records', help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    # not at the top: they import jax, whose memory the readers' children must not carry
    from benchmarks.infer_memory import peak_rss_mb  # noqa: PLC0415
    from benchmarks.report import report  # noqa: PLC0415
    with tempfile.TemporaryDirectory() as tmp:
        records = pathlib.Path(tmp) / 'records'
        size_mb = write_records(records, args.gigabytes, args.frame) / 1e6
        rows, digests = [], []
        for mode in ('memory', 'disk'):
            out = pathlib.Path(tmp) / f'{mode}.json'
            argv = [sys.executable, '-m', 'benchmarks.records_reader', '--child', mode, '--records', str(records),
                    '--out', str(out), '--batch', str(args.batch), '--length', str(args.length),
                    '--patch', str(args.patch), '--batches', str(args.batches)]
            peak, _ = peak_rss_mb(argv)
            result = json.loads(out.read_text())
            digests.append(result.pop('digest'))
            rows.append({'reader': f'frames {"held in memory" if mode == "memory" else "read by offset"}',
                         'records_mb': size_mb, **result, 'peak_rss_mb': peak, 'under_cap': peak < args.cap_mb})
    if digests[0] != digests[1]:
        raise SystemExit('the two readers gave different batches')
    report('records_reader', rows, args.json, cap_mb=args.cap_mb, frame=args.frame, batch=args.batch,
           length=args.length, patch=args.patch, batches=args.batches)


if __name__ == '__main__':
    main()
