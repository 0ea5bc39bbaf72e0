"""Peak resident memory of `tools.deblur` on a short and a 10x longer clip.

    python -m benchmarks.infer_memory [--variant A3B4C16F5] [--size 640x480] [--frames 30,300] \
        [--chunks 1]

Writes a random-weight checkpoint of `--variant` and, per length, a folder of synthetic
frames (a textured image panning), then runs `python -m tools.deblur` on each in a fresh
process and reads that process's peak RSS (its VmHWM, `peak_rss_mb`), once per `--chunk-frames`
K of `--chunks`. Streaming means the ratio to the first length (`vs_first`, per K) stays near 1.
The variant only changes the speed, not how memory behaves with length.
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import report
from mmp_jax.checkpoint import save_model
from mmp_jax.models.variants import model_from_variant


def write_clip(folder: pathlib.Path, count: int, width: int, height: int) -> None:
    folder.mkdir()
    texture = np.random.default_rng(0).integers(0, 256, (height + count, width + count, 3), np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 3)
    for t in range(count):
        cv2.imwrite(str(folder / f'{t:06d}.png'), texture[t:t + height, t:t + width])


def _high_water_kib(pid: int) -> float | None:
    """VmHWM of a running process (KiB), None once it is gone."""
    try:
        status = pathlib.Path(f'/proc/{pid}/status').read_text()
    except OSError:
        return None
    return next((float(line.split()[1]) for line in status.splitlines() if line.startswith('VmHWM:')), None)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc/*/stat)."""
    children = []
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _command(pid: int) -> str:
    try:
        return pathlib.Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode().strip()
    except OSError:
        return ''


def process_peaks_mb(argv: list[str], descendants: bool = False, poll_seconds: float = 0.02,
                     stdout=subprocess.DEVNULL) -> tuple[dict[int, dict], float]:
    """Peak RSS of a child process (and, `descendants`, of its own children, found at each
    poll) as {pid: {'command', 'peak_rss_mb'}}, the child first, and the seconds it ran.
    The peaks are VmHWM, read until each process exits from /proc (Linux; VmHWM only grows,
    so the last reading is its peak to within the last poll). Not `wait4`'s ru_maxrss: Linux
    carries this process's own peak into the child across fork + exec, so a benchmark that has
    computed before would inflate it."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout)
    peaks = {process.pid: {'command': ' '.join(argv), 'peak_rss_mb': 0.0}}
    while process.poll() is None:
        pids = [process.pid] + (_children(process.pid) if descendants else [])
        for pid in pids:
            kib = _high_water_kib(pid)
            if kib is not None:
                entry = peaks.setdefault(pid, {'command': _command(pid), 'peak_rss_mb': 0.0})
                entry['peak_rss_mb'] = max(entry['peak_rss_mb'], kib / 1024)
        time.sleep(poll_seconds)
    if process.returncode != 0:
        raise SystemExit(f'{" ".join(argv)} failed')
    return peaks, time.perf_counter() - start


def peak_rss_mb(argv: list[str], poll_seconds: float = 0.02) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a child process (`process_peaks_mb`)."""
    peaks, seconds = process_peaks_mb(argv, poll_seconds=poll_seconds)
    return next(iter(peaks.values()))['peak_rss_mb'], seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', default='A3B4C16F5')
    parser.add_argument('--size', default='640x480')
    parser.add_argument('--frames', default='30,300')
    parser.add_argument('--chunks', default='1', help='values of --chunk-frames, each run on every length')
    parser.add_argument('--json', help='where to write the JSON (default benchmarks/results/)')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model = model_from_variant(args.variant)
        variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, model.window, 32, 32, 3)))
        save_model(tmp / 'ckpt', variables, {'variant': args.variant})
        counts = [int(v) for v in args.frames.split(',')]
        for count in counts:
            write_clip(tmp / f'in{count}', count, width, height)
        for chunk in (int(v) for v in args.chunks.split(',')):
            for count in counts:
                rss, seconds = peak_rss_mb([sys.executable, '-m', 'tools.deblur', '--quiet', '--overwrite',
                                            '--checkpoint', str(tmp / 'ckpt'), '--input', str(tmp / f'in{count}'),
                                            '--output', str(tmp / f'out{count}.mp4'), '--chunk-frames', str(chunk)])
                rows.append({'chunk_frames': chunk, 'frames': count, 'peak_rss_mb': rss, 'seconds': seconds})
    first = {}
    for row in rows:
        first.setdefault(row['chunk_frames'], row['peak_rss_mb'])
        row['vs_first'] = row['peak_rss_mb'] / first[row['chunk_frames']]
    report('infer_memory', rows, args.json, variant=args.variant, size=args.size)


if __name__ == '__main__':
    main()
