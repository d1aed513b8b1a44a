"""Initial nonnegative dictionaries: uniform random, or NNDSVD (Boutsidis & Gallopoulos 2008) from data."""

from __future__ import annotations

import torch

__all__ = ["nndsvd", "uniform", "INIT_METHODS"]

INIT_METHODS = ("uniform", "nndsvd", "nndsvda", "nndsvdar")


def uniform(rows: int, cols: int, *, generator=None, dtype=None, device=None) -> torch.Tensor:
    """U[0, 1) entries, the initialization of the Neural NMF paper. (rows, cols)."""
    return torch.rand(rows, cols, generator=generator, dtype=dtype).to(device)


def nndsvd(X: torch.Tensor, rank: int, *, variant: str = "nndsvd", generator=None) -> torch.Tensor:
    """Nonnegative dictionary W (N, rank) from the leading singular pairs of X (N, M) >= 0.

    Each singular pair contributes the dominant of its positive or negative parts, scaled as in NNDSVD.
    ``variant``: "nndsvd" leaves exact zeros (multiplicative updates cannot leave them), "nndsvda" fills them
    with the mean of X, "nndsvdar" with small random values. Columns beyond min(N, M) are uniform random
    scaled to the data.
    """
    if variant not in ("nndsvd", "nndsvda", "nndsvdar"):
        raise ValueError(f"nndsvd: variant must be 'nndsvd', 'nndsvda' or 'nndsvdar', got {variant!r}")
    if X.dim() != 2:
        raise ValueError(f"nndsvd: X must be 2-D (N, M), got shape {tuple(X.shape)}")
    if bool((X < 0).any()):
        raise ValueError("nndsvd: X must be nonnegative")
    N, M = X.shape
    q = min(rank, N, M)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    W = torch.zeros(N, rank, dtype=X.dtype, device=X.device)
    if q > 0:
        W[:, 0] = S[0].sqrt() * U[:, 0].abs()
    for j in range(1, q):
        u, v = U[:, j], Vh[j]
        up, un, vp, vn = u.clamp_min(0), (-u).clamp_min(0), v.clamp_min(0), (-v).clamp_min(0)
        mp = torch.linalg.vector_norm(up) * torch.linalg.vector_norm(vp)
        mn = torch.linalg.vector_norm(un) * torch.linalg.vector_norm(vn)
        part, sigma = (up, mp) if mp >= mn else (un, mn)
        norm = torch.linalg.vector_norm(part)
        if norm > 0:
            W[:, j] = (S[j] * sigma).sqrt() * part / norm
    avg = X.mean()
    if rank > q:
        extra = torch.rand(N, rank - q, generator=generator, dtype=X.dtype).to(X.device)
        W[:, q:] = extra * avg.sqrt()
    if variant == "nndsvda":
        W = torch.where(W == 0, avg, W)
    elif variant == "nndsvdar":
        noise = torch.rand(W.shape, generator=generator, dtype=X.dtype).to(X.device) * avg / 100
        W = torch.where(W == 0, noise, W)
    return W
