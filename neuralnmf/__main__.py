"""`python -m neuralnmf ...`: the command line (neuralnmf/cli/)."""

from .cli import main

raise SystemExit(main())
