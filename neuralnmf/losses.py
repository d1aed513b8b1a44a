"""Losses of Neural NMF, batch first. Every term is a mean over the entries it counts (the papers' MSE).

* reconstruction: ||W (X - A_0 ... A_L S_L)||^2 / #observed entries (W: data mask, 1 = observed)
* energy: sum over layers l of ||S_{l-1} - A_l S_l||^2 / #entries (S_{-1} = X, masked by W)
* supervision: "l2" ||L (Y - B S_L)||^2 / (#labeled samples * classes) with one-hot Y, or "ce" the mean
  cross-entropy over labeled samples; L is the label mask, and unlabeled samples contribute nothing.

With mean normalisation the scale of a loss does not grow with the data, so one learning rate works across
sizes (Adam: about 1e-2 for U[0,1) initial dictionaries; plain gradient descent: about 1, as in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import sparse_products

__all__ = ["reconstruction_loss", "energy_loss", "supervision_loss", "masked_mse", "factorization_mse"]


def masked_mse(target: torch.Tensor, approx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (target - approx)^2 over the entries where mask is true (all entries without a mask)."""
    if mask is None:
        return F.mse_loss(approx, target)
    mask = mask.to(approx.dtype)
    return ((target - approx) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def factorization_mse(x: torch.Tensor, codes: torch.Tensor, dictionary: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (x - codes dictionary^T)^2: x (M, N), codes (M, k), dictionary (N, k).

    A sparse x is never densified, and neither is the product: with the expansion
    ||x||^2 - 2 <codes, x dictionary> + <codes^T codes, dictionary^T dictionary> the cost is O(nnz k + (M + N) k^2)
    in time and O((M + N) k) in memory. (In float32 the expansion loses relative precision when the fit is
    almost exact; sparse corpora are far from that.)
    """
    if x.layout == torch.strided:
        return masked_mse(x, F.linear(codes, dictionary), mask)  # codes @ dictionary^T, no transpose node
    if mask is not None:
        raise ValueError("a data mask is not supported with sparse data (the implicit zeros count as observed)")
    products = sparse_products.csr_pair(x)
    cross = (codes * sparse_products.matmul(x, dictionary)).sum()
    gram = ((codes.mT @ codes) * (dictionary.mT @ dictionary)).sum()
    return ((products.x.values() ** 2).sum() - 2 * cross + gram) / (x.shape[0] * x.shape[1])


def reconstruction_loss(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deepest-layer reconstruction: x (M, N) against A_0 ... A_L S_L."""
    return factorization_mse(x, output.codes[-1], model.dictionary(), data_mask)


def energy_loss(model, x: torch.Tensor, output, data_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over layers of the mean squared error of each layer's own factorization S_{l-1} ~ S_l A_l^T."""
    total, below = 0.0, x
    for l, (layer, codes) in enumerate(zip(model.layers, output.codes)):
        total = total + factorization_mse(below, codes, layer.A, data_mask if l == 0 else None)
        below = codes
    return total


def supervision_loss(logits: torch.Tensor, y: torch.Tensor, label_mask: torch.Tensor | None = None,
                     kind: str = "l2") -> torch.Tensor:
    """Label loss on the labeled samples only. logits (M, c); y (M,) class indices; label_mask (M,) bool."""
    if label_mask is not None:
        logits, y = logits[label_mask], y[label_mask]
    if y.numel() == 0:
        return logits.sum() * 0.0  # no labeled sample: zero, but still part of the graph
    if kind == "l2":
        return F.mse_loss(logits, F.one_hot(y, logits.shape[-1]).to(logits.dtype))
    if kind == "ce":
        return F.cross_entropy(logits, y)
    raise ValueError(f"supervision_loss: kind must be 'l2' or 'ce', got {kind!r}")
