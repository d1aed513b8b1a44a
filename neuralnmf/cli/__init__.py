"""Command line: `python -m neuralnmf demo` trains a hierarchical topic model on a generated corpus in seconds;
`nnls-demo` shows the exact, differentiable NNLS operator it is built on; `fit` turns your documents into a topic
hierarchy, and `transform` gives new documents their topic codes. `python -m neuralnmf COMMAND --help` explains
each command.

The package: ``parser`` (options and help), ``inputs`` (reading INPUT, labels, vocabulary), ``fit``, ``transform``,
``outputs`` (what fit writes), ``demos``; bad input is a :class:`CLIError`, printed as one line.
"""

from __future__ import annotations

import sys
import warnings

from .errors import CLIError, warn
from .parser import build_parser

__all__ = ["main", "build_parser", "CLIError"]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's warnings as the command's own: one line, ``warning: ...``, without a source line."""
    warn(str(message))
