"""argparse types for numeric flags: a value out of range (or NaN, infinite, not a number) is
refused when the command line is read, before any work, by argparse's one-line error naming
the flag (exit status 2):

    parser.add_argument('--fps', type=number(float, above=0))
    # error: argument --fps: nan: must be a finite number above 0
"""
import argparse
import math
from collections.abc import Callable

from mmp_jax.data.decode_limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_CEILING


def number(kind: type = float, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None) -> Callable[[str], float | int]:
    """An argparse `type` reading `kind` (int or float) that is finite and `> above`, `>= at_least`,
    `<= at_most` (each where given)."""
    bounds = [f'above {above}' if above is not None else None, f'at least {at_least}' if at_least is not None else None,
              f'at most {at_most}' if at_most is not None else None]
    wanted = f'a finite {"integer" if kind is int else "number"} ' + ' and '.join(filter(None, bounds))

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text}: must be {wanted.strip()}') from None
        if (not math.isfinite(value) or (above is not None and value <= above)
                or (at_least is not None and value < at_least) or (at_most is not None and value > at_most)):
            raise argparse.ArgumentTypeError(f'{text}: must be {wanted.strip()}')
        return value
    return parse


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """`--max-pixels`: the largest frame (width x height, from the file's header) that is decoded
    (see `mmp_jax.data.decode_limits`)."""
    parser.add_argument('--max-pixels', type=number(int, at_least=1, at_most=MAX_PIXELS_CEILING),
                        default=DEFAULT_MAX_PIXELS, metavar='N',
                        help=f'refuse frames of more than N pixels, before decoding them (default {DEFAULT_MAX_PIXELS:_}; '
                             f'at most {MAX_PIXELS_CEILING:_})')


def one_line(message: object) -> str:
    """`message` as one line of text for stderr: a newline, a carriage return or another control
    character (in a file name, say) written as its escape (`\\n`), so that an error naming a path
    stays one line and cannot move a terminal's cursor."""
    return ''.join(char if char.isprintable() else repr(char)[1:-1] for char in str(message))
