"""Losses of Neural NMF, batch first: x (M, N), codes S_l (M, k_l), dictionaries D_l = A_0 ⋯ A_l (N, k_l).

Data terms (W: data mask, 1 = observed):

* "hierarchical" (the default of :func:`neuralnmf.fit`): every level reconstructs the data,
  sum_l ||W ⊙ (X - D_l S_l)||^2 / ||W ⊙ X||^2, so each term is that level's squared relative error.
* "reconstruction": the deepest level only, ||W ⊙ (X - D_L S_L)||^2 / #observed entries (the papers' Recon loss).
* "energy": the papers' energy, ||W ⊙ (X - A_0 S_0)||^2 / #observed + sum_{l>=1} ||S_{l-1} - A_l S_l||^2 /
  (k_{l-1} M). Its code-space terms have an escape that fits nothing: A S = (A D)(D^-1 S) leaves every
  reconstruction of X unchanged and shrinks them, so on real vocabularies (N >> k) training drives them to zero
  and the topics collapse. Kept for the reproductions of the papers; never a default.

Supervision: ``lam * ||L ⊙ (Y - B S_L)||^2`` (one-hot Y; "l2") or ``lam * sum of cross-entropies`` ("ce") over
the labeled samples (L: label mask; unlabeled samples contribute nothing), divided by the same normalizer as the
data term. So ``lam`` weighs the label term against the data term exactly as in the papers' sums
||W ⊙ (X - A S)||^2 + lam ||L ⊙ (Y - B S)||^2, whatever normalisation keeps the numbers comfortable.

Each ``*_terms`` function returns ``(sums, normalizer)``: unnormalised sums per named term and the positive
constant they are divided by. :func:`neuralnmf.fit` uses that split to make minibatch and data-parallel steps
exact; the scalar functions are for custom training loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import sparse_products

__all__ = [
    "hierarchical_loss",
    "reconstruction_loss",
    "energy_loss",
    "supervision_loss",
    "masked_mse",
    "factorization_mse",
    "squared_error",
    "data_energy",
    "hierarchical_terms",
    "reconstruction_terms",
    "energy_terms",
    "LOSS_TERMS",
]


def _mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if mask is None else mask.to(like.dtype)


def squared_error(x: torch.Tensor, codes: torch.Tensor, dictionary: torch.Tensor,
                  mask: torch.Tensor | None = None, *, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """||mask ⊙ (x - codes dictionary^T)||^2: x (M, N), codes (M, k), dictionary (N, k).

    A sparse x is never densified, and neither is the product: with the expansion
    ||x||^2 - 2 <codes, x dictionary> + <codes^T codes, dictionary^T dictionary> the cost is O(nnz k + (M + N) k^2)
    in time and O((M + N) k) in memory. (In float32 the expansion loses relative precision when the fit is
    almost exact; sparse corpora are far from that.) ``x_sq``: ||x||^2 of a sparse x when the caller has it
    (:func:`data_energy`), so that several levels read the data's values once.
    """
    if x.layout == torch.strided:
        residual = x - F.linear(codes, dictionary)  # codes @ dictionary^T, no transpose node
        if mask is not None:
            residual = residual * _mask(mask, residual)
        return (residual * residual).sum()
    if mask is not None:
        raise ValueError("a data mask is not supported with sparse data (the implicit zeros count as observed)")
    if x_sq is None:
        x_sq = data_energy(x)
    cross = (codes * sparse_products.matmul(x, dictionary)).sum()
    gram = ((codes.mT @ codes) * (dictionary.mT @ dictionary)).sum()
    return x_sq - 2 * cross + gram


def data_energy(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """||mask ⊙ x||^2 (dense or sparse x), detached: the normalizer of the hierarchical loss."""
    with torch.no_grad():
        if x.layout != torch.strided:
            if mask is not None:
                raise ValueError("a data mask is not supported with sparse data (the implicit zeros count as observed)")
            values = sparse_products.csr_pair(x).x.values()
            return (values * values).sum()
        return ((x * x) if mask is None else (x * x * _mask(mask, x))).sum()


def _observed(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """#observed entries as a tensor on x's device (no host synchronisation)."""
    if mask is None:  # torch.full, not torch.tensor: no blocking host-to-device copy
        return torch.full((), float(x.shape[0] * x.shape[1]), dtype=x.dtype, device=x.device)
    return mask.to(x.dtype).sum().detach()


