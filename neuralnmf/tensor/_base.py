"""What the fitted tensor baselines share: per-level CP approximations and the accessors of the models."""

from __future__ import annotations

import torch

from . import _checks
from .cp import CPTensor, as_factors, cp_to_tensor
from .ncpd import METHODS, ncpd


class FittedTensorHierarchy:
    """A fitted hierarchical tensor decomposition: ``levels_[l]`` is the level-l ``CPTensor`` (l = 0 .. L).

    Level 0 is the rank-r_0 NCPD; level l approximates the tensor with rank r_l (Multi-HNTF, HNTF) or with an
    r_0-term CP tensor whose factors have rank <= r_l (Standard HNCPD).
    """

    ranks: tuple[int, ...]
    levels_: list[CPTensor] | None = None

    def _require_fit(self, what: str) -> None:
        if self.levels_ is None:
            raise RuntimeError(f"{type(self).__name__}.{what}: the model is not fitted yet; call fit(tensor) first")

    def _level(self, level, what: str) -> int:
        self._require_fit(what)
        n = len(self.levels_)
        if level is None:
            return n - 1
        if isinstance(level, bool) or not isinstance(level, int) or not -n <= level < n:
            raise ValueError(f"{type(self).__name__}.{what}: level must be an integer in [-{n}, {n}), got {level!r}")
        return level % n

    def cp_tensor(self, level: int | None = None) -> CPTensor:
        """The level's approximation as a tensorly ``CPTensor`` (default: the deepest level)."""
        return self.levels_[self._level(level, "cp_tensor")]

    def reconstruct(self, level: int | None = None) -> torch.Tensor:
        """The full level-``level`` tensor (I_1, ..., I_N) (default: the deepest level)."""
        cp = self.levels_[self._level(level, "reconstruct")]
        return cp_to_tensor(cp[1], cp[0])


def first_layer(X, M, rank, factors, method, kwargs, fn):
    """The rank-r_0 factors: the given ones (CPTensor or list, checked) or an NCPD of X (``method``, ``kwargs``)."""
    if factors is not None:
        return as_factors(factors, fn, "factors", shape=X.shape, rank=rank, like=X)
    if method not in METHODS:
        raise ValueError(f"{fn}: ncpd must be one of {METHODS}, got {method!r}")
    cp = ncpd(X, rank, method=method, mask=M, **(kwargs or {}))
    return list(cp[1])


def check_fit(tensor, mask, fn):
    """Validated (X with hidden entries zeroed, float mask or None)."""
    return _checks.check_data(tensor, mask, fn)
