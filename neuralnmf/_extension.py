"""Loads the compiled operators (neuralnmf._C) and says which devices have a compiled kernel."""

from __future__ import annotations

import torch

REBUILD = "rebuild it against the installed torch: pip install --no-build-isolation -e ."


def build_mismatch(built_torch: str, built_cuda: str, torch_version: str, torch_cuda: str | None) -> str | None:
    """Why an extension built for torch ``built_torch`` (CUDA ``built_cuda``, "" for a CPU build) cannot serve
    torch ``torch_version`` (CUDA ``torch_cuda``), or None when it can. torch's C++ ABI holds within a minor
    version only, and CUDA kernels need the CUDA major version they were compiled for (as torchvision checks)."""
    def minor(v: str) -> tuple:
        return tuple(v.split("+")[0].split(".")[:2])

    if built_torch and minor(built_torch) != minor(torch_version):
        return f"neuralnmf._C was built for torch {built_torch}, but torch {torch_version} is installed; {REBUILD}"
    if built_cuda and torch_cuda and built_cuda.split(".")[0] != torch_cuda.split(".")[0]:
        return (f"neuralnmf._C was built with CUDA {built_cuda}, but the installed torch uses CUDA {torch_cuda}; "
                f"{REBUILD}")
    return None


try:
    from . import _C  # noqa: F401  (importing it registers the neuralnmf:: ops with the dispatcher)

    HAS_C = True
    IMPORT_ERROR: str | None = None
except ImportError as exc:  # not built, or built against another torch
    HAS_C = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

if HAS_C:  # builds older than this check carry no versions
    _mismatch = build_mismatch(getattr(_C, "torch_version", ""), getattr(_C, "cuda_version", ""), torch.__version__,
                               torch.version.cuda)
    if _mismatch is not None:
        raise RuntimeError(_mismatch)

OPS = ("nnls", "nnls_rhs", "support_solve")


def has_kernel(op: str, dispatch_key: str) -> bool:
    """True when the compiled extension registered a kernel for neuralnmf::<op> under `dispatch_key`."""
    return HAS_C and torch._C._dispatch_has_kernel_for_dispatch_key(f"neuralnmf::{op}", dispatch_key)


def built_with_cuda() -> bool:
    """Whether the compiled extension holds CUDA kernels (it was built with nvcc against a CUDA torch)."""
    return any(has_kernel(op, "CUDA") for op in OPS)


def missing_kernel_reason(op: str, device_type: str) -> str:
    """Why neuralnmf::<op> on a `device_type` tensor runs on the pure-torch reference instead of a compiled kernel."""
    return kernel_reason(op, device_type, HAS_C, IMPORT_ERROR, built_with_cuda(), torch.version.cuda)


def kernel_reason(op: str, device_type: str, has_c: bool, import_error: str | None, cuda_build: bool,
                  torch_cuda: str | None) -> str:
    """The sentence of :func:`missing_kernel_reason`, from the facts it depends on (testable without a GPU)."""
    if not has_c:
        return (
            f"the compiled extension neuralnmf._C could not be imported ({import_error}); "
            "reinstall with `pip install --no-build-isolation -e .`"
        )
    if device_type == "cuda":
        if cuda_build:
            return (f"this build of neuralnmf has CUDA kernels but none for neuralnmf::{op} (an older build? "
                    "reinstall with `pip install --no-build-isolation -e .`)")
        if torch_cuda is None:
            return "neuralnmf was built without CUDA kernels: the installed torch has no CUDA"
        return ("neuralnmf was built without CUDA kernels (no nvcc or CUDA_HOME at build time, no GPU visible "
                "without FORCE_CUDA=1, or FORCE_ONLY_CPU=1); rebuild as the README's 'CUDA' section says")
    return f"neuralnmf has no compiled kernel of neuralnmf::{op} for {device_type} tensors"
