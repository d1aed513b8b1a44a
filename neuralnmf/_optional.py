"""The optional dependencies, each behind an extra of the distribution: matplotlib (``plot``: neuralnmf.plot and the
CLI's figures), tqdm (``progress``: progress bars), tensorly (``tensor``: its CPTensor class; a stand-in is used
without it) and scikit-learn (``text``: folders of text). The library runs without them; what needs one says which
extra installs it. Imports nothing from the package."""

from __future__ import annotations

import importlib

__all__ = ["require", "available", "install_hint"]

DISTRIBUTION = "torch-neuralnmf"


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, extra: str, feature: str):
    """Import ``module``, or raise ImportError saying that ``feature`` needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(f"{feature} needs {top}, which is not installed: {install_hint(extra)} "
                          f"(or pip install {top})") from exc


def available(module: str) -> bool:
    """Whether ``module`` can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
