"""What every fitted (not trainable) model shares: the error before ``fit``, and levels of its hierarchy counted
as in :class:`neuralnmf.NeuralNMF` (0 = finest, negative from the deepest, None = the deepest).

The matrix baselines (:mod:`neuralnmf.baselines`) and the tensor baselines (:mod:`neuralnmf.tensor`) build their
accessors on it.
"""

from __future__ import annotations

import warnings

from . import _checks

__all__ = ["FittedModel", "RenamedAttribute"]


class RenamedAttribute:
    """A fitted attribute's old name (before scikit-learn's trailing underscore, the convention of every fitted
    model here): reads and writes go to ``new`` with a DeprecationWarning."""

    def __init__(self, new: str):
        self.new = new

    def __set_name__(self, owner, name: str) -> None:
        self.old = name

    def _warn(self, obj) -> None:
        warnings.warn(f"{type(obj).__name__}.{self.old} is deprecated and will be removed; use .{self.new} (what fit "
                      "sets ends with an underscore, as in scikit-learn)", DeprecationWarning, stacklevel=3)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        self._warn(obj)
        return getattr(obj, self.new)

    def __set__(self, obj, value) -> None:
        self._warn(obj)
        setattr(obj, self.new, value)


class FittedModel:
    """Base of fitted models; ``_fitted_attr`` names the attribute that is None until ``fit``."""

    _fitted_attr = ""

    def _require_fit(self, what: str) -> None:
        if getattr(self, self._fitted_attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.{what}: the model is not fitted yet; call fit(...) first")

    def _level(self, level, what: str, name: str = "level") -> int:
        """``level`` in 0 .. count-1 (None: the deepest) for a fitted model with ``count`` levels."""
        self._require_fit(what)
        return _checks.check_level(level, len(getattr(self, self._fitted_attr)), f"{type(self).__name__}.{what}", name)
