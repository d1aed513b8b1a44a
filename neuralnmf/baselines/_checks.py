"""Input validation shared by the baselines: clear errors that name the function, the argument and the problem.

Every check runs once, before the iterations; the value checks (finite, nonnegative, label range) synchronise
with the device once each, never inside a loop.
"""

from __future__ import annotations

import torch

from .. import _checks, sparse_products
from .._checks import (  # noqa: F401 (re-exported for the baselines)
    DEPRECATED, FLOAT_DTYPES, check_generator, check_int, check_rank, check_ranks, check_real, check_seed_or_generator,
    renamed,
)

SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr)


def check_data(x, fn: str, name: str = "x", *, allow_sparse: bool = False) -> torch.Tensor:
    """A 2-D float32/float64 tensor, dense (or sparse COO/CSR where ``allow_sparse``): :func:`_checks.check_data`
    without the values, which are checked with the mask (:func:`check_values`)."""
    return _checks.check_data(x, fn, name, sparse=allow_sparse, values=False)


def check_data_mask(mask, x: torch.Tensor, fn: str, name: str = "data_mask") -> torch.Tensor | None:
    """None, or a (M, N) bool / {0, 1} mask on x's device; returned as a float {0, 1} tensor of x's dtype.
    A sparse x takes no mask (its absent entries are observed zeros)."""
    if mask is not None and x.layout != torch.strided:
        raise ValueError(f"{fn}: {name} is not supported with a sparse x: a sparse matrix's absent entries are "
                         "observed zeros; pass a dense x to mask entries")
    return _checks.check_observed(mask, x, fn, name)


def check_values(x: torch.Tensor, mask: torch.Tensor | None, fn: str, name: str = "x") -> None:
    """Observed entries finite and nonnegative (entries the mask hides may hold anything, NaN included).

    A sparse x (no mask) is checked on its stored values after summing duplicates, never densified."""
    if x.layout != torch.strided:
        if mask is not None:
            raise ValueError(f"{fn}: data_mask is not supported with a sparse {name}: a sparse matrix's absent "
                             "entries are observed zeros; pass a dense x to mask entries")
        x = sparse_products.csr_pair(x).x.values()
        mask = None
    observed = x if mask is None else torch.where(mask > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    _checks.check_finite_nonnegative(observed, fn, name, where="" if mask is None else " (observed entries)")


def to_papers_orientation(x: torch.Tensor, mask: torch.Tensor | None):
    """The one transpose at the boundary: X = x^T (N, M) with hidden entries set to 0, and W = mask^T or None."""
    X = x.detach().mT.contiguous()
    if mask is None:
        return X, None
    W = mask.mT.contiguous()
    return torch.where(W > 0, X, torch.zeros((), dtype=X.dtype, device=X.device)), W


def check_labels(y, label_mask, num_classes, M: int, like: torch.Tensor, fn: str):
    """One-hot targets Y (c, M) with unlabeled columns zero, the column mask (M,), and c.

    ``y`` (M,) integer class indices, -1 = unlabeled; ``label_mask`` None means every sample whose label is not -1
    is labeled. The checks are :func:`neuralnmf._checks.check_labels`'s (the ones ``fit`` uses). ``num_classes``
    None: 1 + the largest labeled class.
    """
    y, labeled, num_classes = _checks.check_labels(y, label_mask, num_classes, M, like.device, fn,
                                                   require_labeled=False)
    col = labeled.to(like.dtype)
    Y = torch.nn.functional.one_hot(y, num_classes).to(like.dtype).T * col
    return Y, col, num_classes
