"""The NNLS operator q(X, A) = argmin_{S >= 0} ||X - A S||_F as a torch op.

Three ops live in the ``neuralnmf`` namespace (schemas in csrc/nnls.cpp, kernels in csrc/cpu and csrc/cuda):

* ``neuralnmf::nnls(X, A, init, max_iter) -> (S, info)``: the exact forward solve.
* ``neuralnmf::nnls_rhs(AtX, A, init, max_iter) -> (S, info)``: the same solve from products AtX = A^T X that
  the caller formed (sparse X uses it: the products are sparse-dense, and X is never densified).
* ``neuralnmf::support_solve(grad, A, S) -> V``: V[P, j] = (A_P^T A_P)^{-1} grad[P, j] on each column's support.

This module gives every op a fake kernel (for torch.compile), serves devices without a compiled kernel with the
pure-torch reference, and defines the public functions :func:`nnls` and :func:`nnls_from_products`. The
closed-form backward (for ``nnls``: dX = A V, dA = X V^T - A (S V^T + V S^T), two GEMMs, the N x M residual is
never formed; for ``nnls_rhs``: dAtX = V, dA = -A (S V^T + V S^T)) is compiled (csrc/autograd.cpp); the same
formulas are registered here when the extension is missing.

Errors and host synchronisation. The CPU kernel raises on NaN/Inf input itself (a check is cheap there). A
CUDA kernel cannot raise without stopping the host until the GPU is done, so the CUDA op reports instead:
columns whose right-hand side is NaN/Inf get ``info == -2`` and a NaN column of S (every column, when A is not
finite). :func:`nnls` turns that into ``ValueError`` and warns about ``info == -1`` with one host
synchronisation per call, while validation is on (the default; :func:`set_validation`, :func:`validation`).
Training loops that want zero host synchronisations turn it off.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch

from . import _extension, _reference, sparse_products

__all__ = ["nnls", "nnls_from_products", "NNLSConvergenceWarning", "set_validation", "validation",
           "validation_enabled"]

NNLS_SCHEMA = "nnls(Tensor X, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)"
NNLS_RHS_SCHEMA = "nnls_rhs(Tensor AtX, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)"
SUPPORT_SOLVE_SCHEMA = "support_solve(Tensor grad, Tensor A, Tensor S) -> Tensor"


class NNLSConvergenceWarning(RuntimeWarning):
    """Some columns hit the iteration bound: their S is feasible (>= 0) but not certified optimal."""


# --- validation of device results ---------------------------------------------------------------------------

INFO_NOT_CONVERGED = -1  # iteration bound hit: S feasible, not certified optimal
INFO_NON_FINITE = -2  # CUDA only: the column's right-hand side is NaN/Inf (X or A); its S is NaN

_validation = True


def set_validation(enabled: bool) -> None:
    """Turn the checks of :func:`nnls` results on non-CPU devices on or off (process-wide; default on).

    On: NaN/Inf in X or A raises ``ValueError`` and columns at the iteration bound warn, as on the CPU, at the
    cost of one host synchronisation per call. Off: no synchronisation at all; bad columns come back as NaN
    with ``info == -2`` (see ``return_info``). The CPU path always checks (it costs nothing there).
    """
    global _validation
    _validation = bool(enabled)


def validation_enabled() -> bool:
    """Whether :func:`nnls` checks results on non-CPU devices (see :func:`set_validation`)."""
    return _validation


@contextlib.contextmanager
def validation(enabled: bool):
    """Context manager form of :func:`set_validation`, restoring the previous setting on exit::

        with neuralnmf.ops.validation(False):  # a training loop without host synchronisations
            ...
    """
    previous = _validation
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def _warn_not_converged(failed: int, total: int, max_iter) -> None:
    warnings.warn(
        f"nnls: {failed} of {total} columns hit the iteration bound (max_iter={max_iter}); "
        "their S is feasible but not certified optimal",
        NNLSConvergenceWarning,
        stacklevel=3,
    )


def _check_device_result(A: torch.Tensor, info: torch.Tensor, max_iter, data: str = "X") -> None:
    """Raise / warn as the CPU kernel does, from a device op's info, with one host synchronisation. ``data``
    names the input the columns come from (X, or AtX for :func:`nnls_from_products`)."""
    a_bad = (~torch.isfinite(A)).any()
    x_bad = (info == INFO_NON_FINITE).any()
    failed = (info == INFO_NOT_CONVERGED).sum()
    a_bad, x_bad, failed = torch.stack([a_bad.long(), x_bad.long(), failed.long()]).tolist()
    if a_bad:  # first: a bad A makes every column -2
        raise ValueError("nnls: A contains NaN or Inf")
    if x_bad:
        raise ValueError(f"nnls: {data} contains NaN or Inf")
    if failed:
        _warn_not_converged(failed, info.numel(), max_iter)


# --- registration -------------------------------------------------------------------------------------------

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


@torch.library.register_fake("neuralnmf::nnls")
def _nnls_fake(X, A, init=None, max_iter=0):
    torch._check(X.dim() in (2, 3), lambda: f"nnls: X must have 2 or 3 dims, got {X.dim()}")
    torch._check(A.dim() in (2, 3), lambda: f"nnls: A must have 2 or 3 dims, got {A.dim()}")
    torch._check(A.shape[-2] == X.shape[-2], lambda: "nnls: X and A must have the same number of rows")
    torch._check(A.dtype == X.dtype, lambda: "nnls: X and A must have the same dtype")
    lead = X.shape[:-2]
    S = X.new_empty((*lead, A.shape[-1], X.shape[-1]))
    info = X.new_empty((*lead, X.shape[-1]), dtype=torch.int32)
    return S, info


@torch.library.register_fake("neuralnmf::nnls_rhs")
def _nnls_rhs_fake(AtX, A, init=None, max_iter=0):
    torch._check(AtX.dim() in (2, 3), lambda: f"nnls_rhs: AtX must have 2 or 3 dims, got {AtX.dim()}")
    torch._check(A.shape[-1] == AtX.shape[-2], lambda: "nnls_rhs: AtX must have k = A.shape[-1] rows")
    torch._check(A.dtype == AtX.dtype, lambda: "nnls_rhs: AtX and A must have the same dtype")
    return torch.empty_like(AtX), AtX.new_empty(AtX.shape[:-2] + AtX.shape[-1:], dtype=torch.int32)


@torch.library.register_fake("neuralnmf::support_solve")
def _support_solve_fake(grad, A, S):
    torch._check(grad.shape == S.shape, lambda: "support_solve: grad and S must have the same shape")
    torch._check(A.shape[-1] == S.shape[-2], lambda: "support_solve: A and S disagree on k")
    return torch.empty_like(S)


def _setup_context(ctx, inputs, output):
    X, A, _init, _max_iter = inputs
    S, info = output
    ctx.mark_non_differentiable(info)
    ctx.save_for_backward(X if ctx.needs_input_grad[1] else None, A, S)


def _backward(ctx, grad_S, _grad_info):
    X, A, S = ctx.saved_tensors
    need_X, need_A = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if grad_S is None or not (need_X or need_A):
        return None, None, None, None
    V = torch.ops.neuralnmf.support_solve(grad_S, A, S)
    dX = A @ V if need_X else None
    dA = None
    if need_A:
        XVt = X @ V.mT
        dA = (XVt.sum(0) if XVt.dim() > A.dim() else XVt) + _gram_gradient(A, S, V)
    return dX, dA, None, None


def _gram_gradient(A, S, V):
    """-A (S V^T + V S^T): the gradient through G = A^T A, summed over a batch that shared A."""
    SVt = S @ V.mT
    dA = -(A @ (SVt + SVt.mT))
    return dA.sum(0) if dA.dim() > A.dim() else dA


def _setup_context_rhs(ctx, inputs, output):
    _AtX, A, _init, _max_iter = inputs
    S, info = output
    ctx.mark_non_differentiable(info)
    ctx.save_for_backward(A, S)


def _backward_rhs(ctx, grad_S, _grad_info):
    A, S = ctx.saved_tensors
    need_B, need_A = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if grad_S is None or not (need_B or need_A):
        return None, None, None, None
    V = torch.ops.neuralnmf.support_solve(grad_S, A, S)
    return (V if need_B else None), (_gram_gradient(A, S, V) if need_A else None), None, None


def _no_double_backward(ctx, grad):
    raise NotImplementedError("neuralnmf: double backward through nnls is not supported")


# The compiled extension carries the same backward in C++ (csrc/autograd.cpp), without Python dispatch per
# call; these registrations serve builds without it.
if not _extension.has_kernel("nnls", "Autograd"):
    torch.library.register_autograd("neuralnmf::nnls", _backward, setup_context=_setup_context)
if not _extension.has_kernel("nnls_rhs", "Autograd"):
    torch.library.register_autograd("neuralnmf::nnls_rhs", _backward_rhs, setup_context=_setup_context_rhs)
torch.library.register_autograd(
    "neuralnmf::support_solve", _no_double_backward, setup_context=lambda ctx, inputs, output: None
)


# --- public function ----------------------------------------------------------------------------------------


def _check_tensor(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"nnls: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"nnls: {name} must be float32 or float64, got {t.dtype}")
    if t.dim() < 2:
        raise ValueError(f"nnls: {name} must have at least 2 dimensions, got shape {tuple(t.shape)}")
    if t.layout != torch.strided:
        raise TypeError(f"nnls: {name} must be a dense (strided) tensor, got layout {t.layout}")


def _prepare(X: torch.Tensor, A: torch.Tensor, init):
    _check_tensor(X, "X")
    _check_tensor(A, "A")
    if A.dtype != X.dtype:
        raise TypeError(f"nnls: A has dtype {A.dtype} but X has dtype {X.dtype}; they must match")
    if A.device != X.device:
        raise ValueError(f"nnls: A is on {A.device} but X is on {X.device}; they must be on the same device")
    N, M = X.shape[-2:]
    if A.shape[-2] != N:
        raise ValueError(f"nnls: X has {N} rows (N) but A has {A.shape[-2]}: X is (..., N, M), A is (..., N, k)")
    k = A.shape[-1]
    if X.dim() == 2 and A.dim() == 2:  # the common case, without the broadcasting machinery
        if init is None:
            return X, A, None, (k, M)
        if isinstance(init, torch.Tensor) and init.shape == (k, M) and init.device == X.device:
            return X, A, (init if init.dtype == torch.bool else init > 0), (k, M)
    try:
        batch = torch.broadcast_shapes(X.shape[:-2], A.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(
            f"nnls: batch dimensions of X {tuple(X.shape[:-2])} and A {tuple(A.shape[:-2])} do not broadcast"
        ) from exc
    nb = math.prod(batch)
    shared = all(d == 1 for d in A.shape[:-2])
    A_op = A.reshape(N, k) if shared else A.expand(*batch, N, k).reshape(nb, N, k)
    X_op = X if X.dim() == 2 and shared else X.expand(*batch, N, M).reshape(nb, N, M)
    init_op = None
    if init is not None:
        if not isinstance(init, torch.Tensor):
            raise TypeError(f"nnls: init must be a torch.Tensor (a previous S or its support), got {type(init).__name__}")
        if init.device != X.device:
            raise ValueError(f"nnls: init is on {init.device} but X is on {X.device}")
        try:
            mask = init if init.dtype == torch.bool else init > 0
            mask = mask.expand(*batch, k, M)
        except RuntimeError as exc:
            raise ValueError(f"nnls: init must have the shape of S {(*batch, k, M)}, got {tuple(init.shape)}") from exc
        init_op = mask.reshape(X_op.shape[:-2] + (k, M))
    return X_op, A_op, init_op, (*batch, k, M)


def nnls(
    X: torch.Tensor,
    A: torch.Tensor,
    *,
    init: torch.Tensor | None = None,
    max_iter: int | None = None,
    return_info: bool = False,
):
    """Exact nonnegative least squares, S = argmin_{S >= 0} ||X - A S||_F, differentiable in X and A.

    Each column of S solves its own problem min_{s >= 0} ||x_j - A s||_2 (columns are samples).

    Args:
        X: (..., N, M) data, float32 or float64; may be negative.
        A: (N, k) shared dictionary, or (..., N, k) broadcast against X's leading dimensions.
        init: a previous S (or its boolean support), shape (..., k, M), to warm-start the active set. The
            answer is the same as without it; only the work changes.
        max_iter: bound on pivoting iterations per column (default: 5k + 10, then a Lawson-Hanson fallback
            bounded by 3k + 10 iterations).
        return_info: also return ``info`` (..., M) int32: 0 solved by block principal pivoting, 1 solved by
            the Lawson-Hanson fallback, -1 iteration bound hit (S feasible, not certified optimal), and on
            CUDA with validation off, -2: the column's right-hand side is NaN/Inf (S column NaN).

    Returns:
        S: (..., k, M), same dtype and device as X; ``(S, info)`` when ``return_info``.

    Gradients follow the active set: with P the support of column j and g = dL/dS,
    V[P, j] = (A_P^T A_P)^{-1} g[P, j], dL/dX = A V, dL/dA = X V^T - A (S V^T + V S^T). Entries of S that are
    exactly zero get zero gradient (the convention of ReLU at 0).

    Raises:
        TypeError: non-tensor input, dtype other than float32/float64, or X and A of different dtypes.
        ValueError: NaN or Inf, wrong number of dimensions, N mismatch, batch shapes that do not broadcast,
            X and A on different devices, init of the wrong shape.

    On CUDA the NaN/Inf check and the :class:`NNLSConvergenceWarning` read ``info`` back to the host, one
    synchronisation per call. ``neuralnmf.ops.set_validation(False)`` (or ``with
    neuralnmf.ops.validation(False):``) skips them: the call then never waits for the GPU, and NaN/Inf input
    gives NaN columns of S with ``info == -2`` instead of an error. Under ``torch.compile`` no host check runs.
    """
    if isinstance(X, torch.Tensor) and X.layout in _SPARSE_LAYOUTS:
        return _nnls_sparse(X, A, init, max_iter, return_info)
    X_op, A_op, init_op, out_shape = _prepare(X, A, init)
    S, info = torch.ops.neuralnmf.nnls(X_op, A_op, init_op, 0 if max_iter is None else int(max_iter))
    _check_info(A, info, max_iter)
    if S.shape != out_shape:
        S, info = S.reshape(out_shape), info.reshape(out_shape[:-2] + out_shape[-1:])
    return (S, info) if return_info else S


def _check_info(A: torch.Tensor, info: torch.Tensor, max_iter, data: str = "X") -> None:
    if torch.compiler.is_compiling():
        return
    if info.device.type == "cpu":  # the CPU kernel raised on bad input already
        if info.numel() and int(info.min()) < 0:
            _warn_not_converged(int((info < 0).sum()), info.numel(), max_iter)
    elif _validation and info.device.type != "meta":
        _check_device_result(A, info, max_iter, data)


_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)


def _check_sparse(X: torch.Tensor, A: torch.Tensor, name: str, feature_dim: int) -> None:
    """X: 2-D sparse, float32/64, finite, no gradient wanted; A (N, k) dense on X's device, N = X.shape[feature_dim]."""
    if X.dim() != 2:
        raise ValueError(f"nnls: a sparse {name} must be 2-D, got shape {tuple(X.shape)}")
    if X.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"nnls: {name} must be float32 or float64, got {X.dtype}")
    _check_tensor(A, "A")
    if A.dim() != 2:
        raise ValueError(f"nnls: with a sparse {name}, A must be 2-D (N, k), got shape {tuple(A.shape)}")
    if A.dtype != X.dtype:
        raise TypeError(f"nnls: A has dtype {A.dtype} but {name} has dtype {X.dtype}; they must match")
    if A.device != X.device:
        raise ValueError(f"nnls: A is on {A.device} but {name} is on {X.device}; they must be on the same device")
    if A.shape[0] != X.shape[feature_dim]:
        what = "rows" if feature_dim == 0 else "columns (features)"
        raise ValueError(f"nnls: {name} has {X.shape[feature_dim]} {what} (N) but A has {A.shape[0]} rows")
    if X.requires_grad:
        raise ValueError(f"nnls: gradients with respect to a sparse {name} are not supported (a data matrix needs "
                         f"none; pass {name}.detach(), or a dense {name} if you need its gradient)")
    if not sparse_products.all_finite(X):
        raise ValueError(f"nnls: {name} contains NaN or Inf")


