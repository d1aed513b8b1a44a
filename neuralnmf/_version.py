"""The version of neuralnmf, written once: pyproject.toml reads it (``[tool.setuptools.dynamic]``), ``neuralnmf``
re-exports it, ``python -m neuralnmf --version`` prints it. It imports nothing, so every layer may read it."""

__version__ = "0.1.0"