def masked_mse(target: torch.Tensor, approx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (target - approx)^2 over the entries where mask is true (all entries without a mask)."""
    if mask is None:
        return F.mse_loss(approx, target)
    mask = mask.to(approx.dtype)
    return ((target - approx) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def factorization_mse(x: torch.Tensor, codes: torch.Tensor, dictionary: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (x - codes dictionary^T)^2 over the observed entries; see :func:`squared_error`."""
    return squared_error(x, codes, dictionary, mask) / _observed(x, mask).clamp_min(1)


def _positive(normalizer: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """The normalizer, or ``fallback`` where it is zero (all-zero data: every data term is zero too)."""
    return torch.where(normalizer > 0, normalizer, fallback.clamp_min(1))


def hierarchical_terms(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None):
    """({"level_l": ||W ⊙ (x - S_l D_l^T)||^2}, ||W ⊙ x||^2): every level measured in data space."""
    energy = data_energy(x, data_mask)  # the normalizer, and ||x||^2 of every level's expansion of a sparse x
    x_sq = energy if x.layout != torch.strided else None
    sums, dictionary = {}, None
    for l, (layer, codes) in enumerate(zip(model.layers, output.codes)):
        dictionary = layer.A if dictionary is None else dictionary @ layer.A
        sums[f"level_{l}"] = squared_error(x, codes, dictionary, data_mask, x_sq=x_sq)
    return sums, _positive(energy, _observed(x, data_mask))


def reconstruction_terms(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None):
    """({"reconstruction": ||W ⊙ (x - S_L D_L^T)||^2}, #observed entries): the papers' Recon loss."""
    return ({"reconstruction": squared_error(x, output.codes[-1], model.dictionary(), data_mask)},
            _observed(x, data_mask).clamp_min(1))


def energy_terms(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None):
    """({"energy": sum}, #observed entries) with sum / #observed = the papers' energy (see the module docstring)."""
    observed = _observed(x, data_mask).clamp_min(1)
    total, below = 0.0, x
    for l, (layer, codes) in enumerate(zip(model.layers, output.codes)):
        if l == 0:
            total = squared_error(x, codes, layer.A, data_mask)
        else:  # a mean over k_{l-1} M code entries, expressed against the data term's normalizer
            total = total + squared_error(below, codes, layer.A) * (observed / below.numel())
        below = codes
    return {"energy": total}, observed


LOSS_TERMS = {"hierarchical": hierarchical_terms, "reconstruction": reconstruction_terms, "energy": energy_terms}
"""Data losses by name, as ``(sums, normalizer)`` functions."""


def _scalar(terms):
    sums, normalizer = terms
    return sum(sums.values()) / normalizer


def hierarchical_loss(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum_l ||W ⊙ (x - S_l D_l^T)||^2 / ||W ⊙ x||^2: the sum of every level's squared relative error."""
    return _scalar(hierarchical_terms(model, x, output, data_mask))


def reconstruction_loss(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deepest-layer reconstruction: mean of (x - S_L D_L^T)^2 over the observed entries (the papers' Recon)."""
    return _scalar(reconstruction_terms(model, x, output, data_mask))


def energy_loss(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The papers' energy: the mean squared error of each layer's own factorization S_{l-1} ~ S_l A_l^T, summed."""
    return _scalar(energy_terms(model, x, output, data_mask))


def supervision_loss(logits: torch.Tensor, y: torch.Tensor, label_mask: torch.Tensor | None = None,
                     kind: str = "l2", reduction: str = "mean") -> torch.Tensor:
    """Label loss on the labeled samples only. logits (M, c); y (M,) class indices; label_mask (M,) bool.

    kind: "l2" (||Y - logits||^2 with one-hot Y) or "ce" (cross-entropy). reduction: "mean" (over the labeled
    entries: samples x classes for "l2", samples for "ce") or "sum" (what :func:`neuralnmf.fit` weighs by lam).
    """
    if kind not in ("l2", "ce"):
        raise ValueError(f"supervision_loss: kind must be 'l2' or 'ce', got {kind!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"supervision_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    if kind == "l2":  # one-hot by scatter: F.one_hot reads the labels back to the host to check them
        target = torch.zeros_like(logits).scatter_(-1, y.unsqueeze(-1), 1.0)
        per_sample = ((logits - target) ** 2).sum(-1)
    else:
        per_sample = F.cross_entropy(logits, y, reduction="none")
    if label_mask is None:
        total, count = per_sample.sum(), y.shape[0]
    else:  # a product, not boolean indexing: no host synchronisation on a GPU
        weight = label_mask.to(per_sample.dtype)
        total, count = (per_sample * weight).sum(), weight.sum()
    if reduction == "sum":
        return total
    entries = logits.shape[-1] if kind == "l2" else 1
    if isinstance(count, torch.Tensor):
        return total / (count * entries).clamp_min(1)
    return total / max(count * entries, 1)
