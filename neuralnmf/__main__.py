"""`python -m neuralnmf ...`: see neuralnmf/cli.py."""

from .cli import main

raise SystemExit(main())