def _nnls_sparse(X: torch.Tensor, A: torch.Tensor, init, max_iter, return_info: bool):
    """nnls for a sparse X (N, M): A^T X = (X^T A)^T is a sparse-dense product, X is never densified."""
    _check_sparse(X, A, "X", feature_dim=0)
    AtX = sparse_products.matmul_t(X, A).mT  # (k, M), differentiable in A
    return nnls_from_products(AtX, A, init=init, max_iter=max_iter, return_info=return_info)


def nnls_sparse_rows(x: torch.Tensor, A: torch.Tensor, *, init: torch.Tensor | None = None,
                     max_iter: int | None = None) -> torch.Tensor:
    """:func:`nnls` of X = x^T for a sparse x (M, N) with samples as rows, as layers hold their data.

    Returns S (k, M). The same answer as ``nnls(x.t(), A)`` without transposing x: A^T X = (x A)^T.
    """
    _check_sparse(x, A, "x", feature_dim=1)
    AtX = sparse_products.matmul(x, A).mT  # (k, M), differentiable in A
    return nnls_from_products(AtX, A, init=init, max_iter=max_iter)


def nnls_from_products(
    AtX: torch.Tensor,
    A: torch.Tensor,
    *,
    init: torch.Tensor | None = None,
    max_iter: int | None = None,
    return_info: bool = False,
):
    """:func:`nnls` from the products ``AtX = A^T X`` instead of X, for callers that form them their own way.

    Args:
        AtX: (k, M) or (B, k, M), e.g. ``torch.sparse.mm(X.t(), A).mT`` for a sparse X.
        A: (N, k) shared, or (B, N, k).
        init, max_iter, return_info: as in :func:`nnls`.

    Gradients: dL/dAtX = V and, through the Gram matrix, dL/dA = -A (S V^T + V S^T); autograd adds the part
    that flows through however AtX was formed (X V^T for AtX = A^T X).
    """
    _check_tensor(AtX, "AtX")
    _check_tensor(A, "A")
    if AtX.dtype != A.dtype:
        raise TypeError(f"nnls_from_products: A has dtype {A.dtype} but AtX has dtype {AtX.dtype}; they must match")
    if AtX.device != A.device:
        raise ValueError(f"nnls_from_products: A is on {A.device} but AtX is on {AtX.device}")
    init_op = None
    if init is not None:
        if not isinstance(init, torch.Tensor) or init.shape != AtX.shape:
            raise ValueError(f"nnls: init must be a tensor of the shape of S {tuple(AtX.shape)}")
        init_op = init if init.dtype == torch.bool else init > 0
    S, info = torch.ops.neuralnmf.nnls_rhs(AtX, A, init_op, 0 if max_iter is None else int(max_iter))
    _check_info(A, info, max_iter, "AtX")
    return (S, info) if return_info else S
