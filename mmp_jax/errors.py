"""The one user-facing error: a problem with what the user gave (a path, a file's contents, a
flag or config value), whose message names it and says what is wrong, and often what to do.

Every command (`mmp_jax.cli`, `mmp_jax.main`) turns a `UserError`, and an `OSError` (a
permission, a full disk), into one line `command: message` on stderr and exit status 2
(`run_command`); any other exception is a bug and keeps its traceback. The errors of each
layer (`SourceError`, `CheckpointError`, `OutputError`, ...) are `UserError`s. A `UserError`
is a `ValueError`, so code that catches a bad value keeps catching it.
"""
import sys
from collections.abc import Callable


class UserError(ValueError):
    """A problem with the user's input, files or settings; the message names the path (or the
    flag or config field) and the problem."""


def one_line(message: object) -> str:
    """`message` as one line of text for stderr: a newline, a carriage return or another control
    character (in a file name, say) written as its escape (`\\n`), so that an error naming a path
    stays one line and cannot move a terminal's cursor."""
    return ''.join(char if char.isprintable() else repr(char)[1:-1] for char in str(message))


def run_command(command: str, body: Callable[[], int], path: str | None = None) -> int:
    """`body()`'s exit status, or 2 after one line `command: message` on stderr (`one_line`) for
    a `UserError`, or an `OSError` (its file name, else `path` where given, and its reason)."""
    try:
        return body()
    except UserError as error:
        print(one_line(f'{command}: {error}'), file=sys.stderr)
    except OSError as error:
        place = error.filename or path
        print(one_line(f'{command}: {f"{place}: " if place else ""}{error.strerror or error}'), file=sys.stderr)
    return 2
