"""The closed-form backward of the neuralnmf ops in Python: for builds without the compiled one, and the path that
torch.func transforms (vmap, grad, vjp, jacrev, jvp, jacfwd) take.

For ``nnls``: dX = A V, dA = X V^T - A (S V^T + V S^T), two GEMMs, the N x M residual never formed; for
``nnls_rhs``: dAtX = V, dA = -A (S V^T + V S^T); V = support_solve(dL/dS, A, S). The compiled extension carries the
same backward in C++ (csrc/autograd.cpp), without Python dispatch per call; the ``register_autograd``
registrations at the end serve builds without it (tests check the two against each other). Double backward is
refused.

**torch.func.** A C++ ``torch::autograd::Function`` refuses functorch transforms, and ``register_autograd``'s
generated Function has no ``setup_context``, which functorch needs. So the public functions (neuralnmf.ops) call
the ops directly in eager mode, where the C++ backward keeps the per-call cost low, and go through the
``torch.autograd.Function`` classes below when a transform is active (:func:`transforms_active`). These carry:

* ``vmap``: the ops take one leading batch dimension, so the vmapped dimension is moved to the front, merged with
  the batch dimension the operands may already have, and the call goes one level down (a shared A stays shared).
* ``backward``: the formulas above, built from these same classes, so ``vmap(grad(...))`` works.
* ``jvp``: on the support P of each column (held fixed, as the backward does) the optimality condition
  A_P^T (A_P S_P - X) = 0 gives dS = support_solve(A^T (dX - dA S) + dA^T (X - A S), A, S) for ``nnls`` and
  dS = support_solve(dAtX - (dA^T A + A^T dA) S, A, S) for ``nnls_rhs``; so ``jvp``/``jacfwd`` work too.

At the bottom of the transforms the ops run on plain tensors, where the result checks of
:func:`neuralnmf._validation.check_info` run as in eager mode (NaN/Inf raise, columns at the iteration bound
warn). Second derivatives (``grad(grad(...))``, ``hessian``) are refused, as in eager mode.
"""

from __future__ import annotations

import torch

from . import _extension, _library  # noqa: F401  (the ops must exist before autograd is attached)
from ._validation import check_info

_ops = torch.ops.neuralnmf


# Whether a torch.func transform (vmap, grad, jvp, ...) is running: the ops then take the Function path. The
# builtin itself, not a wrapper: it is the one thing eager calls pay for all this (0.05 us of a >= 40 us call).
transforms_active = torch._C._are_functorch_transforms_active


# --- the backward formulas, shared by the registrations and the Function classes ------------------------------


def _gram_gradient(A, S, V):
    """-A (S V^T + V S^T): the gradient through G = A^T A, summed over a batch that shared A."""
    SVt = S @ V.mT
    dA = -(A @ (SVt + SVt.mT))
    return dA.sum(0) if dA.dim() > A.dim() else dA


def _nnls_grads(X, A, S, grad_S, need_X, need_A):
    V = support_solve(grad_S, A, S)
    dX = A @ V if need_X else None
    dA = None
    if need_A:
        XVt = X @ V.mT
        dA = (XVt.sum(0) if XVt.dim() > A.dim() else XVt) + _gram_gradient(A, S, V)
    return dX, dA


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
    return (*_nnls_grads(X, A, S, grad_S, need_X, need_A), None, None)


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
    V = support_solve(grad_S, A, S)
    return (V if need_B else None), (_gram_gradient(A, S, V) if need_A else None), None, None


def _no_double_backward(ctx, *grads):
    raise NotImplementedError("neuralnmf: double backward through nnls is not supported")


# --- vmap: the vmapped dimension joins the ops' own batch dimension -------------------------------------------


def _merge_batch(batch_size, in_dims, operands, a_index):
    """Move each vmapped dimension to the front and merge it with the operands' own leading batch dimension (the
    ops take (N, M) or (B, N, M) data and (N, k) or (B, N, k) dictionaries). Returns the operands for one op call
    and the leading shape its outputs are reshaped to. A that is neither vmapped nor batched stays shared."""
    moved = [t if t is None or d is None else t.movedim(d, 0) for t, d in zip(operands, in_dims)]
    inner = ()
    for t, d in zip(moved, in_dims):
        if t is not None and t.dim() - (d is not None) == 3:
            inner = (t.shape[1 if d is not None else 0],)
    lead = (batch_size, *inner)
    A = moved[a_index]
    shared_A = in_dims[a_index] is None and A.dim() == 2
    out = []
    for i, (t, d) in enumerate(zip(moved, in_dims)):
        if t is None or (i == a_index and shared_A):
            out.append(t)
            continue
        if d is not None and t.dim() - 1 < len(inner) + 2:  # vmapped, without the inner batch dimension
            t = t.unsqueeze(1)
        out.append(t.expand(*lead, *t.shape[-2:]).reshape(-1, *t.shape[-2:]))
    return out, lead


def _vmap_solve(solve, info, in_dims, data, A, init, max_iter):
    in_dims = (*in_dims, None, None)[:3]  # init and max_iter may be left out of a direct op call
    (data, A, init), lead = _merge_batch(info.batch_size, in_dims, (data, A, init), 1)
    S, inf = solve(data, A, init, max_iter)
    return (S.reshape(*lead, *S.shape[-2:]), inf.reshape(*lead, inf.shape[-1])), (0, 0)


def _vmap_support_solve(solve, info, in_dims, grad, A, S):
    (grad, A, S), lead = _merge_batch(info.batch_size, in_dims, (grad, A, S), 1)
    V = solve(grad, A, S)
    return V.reshape(*lead, *V.shape[-2:]), 0


# --- the Function path that torch.func transforms take ---------------------------------------------------------


