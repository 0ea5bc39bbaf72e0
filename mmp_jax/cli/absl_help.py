"""`--help` of the absl programs (`mmp-train`, `mmp-stats`) as of a program run as a file.

absl's `--help` prints the docstring of `__main__` and the flags defined by the module that
`sys.argv[0]` names: for a console script (`mmp-train`) or a checkout's `python -m tools.<name>`,
both are those of a wrapper that defines nothing, so it listed no flags."""
import sys

from absl import flags


def describe_in_help(module_name: str) -> None:
    """`--help` shows the docstring and the flags of the module `module_name` (call before
    `app.run`)."""
    module = sys.modules[module_name]
    sys.modules['__main__'].__doc__ = module.__doc__
    for flag in flags.FLAGS.get_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
