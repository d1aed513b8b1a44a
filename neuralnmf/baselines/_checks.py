"""Input validation shared by the baselines: clear errors that name the function, the argument and the problem.

Every check runs once, before the iterations; the value checks (finite, nonnegative, label range) synchronise
with the device once each, never inside a loop.
"""

from __future__ import annotations

import torch

from .. import sparse_products
from .._checks import check_generator, check_int, check_rank, check_ranks, check_real  # noqa: F401

FLOAT_DTYPES = (torch.float32, torch.float64)


SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr)


def check_data(x, fn: str, name: str = "x", *, allow_sparse: bool = False) -> torch.Tensor:
    """A 2-D float32/float64 tensor, dense (or sparse COO/CSR where ``allow_sparse``); shape and dtype only, values
    are checked with the mask."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.layout != torch.strided and not (allow_sparse and x.layout in SPARSE_LAYOUTS):
        allowed = "a dense (strided) or sparse COO/CSR" if allow_sparse else "a dense (strided)"
        raise TypeError(f"{fn}: {name} must be {allowed} tensor, got layout {x.layout}")
    if x.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D (samples, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{fn}: {name} must have at least one sample and one feature, got shape {tuple(x.shape)}")
    return x


def check_data_mask(mask, x: torch.Tensor, fn: str, name: str = "data_mask") -> torch.Tensor | None:
    """None, or a (M, N) bool / {0, 1} mask on x's device; returned as a float {0, 1} tensor of x's dtype.
    A sparse x takes no mask (its absent entries are observed zeros)."""
    if mask is None:
        return None
    if x.layout != torch.strided:
        raise ValueError(f"{fn}: {name} is not supported with a sparse x: a sparse matrix's absent entries are "
                         "observed zeros; pass a dense x to mask entries")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: {name} must have the shape of x {tuple(x.shape)} (samples, features), "
                         f"got {tuple(mask.shape)}")
    if mask.device != x.device:
        raise ValueError(f"{fn}: {name} is on {mask.device} but x is on {x.device}; they must be on the same device")
    if mask.dtype == torch.bool:
        return mask.to(x.dtype)
    if mask.is_complex():
        raise TypeError(f"{fn}: {name} must be bool or real {{0, 1}} values, got {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{fn}: {name} must hold only 0 and 1 (True = observed), found other values")
    return mask.to(x.dtype)


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
    if not bool(torch.isfinite(observed).all()):
        where = "" if mask is None else " (observed entries)"
        raise ValueError(f"{fn}: {name} contains NaN or Inf{where}")
    if bool((observed < 0).any()):
        raise ValueError(f"{fn}: {name} has negative entries (min {float(observed.min()):.4g}); "
                         "NMF requires nonnegative data")


def to_papers_orientation(x: torch.Tensor, mask: torch.Tensor | None):
    """The one transpose at the boundary: X = x^T (N, M) with hidden entries set to 0, and W = mask^T or None."""
    X = x.detach().mT.contiguous()
    if mask is None:
        return X, None
    W = mask.mT.contiguous()
    return torch.where(W > 0, X, torch.zeros((), dtype=X.dtype, device=X.device)), W


def check_labels(y, label_mask, num_classes, M: int, like: torch.Tensor, fn: str):
    """One-hot targets Y (c, M) with unlabeled columns zero, the column mask (M,), and c.

    ``y`` (M,) integer class indices; only labeled entries (``label_mask`` True) are read and range-checked, so
    unlabeled samples may carry any value (e.g. -1). ``label_mask`` None means every sample is labeled.
    ``num_classes`` None: 1 + the largest labeled class.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{fn}: y must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{fn}: y must hold integer class indices (e.g. torch.long), got {y.dtype}")
    if y.dim() != 1 or y.shape[0] != M:
        raise ValueError(f"{fn}: y must have shape ({M},), one class index per sample, got {tuple(y.shape)}")
    if y.device != like.device:
        raise ValueError(f"{fn}: y is on {y.device} but x is on {like.device}; they must be on the same device")
    if label_mask is None:
        labeled = torch.ones(M, dtype=torch.bool, device=like.device)
    else:
        if not isinstance(label_mask, torch.Tensor):
            raise TypeError(f"{fn}: label_mask must be a torch.Tensor or None, got {type(label_mask).__name__}")
        if label_mask.dim() != 1 or label_mask.shape[0] != M:
            raise ValueError(f"{fn}: label_mask must have shape ({M},), one flag per sample (True = labeled), "
                             f"got {tuple(label_mask.shape)}")
        if label_mask.device != like.device:
            raise ValueError(f"{fn}: label_mask is on {label_mask.device} but x is on {like.device}; "
                             "they must be on the same device")
        if label_mask.dtype != torch.bool:
            if label_mask.is_complex() or not bool(((label_mask == 0) | (label_mask == 1)).all()):
                raise ValueError(f"{fn}: label_mask must be bool (True = labeled) or hold only 0 and 1")
            label_mask = label_mask != 0
        labeled = label_mask
    y_lab = y[labeled]
    if num_classes is None:
        if y_lab.numel() == 0:
            raise ValueError(f"{fn}: no sample is labeled, so num_classes cannot be inferred; pass num_classes")
        num_classes = int(y_lab.max()) + 1
    num_classes = check_int(num_classes, fn, "num_classes", minimum=1)
    if y_lab.numel() and (int(y_lab.min()) < 0 or int(y_lab.max()) >= num_classes):
        raise ValueError(f"{fn}: labels of labeled samples must lie in [0, {num_classes - 1}] "
                         f"(num_classes={num_classes}), found [{int(y_lab.min())}, {int(y_lab.max())}]")
    col = labeled.to(like.dtype)
    safe = torch.where(labeled, y, torch.zeros((), dtype=y.dtype, device=y.device)).long()
    Y = torch.nn.functional.one_hot(safe, num_classes).to(like.dtype).T * col
    return Y, col, num_classes
