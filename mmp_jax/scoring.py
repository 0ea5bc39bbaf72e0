"""Scores of any method's output frames against sharp frames, by the original's test protocol
(the numbers `python -m mmp_jax.main --mode=eval` reports for our own outputs); the command
`mmp-score` (`mmp_jax.cli.score`) matches the folders it is given and prints `table`.

A sequence of T sharp frames is scored on frames 2..T-3, as the original's test and
`mmp_jax.evaluate` do; its outputs are either all T frames (the first and last two are then not
scored) or only those T-4. Frames are matched by their order (names sorted naturally) and read
as 8-bit RGB; PSNR and SSIM are `mmp_jax.metrics`'. Means are over all scored frames (each frame
counts once), and per sequence. A missing or mismatched sequence, frame count or frame size is a
SourceError naming it, raised before anything is scored.
"""
import dataclasses
import pathlib
from collections.abc import Callable

import numpy as np

from mmp_jax import metrics
from mmp_jax.data.decode_limits import DEFAULT_MAX_PIXELS
from mmp_jax.data.sources import SourceError, list_frames, read_frame
from mmp_jax.evaluate import scored_frames
from mmp_jax.models.mmp_rnn import MMPRNN

PAST, FUTURE = MMPRNN.past_frames, MMPRNN.future_frames  # the frames the protocol leaves out at each end


@dataclasses.dataclass(frozen=True)
class Sequence:
    """One sequence's frame files: `pairs` (output, sharp) of the scored frames, `length` T."""
    name: str
    pairs: list[tuple[pathlib.Path, pathlib.Path]]
    length: int


def match_sequences(outputs: pathlib.Path, sharp: pathlib.Path, sharp_subfolder: str = '') -> list[Sequence]:
    """The scored (output, sharp) frame pairs of every sequence; SourceError (one line) where the
    folders' sequences or frame counts do not match."""
    names = {root: sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else None
             for root in (outputs, sharp)}
    for root, found in names.items():
        if not found:
            raise SourceError(f'{root}: no sequence folders' if found is not None else f'{root}: not a folder')
    if names[outputs] != names[sharp]:
        missing = sorted(set(names[sharp]) - set(names[outputs]))
        extra = sorted(set(names[outputs]) - set(names[sharp]))
        raise SourceError(f'{outputs}: its sequences differ from {sharp}\'s: '
                          + '; '.join(filter(None, [missing and f'missing {", ".join(missing)}',
                                                     extra and f'not in {sharp}: {", ".join(extra)}'])))
    sequences = []
    for name in names[sharp]:
        targets, produced = list_frames(sharp / name / sharp_subfolder), list_frames(outputs / name)
        scored = scored_frames(len(targets), PAST, FUTURE)
        if not scored:
            raise SourceError(f'{sharp / name / sharp_subfolder}: {len(targets)} frames; the protocol scores frames '
                              f'{PAST}..T-{FUTURE + 1}, so it needs at least {PAST + FUTURE + 1}')
        if len(produced) == len(targets):
            produced = produced[scored.start:scored.stop]
        elif len(produced) != len(scored):
            raise SourceError(f'{outputs / name}: {len(produced)} frames, but {sharp / name / sharp_subfolder} has '
                              f'{len(targets)}: give all {len(targets)} outputs or the {len(scored)} scored ones '
                              f'(frames {scored.start}..{scored.stop - 1})')
        sequences.append(Sequence(name, list(zip(produced, targets[scored.start:scored.stop])), len(targets)))
    return sequences


def _frame_pair(output: pathlib.Path, target: pathlib.Path, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 RGB frames `[H, W, 3]` of a pair; SourceError where their sizes differ, or
    one is over `max_pixels`."""
    out, sharp = read_frame(output, max_pixels), read_frame(target, max_pixels)
    if out.shape != sharp.shape:
        raise SourceError(f'{output}: {out.shape[1]}x{out.shape[0]}, but {target} is {sharp.shape[1]}x{sharp.shape[0]}')
    return out, sharp


def lpips_distance() -> Callable[[np.ndarray, np.ndarray], float] | None:
    """LPIPS (AlexNet, the lpips package's default) of two uint8 RGB frames, or None where the
    package is not installed."""
    try:
        import lpips  # pylint: disable=import-outside-toplevel
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    network = lpips.LPIPS(net='alex', verbose=False)
    to_tensor = lambda frame: torch.from_numpy(frame.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    return lambda out, sharp: float(network(to_tensor(out), to_tensor(sharp)).item())


def score(sequences: list[Sequence], lpips: Callable | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """The scores of matched sequences: means over all frames and per sequence."""
    keys = ('psnr', 'ssim') + (('lpips',) if lpips else ())
    per_sequence, rows = {}, []
    for seq in sequences:
        values = []
        for output, target in seq.pairs:
            out, sharp = _frame_pair(output, target, max_pixels)
            values.append([metrics.psnr(out, sharp), metrics.ssim(out, sharp)] + ([lpips(out, sharp)] if lpips else []))
        rows.extend(values)
        per_sequence[seq.name] = {'frames': f'{PAST}..{seq.length - FUTURE - 1}', 'count': len(values),
                                  **dict(zip(keys, np.mean(values, axis=0).tolist()))}
    return {'scored_frames': f'frames {PAST}..T-{FUTURE + 1} of each T-frame sequence (the original test\'s)',
            'count': len(rows), **dict(zip(keys, np.mean(rows, axis=0).tolist())), 'sequences': per_sequence}


def finite_or_null(value):
    """`value` (a report: dicts, lists, numbers, strings) with every float that is not finite as None:
    JSON has no infinity."""
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_null(item) for item in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def table(report: dict) -> str:
    """The report as a text table: a row per sequence, then the mean over all frames."""
    keys = [key for key in ('psnr', 'ssim', 'lpips') if key in report]
    width = max([len('sequence')] + [len(name) for name in report['sequences']])
    header = f'{"sequence":<{width}} {"frames":>8} ' + ' '.join(f'{key.upper():>8}' for key in keys)
    row = lambda name, frames, scores: (f'{name:<{width}} {frames:>8} '
                                        + ' '.join(f'{scores[key]:>8.4f}' for key in keys))
    lines = [header] + [row(name, seq['count'], seq) for name, seq in report['sequences'].items()]
    return '\n'.join(lines + [row('mean', report['count'], report)])
