"""Mean absolute MMP error of a flow backend against the exact flow, per synthetic scene.

    python -m benchmarks.mmp_flow_error [--scenes 6] [--height 128] [--width 192] [--length 60] \\
        [--raft-checkpoint raft-things.pth]

Each scene is cut into blurry windows as the exporter cuts it (N from 7..13, seeded); for each
window the MMP from DIS flow (and from RAFT, given its weights) is compared with the MMP
from the scene's exact flow. The data issue's bound is 0.05.
"""
import argparse

import numpy as np

from benchmarks.report import report
from mmp_jax.data import flow
from mmp_jax.data.build import draw_windows
from mmp_jax.data.motion import window_mmp
from mmp_jax.data.synthetic import make_scene
from mmp_jax.raft_backend import raft_backend


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scenes', type=int, default=6)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=192)
    parser.add_argument('--length', type=int, default=60)
    parser.add_argument('--raft-checkpoint')
    parser.add_argument('--json')
    args = parser.parse_args()
    backends = {'dis': flow.dis_backend()}
    if args.raft_checkpoint:
        backends['raft'] = raft_backend(args.raft_checkpoint)
    rows = []
    for seed in range(args.scenes):
        scene = make_scene(seed, args.length, args.height, args.width)
        windows = draw_windows(args.length, np.random.default_rng([0, seed]))
        row = {'scene': seed, 'windows': len(windows)}
        exact = [window_mmp(scene.forward[s:s + n - 1], scene.backward[s:s + n - 1]) for s, n in windows]
        row['mean_exact_mmp'] = float(np.mean([m.mean() for m in exact]))
        for name, backend in backends.items():
            forward, backward = backend(scene.frames)
            errors = [np.abs(window_mmp(forward[s:s + n - 1], backward[s:s + n - 1]) - e).mean()
                      for (s, n), e in zip(windows, exact)]
            row[f'{name}_mae'] = float(np.mean(errors))
        rows.append(row)
    report('mmp_flow_error', rows, args.json, height=args.height, width=args.width, length=args.length)


if __name__ == '__main__':
    main()
