"""Initial factors: U[0, 1) draws (the ssnmf package's init) and NNDSVD (Boutsidis & Gallopoulos 2008).

Random draws are made in float64 on the generator's device (CPU for torch's global RNG) and then cast and moved
to the data's dtype and device, so one seed gives the same start in float32 and float64, on every device.
"""

from __future__ import annotations

import torch

INITS = ("random", "nndsvd", "nndsvda")


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) tensor of ``shape`` with the dtype and device of ``like``."""
    device = generator.device if generator is not None else torch.device("cpu")
    out = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return out.to(dtype=like.dtype, device=like.device)


def nndsvd(X: torch.Tensor, rank: int, *, fill_zeros: bool, generator: torch.Generator | None):
    """NNDSVD factors of X (N, M) >= 0: W (N, rank), H (rank, M) with X ~ W H.

    Each of the leading q = min(rank, N, M) singular triplets (s, u, v) contributes the dominant of its two
    nonnegative parts, (u+, v+) or (u-, v-), scaled to sqrt(s ||u±|| ||v±||) on each side. Components beyond
    q are U[0, 1) * sqrt(mean(X)). With ``fill_zeros`` (the "nndsvda" variant) exact zeros are replaced by
    mean(X): multiplicative updates can never move an entry away from zero, so plain NNDSVD freezes its zeros.
    Deterministic except for components beyond q.
    """
    N, M = X.shape
    q = min(rank, N, M)
    U, s, Vh = torch.linalg.svd(X, full_matrices=False)
    U, s, V = U[:, :q], s[:q], Vh[:q].mT
    up, un, vp, vn = U.clamp_min(0), (-U).clamp_min(0), V.clamp_min(0), (-V).clamp_min(0)
    nup, nun = torch.linalg.vector_norm(up, dim=0), torch.linalg.vector_norm(un, dim=0)
    nvp, nvn = torch.linalg.vector_norm(vp, dim=0), torch.linalg.vector_norm(vn, dim=0)
    pos = nup * nvp >= nun * nvn
    u, v = torch.where(pos, up, un), torch.where(pos, vp, vn)
    nu, nv = torch.where(pos, nup, nun), torch.where(pos, nvp, nvn)
    tiny = torch.finfo(X.dtype).tiny
    scale = (s * nu * nv).sqrt()
    W = u * (scale / nu.clamp_min(tiny))
    H = (v * (scale / nv.clamp_min(tiny))).mT
    mean = X.mean()
    if rank > q:
        W = torch.cat([W, uniform((N, rank - q), generator, X) * mean.sqrt()], dim=1)
        H = torch.cat([H, uniform((rank - q, M), generator, X) * mean.sqrt()], dim=0)
    if fill_zeros:
        W = torch.where(W == 0, mean, W)
        H = torch.where(H == 0, mean, H)
    return W.contiguous(), H.contiguous()


def initial_factors(X: torch.Tensor, rank: int, init: str, generator: torch.Generator | None):
    """(A (N, rank), S (rank, M)) for X (N, M): "random" draws A then S from U[0, 1) (ssnmf's order)."""
    if init == "random":
        A = uniform((X.shape[0], rank), generator, X)
        S = uniform((rank, X.shape[1]), generator, X)
        return A, S
    return nndsvd(X, rank, fill_zeros=init == "nndsvda", generator=generator)
