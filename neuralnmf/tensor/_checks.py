"""Input validation of the tensor models: clear errors that name the function, the argument and the problem.

Every check runs once, before any iteration; value checks (finite, nonnegative) read one scalar back from the
device each, never inside a training loop.
"""

from __future__ import annotations

import numbers

import torch

from .. import _checks
from .._checks import (  # noqa: F401 (re-exported for the tensor modules)
    FLOAT_DTYPES, check_generator, check_int, check_level, check_rank, check_ranks, check_real,
    DEPRECATED, check_labels, check_seed_or_generator, check_shape, renamed,
)


def check_tensor(X, fn: str, name: str = "tensor", *, min_ndim: int = 2) -> torch.Tensor:
    """A dense float32/float64 tensor with values (not meta) and at least ``min_ndim`` modes, none of them empty
    (shape and dtype only); the type and dtype checks are :mod:`neuralnmf._checks`'s."""
    X = _checks.check_has_values(_checks.check_float(_checks.check_tensor(X, fn, name), fn, name), fn, name)
    if X.layout != torch.strided:
        raise TypeError(f"{fn}: {name} must be a dense (strided) tensor, got layout {X.layout}; pass "
                        f"{name}.to_dense()")
    if X.dim() < min_ndim:
        raise ValueError(f"{fn}: {name} must have at least {min_ndim} modes (I_1, ..., I_N), got shape "
                         f"{tuple(X.shape)}")
    if any(s == 0 for s in X.shape):
        raise ValueError(f"{fn}: {name} has an empty mode, shape {tuple(X.shape)}")
    return X


def check_mask(mask, X: torch.Tensor, fn: str, name: str = "mask") -> torch.Tensor | None:
    """None, or a mask of X's shape (bool or {0, 1}, 1 = observed as in tensorly) as a float tensor of X's dtype."""
    return _checks.check_observed(mask, X, fn, name, "the tensor")


def check_values(X: torch.Tensor, mask: torch.Tensor | None, fn: str, name: str = "tensor") -> torch.Tensor:
    """Observed entries finite and nonnegative; returns X with the hidden entries set to 0 (never modifies X)."""
    if mask is not None:
        X = torch.where(mask > 0, X, torch.zeros((), dtype=X.dtype, device=X.device))
    _checks.check_finite_nonnegative(X, fn, name, where="" if mask is None else " (observed entries)",
                                     need="nonnegative factorizations need nonnegative data")
    return X


def check_data(X, mask, fn: str, *, min_ndim: int = 2, name: str = "tensor", mask_name: str = "mask"):
    """(X with hidden entries zeroed and detached, float mask or None) after every check above."""
    X = check_tensor(X, fn, name, min_ndim=min_ndim)
    m = check_mask(mask, X, fn, mask_name)
    return check_values(X.detach(), m, fn, name), m


def check_mode(mode, ndim: int, fn: str, name: str = "mode") -> int:
    """An integer mode index in [-ndim, ndim), returned in [0, ndim)."""
    if isinstance(mode, bool) or not isinstance(mode, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer, got {mode!r}")
    if not -ndim <= int(mode) < ndim:
        raise ValueError(f"{fn}: {name} must be in [-{ndim}, {ndim}) for a {ndim}-way tensor, got {mode}")
    return int(mode) % ndim


def check_matrix(t, shape: tuple[int, int], fn: str, name: str, like: torch.Tensor | None = None,
                 *, nonnegative: bool = True) -> torch.Tensor:
    """A finite (nonnegative) 2-D tensor of the given shape (and of ``like``'s dtype and device)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if like is not None:
        if t.dtype != like.dtype:
            raise TypeError(f"{fn}: {name} has dtype {t.dtype} but the tensor has {like.dtype}; they must match")
        if t.device != like.device:
            raise ValueError(f"{fn}: {name} is on {t.device} but the tensor is on {like.device}")
    elif t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf")
    if nonnegative and bool((t < 0).any()):
        raise ValueError(f"{fn}: {name} has negative entries; it must be nonnegative")
    return t
