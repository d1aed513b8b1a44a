"""What the fitted tensor models share: per-level CP approximations and their accessors."""

from __future__ import annotations

import torch

from .._fitted import FittedModel
from . import _checks
from .cp import CPTensor, cp_to_tensor


class FittedTensorHierarchy(FittedModel):
    """A fitted hierarchical tensor decomposition: ``levels_[l]`` is the level-l ``CPTensor`` (l = 0 .. L).

    Level 0 is the rank-r_0 NCPD; level l approximates the tensor with rank r_l (Multi-HNTF, HNTF) or with an
    r_0-term CP tensor whose factors have rank <= r_l (Standard HNCPD).
    """

    _fitted_attr = "levels_"
    ranks: tuple[int, ...]
    levels_: list[CPTensor] | None = None

    def cp_tensor(self, level: int | None = None) -> CPTensor:
        """The level's approximation as a tensorly ``CPTensor`` (default: the deepest level)."""
        return self.levels_[self._level(level, "cp_tensor")]

    def reconstruct(self, level: int | None = None) -> torch.Tensor:
        """The full level-``level`` tensor (I_1, ..., I_N) (default: the deepest level)."""
        cp = self.levels_[self._level(level, "reconstruct")]
        return cp_to_tensor(cp[1], cp[0])


def check_fit(tensor, mask, fn):
    """Validated (X with hidden entries zeroed, float mask or None)."""
    return _checks.check_data(tensor, mask, fn, mask_name="data_mask")
