"""What the fitted hierarchical baselines share: per-layer factors and batch-first accessors.

A fitted model holds, in the papers' orientation (X = x^T, N features x M samples):
``A_[l]`` (k_{l-1}, k_l) with k_{-1} = N, ``S_[l]`` (k_l, M), and ``B_`` (num_classes, k_L) or None, so that
X ~ A_[0] A_[1] ... A_[l] S_[l] at every depth l. What ``fit`` sets ends with an underscore, as in scikit-learn and
the tensor baselines; the old names (``A``, ``S``, ``B``, ...) still work, with a DeprecationWarning. Depths are 0-based and may be negative, as in Python indexing
and :class:`neuralnmf.NeuralNMF`.
"""

from __future__ import annotations

import torch

from .._fitted import FittedModel, RenamedAttribute
from . import _checks


class FittedHierarchy(FittedModel):
    """Accessors of a fitted hierarchical factorization (HierarchicalNMF, DeepNMF)."""

    _fitted_attr = "A_"
    A_: list[torch.Tensor] | None
    S_: list[torch.Tensor] | None
    B_: torch.Tensor | None
    A, S, B, num_classes = (RenamedAttribute("A_"), RenamedAttribute("S_"), RenamedAttribute("B_"),
                            RenamedAttribute("num_classes_"))

    def _depth(self, depth, what: str) -> int:
        return self._level(depth, what, "depth")

    def dictionary(self, depth: int | None = None) -> torch.Tensor:
        """Topics of layer ``depth`` (default: the last) over the input features: A[0] ... A[depth], (N, k)."""
        depth = self._depth(depth, "dictionary")
        D = self.A_[0]
        for A in self.A_[1 : depth + 1]:
            D = D @ A
        return D

    def codes(self, depth: int | None = None) -> torch.Tensor:
        """Batch-first representation of layer ``depth`` (default: the last): S[depth]^T, (M, k)."""
        depth = self._depth(depth, "codes")
        return self.S_[depth].mT

    def reconstruct(self, depth: int | None = None) -> torch.Tensor:
        """Batch-first approximation of x at ``depth`` (default: the last): (A[0] ... A[depth] S[depth])^T, (M, N)."""
        depth = self._depth(depth, "reconstruct")
        return self.S_[depth].mT @ self.dictionary(depth).mT

    def predict(self) -> torch.Tensor:
        """(M,) class of each training sample from the learned classifier: argmax_c (B S[-1])[c, j]."""
        self._require_fit("predict")
        if self.B_ is None:
            raise ValueError(f"{type(self).__name__}.predict: the model was fitted without labels (no classifier B)")
        return (self.B_ @ self.S_[-1]).argmax(0)


def check_fit_inputs(x, y, label_mask, num_classes, lam, data_mask, fn):
    """Validated (X (N, M) with hidden entries zeroed, W (N, M) or None, labels or None, lam)."""
    _checks.check_data(x, fn)
    mask = _checks.check_data_mask(data_mask, x, fn)
    _checks.check_values(x, mask, fn)
    lam = _checks.check_real(lam, fn, "lam")
    X, W = _checks.to_papers_orientation(x, mask)
    labels = None
    if y is not None:
        labels = _checks.check_labels(y, label_mask, num_classes, X.shape[1], X, fn)
    elif label_mask is not None or num_classes is not None:
        raise ValueError(f"{fn}: label_mask and num_classes need labels y")
    return X, W, labels, lam
