"""Reconstruction errors: relative to the data, dense or sparse (never densified), per level of a hierarchy."""

from __future__ import annotations

import math

import torch

from ..losses import squared_error
from ._inputs import _floating, _same_device, _tensor

__all__ = ["relative_error", "factorization_error", "frobenius_error", "level_errors"]


def relative_error(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Relative reconstruction error ``||x - x_hat||_F / ||x||_F`` over all entries (protocols §1.1).

    Args:
        x: the reference data, any shape (e.g. (samples, features)), floating point.
        x_hat: the approximation, same shape.
        mask: optional, broadcastable to ``x``: bool (True = observed entry; only those count) or nonnegative
            float weights W (then ``||W ⊙ (x - x_hat)|| / ||W ⊙ x||``).

    Returns:
        0-d tensor on ``x``'s device, in the promoted dtype of the inputs. Differentiable in ``x_hat``. A reference
        of zero norm gives inf (or nan when ``x_hat`` matches it), by IEEE division; NaN inputs propagate.
    """
    _floating(x, "x")
    _floating(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat must have the shape of x {tuple(x.shape)}, got {tuple(x_hat.shape)}")
    _same_device(x, x_hat, "x_hat", "x")
    diff, ref = x - x_hat, x
    if mask is not None:
        _tensor(mask, "mask")
        _same_device(mask, x, "mask", "x")
        try:
            if torch.broadcast_shapes(mask.shape, x.shape) != x.shape:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to x's shape {tuple(x.shape)}"
            ) from None
        if mask.dtype == torch.bool:
            diff = torch.where(mask, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
            ref = torch.where(mask, ref, torch.zeros((), dtype=ref.dtype, device=ref.device))
        elif mask.is_floating_point():
            diff, ref = mask * diff, mask * ref
        else:
            raise TypeError(f"mask must be bool or floating point, got {mask.dtype}")
    return torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(ref)


def factorization_error(x: torch.Tensor, codes: torch.Tensor, dictionary: torch.Tensor, *,
                        relative: bool = True) -> float:
    """||x - codes dictionary^T||_F, relative to ||x||_F by default, in float64 and without densifying a sparse x.

    x (M, N) dense or sparse (COO/CSR); codes (M, k); dictionary (N, k), e.g. ``model.dictionary(depth)``. The
    squared error comes from the expansion ||x||^2 - 2 <codes, x dictionary> + <codes^T codes, dictionary^T
    dictionary> for a sparse x (:func:`neuralnmf.losses.squared_error`). Returns a Python float (one host read).
    """
    if x.shape != (codes.shape[0], dictionary.shape[0]) or codes.shape[1] != dictionary.shape[1]:
        raise ValueError(f"factorization_error: x {tuple(x.shape)}, codes {tuple(codes.shape)} and dictionary "
                         f"{tuple(dictionary.shape)} do not fit x ~ codes @ dictionary^T")
    with torch.no_grad():
        x64 = x.double()
        if x64.layout == torch.sparse_coo:
            x64 = x64.coalesce()
        sq = max(float(squared_error(x64, codes.detach().double(), dictionary.detach().double())), 0.0)
        if not relative:
            return math.sqrt(sq)
        values = x64.values() if x64.layout != torch.strided else x64
        norm2 = float((values * values).sum())
    return math.sqrt(sq / norm2) if norm2 > 0 else float("nan")


def frobenius_error(x: torch.Tensor, codes: torch.Tensor, topics: torch.Tensor) -> torch.Tensor:
    """The reconstruction loss of the Multi-HNTF paper's 20 Newsgroups table (§5.3), ``||X - A S||_F`` (absolute,
    not relative), batch first.

    x (M, N) = X^T, dense or sparse (never densified); codes (M, k) = S^T; topics (N, k) = A (e.g. A_1 A_2 for
    the second layer). Computed in float64 by :func:`factorization_error`; a 0-d tensor.
    """
    return torch.tensor(factorization_error(x, codes, topics, relative=False), dtype=torch.float64)


def level_errors(model, x: torch.Tensor, codes=None, depths=None) -> list[float]:
    """The relative error of every level of a :class:`neuralnmf.NeuralNMF`: ||x - S_l (A_0 ⋯ A_l)^T|| / ||x||.

    x (M, N) dense or sparse; ``codes``: the levels' codes (``model(x).codes``; computed when None); ``depths``:
    which levels they belong to (default 0, 1, ...). Float64, never densifying a sparse x.
    """
    if codes is None:
        with torch.no_grad():
            codes = model(x).codes
    depths = range(len(codes)) if depths is None else depths
    return [factorization_error(x, c, model.dictionary(d)) for d, c in zip(depths, codes)]
