"""What the command line tells the user: its one kind of error (bad input, printed as one line on stderr with exit
status 1) and its warnings (one line on stderr each, the command goes on)."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["CLIError", "user_errors", "warn"]


def warn(message: str) -> None:
    """One line ``warning: message`` on stderr."""
    print(f"warning: {message}", file=sys.stderr)


class CLIError(Exception):
    """Bad input on the command line: printed as one line on stderr, exit status 1, no traceback."""


@contextlib.contextmanager
def user_errors(prefix: str = ""):
    """Turn the library's errors about the user's files and arguments (ValueError for a wrong value, TypeError for a
    wrong type, a missing file or optional dependency) into a :class:`CLIError` (one line)."""
    try:
        yield
    except CLIError:
        raise
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CLIError(f"{prefix}{message}") from e
