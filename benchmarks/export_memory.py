"""Peak resident memory and speed of the stage-1 export (`tools.export_tfrecords`, the
notebook's sliding windows) on a short and a 4x longer sequence.

    python -m benchmarks.export_memory [--size 1280x720] [--frames 300,1200] [--blur-frames 11]

Writes one folder of synthetic frames (a textured image panning, `infer_memory.write_clip`)
as long as the longest run; each shorter run reads a folder of links to its first frames.
Each length is exported with DIS flow (`--source frames --blur-frames N --workers 1 --num-shards 1`: one
pool worker does all the work) in a fresh process, read with `infer_memory.process_peaks_mb`:
`worker_peak_rss_mb` is the pool worker's VmHWM (frames, flows, blur, encoding),
`parent_peak_rss_mb` the exporting process's (it only hands out the shard). Windows per second
are the export's own (its printed seconds: from the first shard handed out to the manifest;
not the interpreter start); `seconds` is the whole command. Streaming means the worker's peak
is the same for both lengths.
"""
import argparse
import pathlib
import re
import sys
import tempfile

from benchmarks.infer_memory import process_peaks_mb, write_clip
from benchmarks.report import report
from mmp_jax.data.build import sliding_window_count


def export_row(frames: pathlib.Path, count: int, blur_frames: int, out: pathlib.Path) -> dict:
    log = out.with_suffix('.log')
    with open(log, 'w') as stdout:
        peaks, seconds = process_peaks_mb(
            [sys.executable, '-m', 'tools.export_tfrecords', '--source', 'frames', '--input', str(frames),
             '--blur-frames', str(blur_frames), '--flow', 'dis', '--workers', '1', '--num-shards', '1',
             '--out', str(out), '--quiet'], descendants=True, poll_seconds=0.1, stdout=stdout)
    summary = log.read_text()
    written, export_seconds = re.search(r'(\d+) frames, .* ([\d.]+) s', summary).groups()
    windows = sliding_window_count(count, blur_frames)
    if int(written) != windows:
        raise SystemExit(f'{out}: {written} records, the notebook makes {windows}')
    parent, *children = peaks.values()
    workers = [c['peak_rss_mb'] for c in children if '--multiprocessing-fork' in c['command']]
    return {'frames': count, 'windows': windows, 'worker_peak_rss_mb': max(workers),
            'parent_peak_rss_mb': parent['peak_rss_mb'], 'windows_per_s': windows / float(export_seconds),
            'export_seconds': float(export_seconds), 'seconds': seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', default='1280x720')
    parser.add_argument('--frames', default='300,1200')
    parser.add_argument('--blur-frames', type=int, default=11, help='N of the windows (most GOPRO sequences: 11)')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    counts = [int(v) for v in args.frames.split(',')]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        write_clip(tmp / 'clip', max(counts), width, height)
        files = sorted((tmp / 'clip').iterdir())
        for count in counts:
            folder = tmp / f'clip{count}'
            folder.mkdir()
            for path in files[:count]:
                (folder / path.name).symlink_to(path)
            rows.append(export_row(folder, count, args.blur_frames, tmp / f'out{count}'))
    for row in rows:
        row['worker_vs_first'] = row['worker_peak_rss_mb'] / rows[0]['worker_peak_rss_mb']
    report('export_memory', rows, args.json, size=args.size, blur_frames=args.blur_frames, flow='dis')


if __name__ == '__main__':
    main()
