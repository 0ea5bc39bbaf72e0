"""argparse types for numeric flags: a value out of range (or NaN, infinite, not a number) is
refused when the command line is read, before any work, by argparse's one-line error naming
the flag (exit status 2):

    parser.add_argument('--fps', type=number(float, above=0))
    # error: argument --fps: nan: must be a finite number above 0
"""
import argparse
import math
from collections.abc import Callable


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
