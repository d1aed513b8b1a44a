"""CP tensors in torch: unfolding, Khatri-Rao products, reconstruction, and tensorly ``CPTensor`` interop.

Conventions are tensorly's (and the papers'): a tensor has shape (I_1, ..., I_N); a rank-r CP tensor is a list of
factor matrices F_n of shape (I_n, r) with optional weights (r,), [[w; F_1, ..., F_N]] = sum_j w_j f_1j o ... o f_Nj.
The mode-n unfolding is ``X_(n) = moveaxis(X, n, 0).reshape(I_n, -1)`` (C order), and the Khatri-Rao product of
the other factors lists them in increasing mode order with the last one varying fastest, so that
``X_(n) = F_n khatri_rao(F_others)^T`` for X = [[F_1, ..., F_N]].

Everything here is plain torch: any device, float32/float64, differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

try:  # tensorly is optional: its CPTensor class when installed, a minimal stand-in otherwise
    from tensorly.cp_tensor import CPTensor
except ImportError:  # pragma: no cover - exercised only without tensorly

    class CPTensor(tuple):
        """Minimal stand-in for ``tensorly.cp_tensor.CPTensor`` (weights, factors) when tensorly is absent."""

        def __new__(cls, cp):
            weights, factors = cp
            return super().__new__(cls, (weights, list(factors)))

        @property
        def weights(self):
            return self[0]

        @property
        def factors(self):
            return self[1]

        @property
        def rank(self) -> int:
            return int(self[1][0].shape[1])

        @property
        def shape(self) -> tuple[int, ...]:
            return tuple(int(f.shape[0]) for f in self[1])


__all__ = ["CPTensor", "unfold", "fold", "khatri_rao", "mttkrp", "cp_to_tensor", "cp_norm_sq", "to_cptensor",
           "as_factors"]


def unfold(X: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding (I_mode, prod of the other sizes), tensorly's C-order convention."""
    return torch.movedim(X, mode, 0).reshape(X.shape[mode], -1)


