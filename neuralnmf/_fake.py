"""Fake (meta) kernels of the neuralnmf ops: output shapes and dtypes without computing, for torch.compile and
torch.library.opcheck."""

from __future__ import annotations

import torch

from . import _library  # noqa: F401  (the ops must be defined before their fake kernels are registered)


@torch.library.register_fake("neuralnmf::nnls")
def _nnls_fake(X, A, init=None, max_iter=0):
    torch._check(X.dim() in (2, 3), lambda: f"nnls: X must have 2 or 3 dims, got {X.dim()}")
    torch._check(A.dim() in (2, 3), lambda: f"nnls: A must have 2 or 3 dims, got {A.dim()}")
    torch._check(A.shape[-2] == X.shape[-2], lambda: "nnls: X and A must have the same number of rows")
    torch._check(A.dtype == X.dtype, lambda: "nnls: X and A must have the same dtype")
    torch._check_value(init is None or init.device == X.device,
                       lambda: f"nnls: init is on {init.device} but X is on {X.device}; move init to {X.device}")
    lead = X.shape[:-2]
    S = X.new_empty((*lead, A.shape[-1], X.shape[-1]))
    info = X.new_empty((*lead, X.shape[-1]), dtype=torch.int32)
    return S, info


@torch.library.register_fake("neuralnmf::nnls_rhs")
def _nnls_rhs_fake(AtX, A, init=None, max_iter=0):
    torch._check(AtX.dim() in (2, 3), lambda: f"nnls_rhs: AtX must have 2 or 3 dims, got {AtX.dim()}")
    torch._check(A.shape[-1] == AtX.shape[-2], lambda: "nnls_rhs: AtX must have k = A.shape[-1] rows")
    torch._check(A.dtype == AtX.dtype, lambda: "nnls_rhs: AtX and A must have the same dtype")
    torch._check_value(init is None or init.device == AtX.device,
                       lambda: f"nnls_rhs: init is on {init.device} but AtX is on {AtX.device}; move init to "
                               f"{AtX.device}")
    return torch.empty_like(AtX), AtX.new_empty(AtX.shape[:-2] + AtX.shape[-1:], dtype=torch.int32)


@torch.library.register_fake("neuralnmf::support_solve")
def _support_solve_fake(grad, A, S):
    torch._check(grad.shape == S.shape, lambda: "support_solve: grad and S must have the same shape")
    torch._check(A.shape[-1] == S.shape[-2], lambda: "support_solve: A and S disagree on k")
    return torch.empty_like(S)
