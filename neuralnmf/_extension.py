"""Loads the compiled operators (neuralnmf._C) and says which devices have a compiled kernel."""

from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (importing it registers the neuralnmf:: ops with the dispatcher)

    HAS_C = True
    IMPORT_ERROR: str | None = None
except ImportError as exc:  # not built, or built against another torch
    HAS_C = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


def has_kernel(op: str, dispatch_key: str) -> bool:
    """True when the compiled extension registered a kernel for neuralnmf::<op> under `dispatch_key`."""
    return HAS_C and torch._C._dispatch_has_kernel_for_dispatch_key(f"neuralnmf::{op}", dispatch_key)


def missing_kernel_reason(device_type: str) -> str:
    """Why a tensor on `device_type` runs on the pure-torch reference instead of a compiled kernel."""
    if not HAS_C:
        return (
            f"the compiled extension neuralnmf._C could not be imported ({IMPORT_ERROR}); "
            "reinstall with `pip install --no-build-isolation -e .`"
        )
    if device_type == "cuda":
        return "neuralnmf was built without CUDA (torch without CUDA, no nvcc, or FORCE_ONLY_CPU=1 at build time)"
    return f"neuralnmf has no compiled kernel for {device_type} tensors"