class NNLSFunction(torch.autograd.Function):
    """neuralnmf::nnls under torch.func transforms (see the module docstring)."""

    @staticmethod
    def forward(X, A, init, max_iter):
        return nnls(X, A, init, max_iter)

    @staticmethod
    def setup_context(ctx, inputs, output):
        X, A, _init, _max_iter = inputs
        S, info = output
        ctx.mark_non_differentiable(info)
        ctx.save_for_backward(X, A, S)
        ctx.save_for_forward(X, A, S)

    @staticmethod
    def backward(ctx, grad_S, _grad_info):
        X, A, S = ctx.saved_tensors
        need_X, need_A = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if grad_S is None or not (need_X or need_A):
            return None, None, None, None
        return (*_nnls_grads(X, A, S, grad_S, need_X, need_A), None, None)

    @staticmethod
    def jvp(ctx, dX, dA, _d_init, _d_max_iter):
        X, A, S = ctx.saved_tensors
        rhs = None
        if dX is not None:
            rhs = A.mT @ dX
        if dA is not None:
            part = dA.mT @ (X - A @ S) - A.mT @ (dA @ S)
            rhs = part if rhs is None else rhs + part
        if rhs is None:
            return None, None
        return support_solve(rhs.expand(S.shape), A, S), None

    @staticmethod
    def vmap(info, in_dims, X, A, init, max_iter):
        return _vmap_solve(nnls, info, in_dims, X, A, init, max_iter)


class NNLSRhsFunction(torch.autograd.Function):
    """neuralnmf::nnls_rhs under torch.func transforms (see the module docstring)."""

    @staticmethod
    def forward(AtX, A, init, max_iter):
        return nnls_rhs(AtX, A, init, max_iter)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _AtX, A, _init, _max_iter = inputs
        S, info = output
        ctx.mark_non_differentiable(info)
        ctx.save_for_backward(A, S)
        ctx.save_for_forward(A, S)

    backward = staticmethod(_backward_rhs)

    @staticmethod
    def jvp(ctx, dAtX, dA, _d_init, _d_max_iter):
        A, S = ctx.saved_tensors
        rhs = dAtX
        if dA is not None:
            part = -(dA.mT @ (A @ S) + A.mT @ (dA @ S))
            rhs = part if rhs is None else rhs + part
        if rhs is None:
            return None, None
        return support_solve(rhs.expand(S.shape), A, S), None

    @staticmethod
    def vmap(info, in_dims, AtX, A, init, max_iter):
        return _vmap_solve(nnls_rhs, info, in_dims, AtX, A, init, max_iter)


class SupportSolveFunction(torch.autograd.Function):
    """neuralnmf::support_solve under torch.func transforms: batched; not differentiable again."""

    @staticmethod
    def forward(grad, A, S):
        return support_solve(grad, A, S)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    backward = staticmethod(_no_double_backward)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError("neuralnmf: second derivatives through nnls are not supported")

    @staticmethod
    def vmap(info, in_dims, grad, A, S):
        return _vmap_support_solve(support_solve, info, in_dims, grad, A, S)


def nnls(X, A, init, max_iter, data: str = "X"):
    """(S, info) of neuralnmf::nnls on operands the op takes; under torch.func transforms through
    :class:`NNLSFunction`, otherwise the op (compiled autograd) and the result checks."""
    if transforms_active():
        return NNLSFunction.apply(X, A, init, max_iter)
    S, info = _ops.nnls(X, A, init, max_iter)
    check_info(A, info, max_iter or None, data)
    return S, info


def nnls_rhs(AtX, A, init, max_iter):
    """:func:`nnls` for neuralnmf::nnls_rhs."""
    if transforms_active():
        return NNLSRhsFunction.apply(AtX, A, init, max_iter)
    S, info = _ops.nnls_rhs(AtX, A, init, max_iter)
    check_info(A, info, max_iter or None, "AtX")
    return S, info


def support_solve(grad, A, S):
    """V = neuralnmf::support_solve(grad, A, S), through :class:`SupportSolveFunction` under transforms."""
    if transforms_active():
        return SupportSolveFunction.apply(grad, A, S)
    return _ops.support_solve(grad, A, S)


# --- registrations ------------------------------------------------------------------------------------------

# The compiled extension carries the same backward in C++ (csrc/autograd.cpp), without Python dispatch per
# call; these registrations serve builds without it.
if not _extension.has_kernel("nnls", "Autograd"):
    torch.library.register_autograd("neuralnmf::nnls", _backward, setup_context=_setup_context)
if not _extension.has_kernel("nnls_rhs", "Autograd"):
    torch.library.register_autograd("neuralnmf::nnls_rhs", _backward_rhs, setup_context=_setup_context_rhs)
torch.library.register_autograd(
    "neuralnmf::support_solve", _no_double_backward, setup_context=lambda ctx, inputs, output: None
)

# vmap of the ops themselves (torch.ops.neuralnmf.*), one op call per vmap level; the public functions take the
# Function path above, which also composes with grad.
torch.library.register_vmap(
    "neuralnmf::nnls",
    lambda info, in_dims, X, A, init=None, max_iter=0: _vmap_solve(_ops.nnls, info, in_dims, X, A, init, max_iter))
torch.library.register_vmap(
    "neuralnmf::nnls_rhs",
    lambda info, in_dims, B, A, init=None, max_iter=0: _vmap_solve(_ops.nnls_rhs, info, in_dims, B, A, init,
                                                                   max_iter))
torch.library.register_vmap(
    "neuralnmf::support_solve",
    lambda info, in_dims, grad, A, S: _vmap_support_solve(_ops.support_solve, info, in_dims, grad, A, S))
