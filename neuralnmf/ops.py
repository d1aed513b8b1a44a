"""The public NNLS operator: :func:`nnls`, :func:`nnls_from_products` and :func:`nnls_sparse_rows`, and the
validation switch of device results.

    S = nnls(X, A) = argmin_{S >= 0} ||X - A S||_F        X (..., N, M), A (N, k) or (..., N, k), S (..., k, M)

The ops behind them (``torch.ops.neuralnmf.nnls``, ``nnls_rhs``, ``support_solve``) are registered by
:mod:`neuralnmf._library` (schemas and the pure-torch fallback), :mod:`neuralnmf._fake` (torch.compile) and
:mod:`neuralnmf._autograd` (the backward, when the compiled one is missing); :mod:`neuralnmf._validation` turns
the CUDA ops' per-column error codes into exceptions and warnings.
"""

from __future__ import annotations

import math

import torch

from . import _autograd, _fake, _library, sparse_products  # noqa: F401  (importing them registers the ops)
from ._checks import check_float, check_max_iter, check_tensor
from ._autograd import transforms_active
from ._validation import (
    INFO_NON_FINITE,
    INFO_NOT_CONVERGED,
    NNLSConvergenceWarning,
    check_info,
    set_validation,
    validation,
    validation_enabled,
)

__all__ = ["nnls", "nnls_from_products", "nnls_sparse_rows", "NNLSConvergenceWarning", "set_validation",
           "validation", "validation_enabled", "INFO_NOT_CONVERGED", "INFO_NON_FINITE"]


# --- public function ----------------------------------------------------------------------------------------


def _check_operand(t, name: str, fn: str = "nnls") -> None:
    check_float(check_tensor(t, fn, name), fn, name)
    if t.dim() < 2:
        raise ValueError(f"nnls: {name} must have at least 2 dimensions, got shape {tuple(t.shape)}")
    if t.layout != torch.strided:
        raise TypeError(f"nnls: {name} must be a dense (strided) tensor, got layout {t.layout}")


def _prepare(X: torch.Tensor, A: torch.Tensor, init):
    _check_operand(X, "X")
    _check_operand(A, "A")
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
            raise ValueError(f"nnls: init is on {init.device} but X is on {X.device}; move it with init.to(X.device)")
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
        max_iter: bound on pivoting iterations per column, a positive integer (default None: 5k + 10, then a
            Lawson-Hanson fallback bounded by 3k + 10 iterations).
        return_info: also return ``info`` (..., M) int32: 0 solved by block principal pivoting, 1 solved by
            the Lawson-Hanson fallback, -1 iteration bound hit (S feasible, not certified optimal), and on
            CUDA with validation off, -2: the column's right-hand side is NaN/Inf (S column NaN).

    Returns:
        S: (..., k, M), same dtype and device as X; ``(S, info)`` when ``return_info``.

    Gradients follow the active set: with P the support of column j and g = dL/dS,
    V[P, j] = (A_P^T A_P)^{-1} g[P, j], dL/dX = A V, dL/dA = X V^T - A (S V^T + V S^T). Entries of S that are
    exactly zero get zero gradient (the convention of ReLU at 0).

    Raises:
        TypeError: non-tensor input (init included), dtype other than float32/float64 (the message says how to
            convert), X and A of different dtypes, a non-integer max_iter.
        ValueError: NaN or Inf, wrong number of dimensions, N mismatch, batch shapes that do not broadcast,
            X, A or init on different devices, init of the wrong shape, max_iter <= 0.

    On CUDA the NaN/Inf check and the :class:`NNLSConvergenceWarning` read ``info`` back to the host, one
    synchronisation per call. ``neuralnmf.ops.set_validation(False)`` (or ``with
    neuralnmf.ops.validation(False):``) skips them: the call then never waits for the GPU, and NaN/Inf input
    gives NaN columns of S with ``info == -2`` instead of an error. Under ``torch.compile`` no host check runs.

    torch.func: ``vmap`` (over X, A, init, any ``in_dims``), ``grad``/``vjp``/``jacrev``, ``jvp``/``jacfwd`` and
    their compositions (``vmap(grad(...))``, ``functional_call`` over stacked models) work; the checks above run
    on the plain tensors under the transforms. Second derivatives are refused (``NotImplementedError``).
    """
    bound = check_max_iter(max_iter, "nnls")
    if isinstance(X, torch.Tensor) and X.layout in _SPARSE_LAYOUTS:
        return _nnls_sparse(X, A, init, max_iter, return_info)
    X_op, A_op, init_op, out_shape = _prepare(X, A, init)
    if transforms_active():  # torch.func: the Function path, checks at the bottom of the transforms
        S, info = _autograd.nnls(X_op, A_op, init_op, bound)
    else:
        S, info = torch.ops.neuralnmf.nnls(X_op, A_op, init_op, bound)
        check_info(A, info, max_iter)
    if S.shape != out_shape:
        S, info = S.reshape(out_shape), info.reshape(out_shape[:-2] + out_shape[-1:])
    return (S, info) if return_info else S


_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)


def _check_sparse(X: torch.Tensor, A: torch.Tensor, name: str, feature_dim: int) -> None:
    """X: 2-D sparse, float32/64, finite, no gradient wanted; A (N, k) dense on X's device, N = X.shape[feature_dim]."""
    if transforms_active():  # the sparse products are a Function without setup_context; torch has no batched sparse
        raise NotImplementedError(f"nnls: a sparse {name} is not supported under torch.func transforms (vmap, grad, "
                                  f"...); pass {name}.to_dense()")
    if X.dim() != 2:
        raise ValueError(f"nnls: a sparse {name} must be 2-D, got shape {tuple(X.shape)}")
    check_float(X, "nnls", name)
    _check_operand(A, "A")
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
    fn = "nnls_from_products"
    bound = check_max_iter(max_iter, fn)
    _check_operand(AtX, "AtX", fn)
    _check_operand(A, "A", fn)
    if AtX.dtype != A.dtype:
        raise TypeError(f"{fn}: A has dtype {A.dtype} but AtX has dtype {AtX.dtype}; they must match")
    if AtX.device != A.device:
        raise ValueError(f"{fn}: A is on {A.device} but AtX is on {AtX.device}; they must be on the same device")
    init_op = None
    if init is not None:
        if not isinstance(init, torch.Tensor):
            raise TypeError(f"{fn}: init must be a torch.Tensor (a previous S or its support), got "
                            f"{type(init).__name__}")
        if init.device != AtX.device:  # a CUDA kernel would read a host init as device memory
            raise ValueError(f"{fn}: init is on {init.device} but AtX is on {AtX.device}; move it with "
                             "init.to(AtX.device)")
        if init.shape != AtX.shape:
            raise ValueError(f"{fn}: init must have the shape of S {tuple(AtX.shape)}, got {tuple(init.shape)}")
        init_op = init if init.dtype == torch.bool else init > 0
    if transforms_active():
        S, info = _autograd.nnls_rhs(AtX, A, init_op, bound)
    else:
        S, info = torch.ops.neuralnmf.nnls_rhs(AtX, A, init_op, bound)
        check_info(A, info, max_iter, "AtX")
    return (S, info) if return_info else S
