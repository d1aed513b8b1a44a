"""Initial factors of the baselines: U[0, 1) draws (the ssnmf package's init) and NNDSVD (Boutsidis & Gallopoulos
2008), both from :mod:`neuralnmf.initialization` (the library's one implementation), in the papers' orientation.

Random draws are made in float64 on the generator's device (CPU for torch's global RNG) and then cast and moved
to the data's dtype and device, so one seed gives the same start in float32 and float64, on every device.
"""

from __future__ import annotations

import torch

from ..initialization import nndsvd_factors
from ..initialization import uniform as _uniform

INITS = ("uniform", "random", "nndsvd", "nndsvda")
""""uniform" (U[0, 1) draws of A then S; "random" is the ssnmf package's name for it), "nndsvd", "nndsvda"."""


def uniform(shape: tuple[int, int], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) matrix of ``shape`` with the dtype and device of ``like``."""
    return _uniform(*shape, generator=generator, dtype=like.dtype, device=like.device)


def nndsvd(X: torch.Tensor, rank: int, *, fill_zeros: bool, generator: torch.Generator | None):
    """NNDSVD factors of X (N, M) >= 0: W (N, rank), H (rank, M) with X ~ W H (exact SVD).

    ``fill_zeros`` is the "nndsvda" variant: exact zeros are replaced by mean(X), because multiplicative updates
    can never move an entry away from zero and plain NNDSVD would freeze them.
    """
    W, H = nndsvd_factors(X.mT, rank, "nndsvda" if fill_zeros else "nndsvd", generator, randomized=False)
    return W.contiguous(), H.mT.contiguous()


def initial_factors(X: torch.Tensor, rank: int, init: str, generator: torch.Generator | None):
    """(A (N, rank), S (rank, M)) for X (N, M): "uniform"/"random" draws A then S from U[0, 1) (ssnmf's order)."""
    if init in ("uniform", "random"):
        A = uniform((X.shape[0], rank), generator, X)
        S = uniform((rank, X.shape[1]), generator, X)
        return A, S
    return nndsvd(X, rank, fill_zeros=init == "nndsvda", generator=generator)
