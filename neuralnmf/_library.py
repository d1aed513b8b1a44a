"""The ``neuralnmf`` op library as the dispatcher sees it: schemas when the compiled extension is missing, and the
pure-torch reference kernels for every device without a compiled kernel (CUDA tensors in a CPU-only build, or any
device when ``neuralnmf._C`` did not load), with a warning that names the op, the device and the reason.

The three ops (schemas in csrc/nnls.cpp, kernels in csrc/cpu and csrc/cuda):

* ``neuralnmf::nnls(X, A, init, max_iter) -> (S, info)``: the exact forward solve.
* ``neuralnmf::nnls_rhs(AtX, A, init, max_iter) -> (S, info)``: the same solve from products AtX = A^T X that
  the caller formed (sparse X uses it: the products are sparse-dense, and X is never densified).
* ``neuralnmf::support_solve(grad, A, S) -> V``: V[P, j] = (A_P^T A_P)^{-1} grad[P, j] on each column's support.

Importing this module registers everything; :mod:`neuralnmf._fake` and :mod:`neuralnmf._autograd` complete the
registration for torch.compile and for builds without the compiled backward.
"""

from __future__ import annotations

import warnings

import torch

from . import _extension, _reference

__all__ = ["NNLS_SCHEMA", "NNLS_RHS_SCHEMA", "SUPPORT_SOLVE_SCHEMA"]

NNLS_SCHEMA = "nnls(Tensor X, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)"
NNLS_RHS_SCHEMA = "nnls_rhs(Tensor AtX, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)"
SUPPORT_SOLVE_SCHEMA = "support_solve(Tensor grad, Tensor A, Tensor S) -> Tensor"

_LIBS: list[torch.library.Library] = []  # keep Library objects alive: dropping them unregisters
if not _extension.HAS_C:
    _def = torch.library.Library("neuralnmf", "DEF")
    for _schema in (NNLS_SCHEMA, NNLS_RHS_SCHEMA, SUPPORT_SOLVE_SCHEMA):
        _def.define(_schema)
    _LIBS.append(_def)

_warned: set = set()


def _warn_reference(op: str, device_type: str) -> None:
    """Once per device (per op and device when the extension loaded): which op runs where, and why."""
    key = (device_type, op) if _extension.HAS_C else device_type
    if key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"neuralnmf: running neuralnmf::{op} on {device_type} with the slow pure-torch reference "
            f"implementation, because {_extension.missing_kernel_reason(op, device_type)}.",
            RuntimeWarning,
            stacklevel=4,
        )


def _nnls_reference_kernel(X, A, init=None, max_iter=0):
    _warn_reference("nnls", X.device.type)
    return _reference.nnls_reference(X, A, init, max_iter)


def _nnls_rhs_reference_kernel(AtX, A, init=None, max_iter=0):
    _warn_reference("nnls_rhs", AtX.device.type)
    return _reference.nnls_rhs_reference(AtX, A, init, max_iter)


def _support_solve_reference_kernel(grad, A, S):
    _warn_reference("support_solve", S.device.type)
    return _reference.support_solve_reference(grad, A, S)


_REFERENCE_KERNELS = {
    "nnls": _nnls_reference_kernel,
    "nnls_rhs": _nnls_rhs_reference_kernel,
    "support_solve": _support_solve_reference_kernel,
}
_impl = torch.library.Library("neuralnmf", "IMPL")
_LIBS.append(_impl)
for _key in ("CPU", "CUDA"):
    for _name, _kernel in _REFERENCE_KERNELS.items():
        if not _extension.has_kernel(_name, _key):
            _impl.impl(_name, _kernel, _key)


