"""`--help` of the absl programs (`mmp-train`, `mmp-stats`) as of a program run as a file, and
their flag errors as one line.

absl's `--help` prints the docstring of `__main__` and the flags defined by the module that
`sys.argv[0]` names: for a console script (`mmp-train`) or a checkout's `python -m tools.<name>`,
both are those of a wrapper that defines nothing, whose help would list no flags."""
import sys
from typing import NoReturn

from absl import flags

from mmp_jax.errors import one_line


def describe_in_help(module_name: str) -> None:
    """`--help` shows the docstring and the flags of the module `module_name` (call before
    `app.run`)."""
    module = sys.modules[module_name]
    sys.modules['__main__'].__doc__ = module.__doc__
    for flag in flags.FLAGS.get_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def fail(program: str, problem: str) -> NoReturn:
    """The one-line error of a command line: `<program>: error: <problem>`, exit status 2."""
    print(one_line(f'{program}: error: {problem}'), file=sys.stderr)
    sys.exit(2)


def last_line(error: Exception) -> str:
    """The last line of a multi-line message (config_flags' ends with the cause and the path)."""
    return str(error).strip().splitlines()[-1].strip()


def parse_flags(program: str, argv: list[str]) -> list[str]:
    """absl's flag parsing (an `app.run` flags_parser), a flag error as one line (`fail`; absl
    prints two and exits 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(program, f'{error.__class__.__name__}: {last_line(error)}')
