"""Losses of the tensor models. Every term is a mean over the entries it counts, like the papers' MSE.

* ``cp_mse(X, factors, mask)``: ||M ⊙ (X - [[F]])||^2 / #observed entries.
* ``energy_loss``: the sum of ``cp_mse`` over the chosen levels of a model's output. The Neural NCPD paper's
  ``Energy_Loss_Tensor`` is levels 1..L (the rank-r_0 NCPD term left out), the default here.
* supervision (labels on one mode): :func:`neuralnmf.losses.supervision_loss` on the model's logits.
"""

from __future__ import annotations

import torch

from .cp import cp_norm_sq, cp_to_tensor

__all__ = ["cp_mse", "cp_inner", "energy_loss", "default_levels"]


def cp_inner(X: torch.Tensor, factors) -> torch.Tensor:
    """<X, [[F_1, ..., F_N]]> without forming the CP tensor: X is contracted with F_N, then F_{N-1}, ... ."""
    T = (X.reshape(-1, X.shape[-1]) @ factors[-1]).reshape(*X.shape[:-1], -1)  # (I_1, ..., I_{N-1}, r)
    for F in reversed(factors[1:-1]):
        T = (T * F).sum(-2)
    return (T * factors[0]).sum()


def cp_mse(X: torch.Tensor, factors, mask: torch.Tensor | None = None, *,
           x_norm_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of the CP tensor [[factors]] against X over the observed entries (mask: 1 = observed).

    Without a mask it is computed as (||X||^2 - 2 <X, [[F]]> + ||[[F]]||^2) / #entries, which never forms the
    tensor (one contraction of X per call; ||[[F]]||^2 from the r x r Gram matrices); ``x_norm_sq`` passes a
    precomputed ||X||^2. The gradient is exact; the value carries a relative round-off of about
    eps * ||X||^2 / ||X - [[F]]||^2. With a mask the residual is formed.
    """
    if mask is None:
        nx = (X * X).sum() if x_norm_sq is None else x_norm_sq
        return (nx - 2 * cp_inner(X, factors) + cp_norm_sq(factors)) / X.numel()
    R = X - cp_to_tensor(factors)
    return (R * R * mask).sum() / mask.sum().clamp_min(1)


def default_levels(num_levels: int) -> tuple[int, ...]:
    """Levels 1 .. L (the paper's energy loss), or (0,) for a model without hierarchy."""
    return tuple(range(1, num_levels)) or (0,)


def energy_loss(X: torch.Tensor, output, mask: torch.Tensor | None = None, levels=None, *,
                x_norm_sq: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"level_l": cp_mse at level l} for l in ``levels`` (default: 1 .. L); their sum is the energy loss."""
    if levels is None:
        levels = default_levels(len(output.levels))
    if mask is None and x_norm_sq is None:
        x_norm_sq = (X * X).sum()
    return {f"level_{l}": cp_mse(X, output.levels[l], mask, x_norm_sq=x_norm_sq) for l in levels}