def fold(M: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`unfold`: (I_mode, prod others) -> tensor of ``shape``."""
    shape = tuple(shape)
    full = (shape[mode],) + shape[:mode] + shape[mode + 1 :]
    return torch.movedim(M.reshape(full), 0, mode)


def khatri_rao(matrices: Sequence[torch.Tensor], skip: int | None = None) -> torch.Tensor:
    """Column-wise Kronecker product of (I_k, r) matrices, ``skip`` left out: (prod I_k, r), last index fastest.

    ``khatri_rao([U, V])[i * J + j, c] = U[i, c] * V[j, c]`` (tensorly's ordering).
    """
    mats = [m for k, m in enumerate(matrices) if k != skip]
    out = mats[0]
    for m in mats[1:]:
        out = (out.unsqueeze(1) * m.unsqueeze(0)).reshape(-1, out.shape[-1])
    return out


def mttkrp(X: torch.Tensor, factors: Sequence[torch.Tensor], mode: int) -> torch.Tensor:
    """Matricized tensor times Khatri-Rao product, ``X_(mode) khatri_rao(factors, skip=mode)``: (I_mode, r)."""
    return unfold(X, mode) @ khatri_rao(factors, skip=mode)


def cp_to_tensor(factors: Sequence[torch.Tensor], weights: torch.Tensor | None = None) -> torch.Tensor:
    """The full tensor [[weights; F_1, ..., F_N]] of shape (I_1, ..., I_N) (tensorly's ``cp_to_tensor``)."""
    factors = list(factors)
    first = factors[0] if weights is None else factors[0] * weights
    shape = tuple(f.shape[0] for f in factors)
    if len(factors) == 1:
        return first.sum(1)
    return (first @ khatri_rao(factors[1:]).mT).reshape(shape)


def cp_norm_sq(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """||[[F_1, ..., F_N]]||_F^2 = sum of the Hadamard product of the Gram matrices F_n^T F_n, without the tensor."""
    G = None
    for f in factors:
        g = f.mT @ f
        G = g if G is None else G * g
    return G.sum()


def to_cptensor(factors: Sequence[torch.Tensor], weights: torch.Tensor | None = None) -> CPTensor:
    """A tensorly ``CPTensor((weights, factors))``; weights default to ones (the factors carry the scale)."""
    factors = list(factors)
    if weights is None:
        weights = torch.ones(factors[0].shape[1], dtype=factors[0].dtype, device=factors[0].device)
    return CPTensor((weights, factors))


def as_factors(cp, fn: str = "as_factors", name: str = "factors", *, shape: Sequence[int] | None = None,
               rank: int | None = None, like: torch.Tensor | None = None, nonnegative: bool = True
               ) -> list[torch.Tensor]:
    """Factor matrices from a ``CPTensor``, a ``(weights, factors)`` pair or a list of (I_n, r) tensors.

    Weights are absorbed into the first factor, so [[F_1 diag(w), F_2, ...]] is the same tensor. Checks the
    shapes against ``shape`` and ``rank`` (when given), dtype and device against ``like``, finiteness and
    (``nonnegative``) signs. Returns detached copies: the caller's tensors are never modified.
    """
    weights = None
    if isinstance(cp, CPTensor) or (isinstance(cp, tuple) and len(cp) == 2 and isinstance(cp[1], (list, tuple))
                                    and (cp[0] is None or isinstance(cp[0], torch.Tensor))):
        weights, factors = cp[0], cp[1]
    elif isinstance(cp, (list, tuple)):
        factors = cp
    else:
        raise TypeError(f"{fn}: {name} must be a CPTensor, a (weights, factors) pair or a list of factor matrices, "
                        f"got {type(cp).__name__}")
    factors = list(factors)
    if not factors:
        raise ValueError(f"{fn}: {name} holds no factor matrix")
    if shape is not None and len(factors) != len(shape):
        raise ValueError(f"{fn}: {name} has {len(factors)} factor matrices but the tensor has {len(shape)} modes")
    for n, f in enumerate(factors):
        if not isinstance(f, torch.Tensor):
            raise TypeError(f"{fn}: {name}[{n}] must be a torch.Tensor, got {type(f).__name__}")
        if f.dim() != 2:
            raise ValueError(f"{fn}: {name}[{n}] must be a matrix (I_{n}, r), got shape {tuple(f.shape)}")
    r = factors[0].shape[1]
    for n, f in enumerate(factors):
        want_rows = None if shape is None else shape[n]
        want_r = r if rank is None else rank
        if f.shape[1] != want_r or (want_rows is not None and f.shape[0] != want_rows):
            rows = "I_n" if want_rows is None else want_rows
            raise ValueError(f"{fn}: {name}[{n}] must have shape ({rows}, {want_r}), got {tuple(f.shape)}")
        ref = like if like is not None else factors[0]
        if f.dtype != ref.dtype:
            other = "the tensor" if like is not None else f"{name}[0]"
            raise TypeError(f"{fn}: {name}[{n}] has dtype {f.dtype} but {other} has {ref.dtype}; they must match")
        if f.device != ref.device:
            raise ValueError(f"{fn}: {name}[{n}] is on {f.device} but the tensor is on {ref.device}")
        if f.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{fn}: {name}[{n}] must be float32 or float64, got {f.dtype}")
    out = [f.detach().clone() for f in factors]
    if weights is not None:
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (r,):
            raise ValueError(f"{fn}: the weights of {name} must be a tensor of shape ({r},)")
        out[0] = out[0] * weights.detach().to(out[0].dtype).to(out[0].device)
    for n, f in enumerate(out):
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"{fn}: {name}[{n}] contains NaN or Inf")
        if nonnegative and bool((f < 0).any()):
            raise ValueError(f"{fn}: {name}[{n}] has negative entries; nonnegative factors are required")
    return out
