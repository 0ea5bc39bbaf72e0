"""Benchmark output: a printed table and a JSON file with the machine it ran on."""
import json
import os
import pathlib
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import jax

RESULTS_DIR = pathlib.Path(__file__).parent / 'results'


def machine() -> dict:
    device = jax.devices()[0]
    return {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
            'cpu_count': os.cpu_count(), 'jax': jax.__version__,
            'device': f'{device.platform}:{getattr(device, "device_kind", "")}'}


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls of `run` (which must block until done), after
    one warm-up call (compilation, caches)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(name: str, rows: list[dict], json_path: str | None = None, markdown: bool = False,
           **meta) -> pathlib.Path:
    """Prints `rows` as a table (aligned columns, or a markdown table) and writes
    `{machine, meta, rows}` as JSON (atomically)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cell = lambda v: f'{v:.3f}' if isinstance(v, float) else str(v)
    if markdown:
        for line in (columns, ['---'] * len(columns), *([cell(r.get(c, '')) for c in columns] for r in rows)):
            print('| ' + ' | '.join(line) + ' |')
    else:
        widths = [max(len(c), *(len(cell(r.get(c, ''))) for r in rows)) for c in columns]
        print('  '.join(c.rjust(w) for c, w in zip(columns, widths)))
        for row in rows:
            print('  '.join(cell(row.get(c, '')).rjust(w) for c, w in zip(columns, widths)))
    path = write_json(name, {'benchmark': name, 'machine': machine(), **meta, 'rows': rows}, json_path)
    print(f'wrote {path}')
    return path


def write_json(name: str, data: dict, json_path: str | None = None) -> pathlib.Path:
    """Writes `data` to `json_path` (default `results/<name>.json`) atomically; returns the path."""
    path = pathlib.Path(json_path) if json_path else RESULTS_DIR / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)
    return path
