"""The closed-form backward of the neuralnmf ops, in Python, for builds without the compiled one.

For ``nnls``: dX = A V, dA = X V^T - A (S V^T + V S^T), two GEMMs, the N x M residual never formed; for
``nnls_rhs``: dAtX = V, dA = -A (S V^T + V S^T); V = support_solve(dL/dS, A, S). The compiled extension carries the
same backward in C++ (csrc/autograd.cpp), without Python dispatch per call; these registrations serve builds
without it (tests check the two against each other). Double backward is refused.
"""

from __future__ import annotations

import torch

from . import _extension, _library  # noqa: F401  (the ops must exist before autograd is attached)


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
