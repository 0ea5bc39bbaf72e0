"""Parameters and GMACs per frame of MMP-Net or an MMP-RNN variant, counted as the paper does.

`mmp-stats` once installed (the same arguments), or from a checkout:
    python -m tools.model_stats --variant A9B10C18F8 --height 720 --width 1280 [--json]
    python -m tools.model_stats --paper          # the table of the paper's variants

MACs are an exact count from the layer shapes, the way thop counts the original PyTorch
modules (see `mmp_jax.models.macs`). With --json the last line is
`{"params": int, "gmacs": float, ...}`.
"""
import json

from absl import app, flags

from mmp_jax.errors import run_command
from mmp_jax.cli.absl_help import describe_in_help, parse_flags
from mmp_jax.models.macs import network_stats

# Table 2 / 3 and Sec. 3.1 of the paper: (params in millions or None, GMACs per 720p frame).
PAPER_FIGURES = {
    'mmpnet': (0.85, 38.81),
    'A3B4C16F5': (1.97, 136.42),
    'A7B8C16F8': (3.05, 204.19),
    'A8B9C18F8': (None, 247.41),
    'A9B10C18F8': (4.05, 264.52),
}

FLAGS = flags.FLAGS
MAX_SIDE = 16384  # 16K; the counts grow in proportion beyond (bilinear upsampling's matrices grow as its square)
flags.DEFINE_string('variant', 'A9B10C18F8', "'mmpnet' or A<n_a>B<n_b>C<n_c>F<frames>")
flags.DEFINE_integer('height', 720, 'frame height (a multiple of 4, 16 .. 16384)', lower_bound=16, upper_bound=MAX_SIDE)
flags.DEFINE_integer('width', 1280, 'frame width (a multiple of 4, 16 .. 16384)', lower_bound=16, upper_bound=MAX_SIDE)
flags.DEFINE_bool('json', False, 'print one JSON object as the last line')
flags.DEFINE_bool('paper', False, "print the paper's variants next to the paper's figures")
flags.DEFINE_bool('mmam', True, 'motion magnitude attentive module (and the prior) on')
flags.DEFINE_bool('fusion_attention', True, 'channel attention in the fusion')
flags.DEFINE_bool('skip', True, 'the global 9x9 skip')


def _row(name: str, stats: dict) -> str:
    paper_params, paper_gmacs = PAPER_FIGURES.get(name, (None, None))
    params = f'{stats["params"] / 1e6:.3f}M'
    ratio = lambda ours, theirs: '' if theirs is None else f'{100 * (ours / theirs - 1):+.1f}%'
    return (f'{name:<12} {params:>8} {stats["gmacs"]:>9.2f} | '
            f'{paper_params or "-":>6} {ratio(stats["params"] / 1e6, paper_params):>7} '
            f'{paper_gmacs:>8} {ratio(stats["gmacs"], paper_gmacs):>7}')


def main(argv):
    del argv
    overrides = {'use_mmam': FLAGS.mmam, 'fusion_attention': FLAGS.fusion_attention,
                 'do_skip': FLAGS.skip}
    return run_command('model_stats', lambda: _report(overrides))


def _report(overrides: dict) -> int:
    if FLAGS.paper:
        print(f'per {FLAGS.width}x{FLAGS.height} frame   ours            | paper  (delta)')
        print(f'{"model":<12} {"params":>8} {"GMACs":>9} | {"params":>6} {"":>7} {"GMACs":>8}')
        for name in PAPER_FIGURES:
            print(_row(name, network_stats(name, FLAGS.height, FLAGS.width)))
        return 0
    extra = {} if FLAGS.variant.lower() == 'mmpnet' else overrides
    stats = network_stats(FLAGS.variant, FLAGS.height, FLAGS.width, **extra)
    print(f'{FLAGS.variant}: {stats["params"]:,} parameters, {stats["gmacs"]:.2f} GMACs per '
          f'{FLAGS.width}x{FLAGS.height} frame')
    if FLAGS.json:
        print(json.dumps({'variant': FLAGS.variant, 'height': FLAGS.height, 'width': FLAGS.width,
                          'params': stats['params'], 'gmacs': stats['gmacs'], **extra}))
    return 0


def console_main():
    """The console script: absl parses the command line (a flag error one line, exit status 2)
    and exits with `main`'s status."""
    describe_in_help(__name__)
    app.run(main, flags_parser=lambda argv: parse_flags('model_stats', argv))


if __name__ == '__main__':
    console_main()
