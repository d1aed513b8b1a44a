"""Nonnegativity projection for any torch.optim optimizer: clamp constrained parameters after each step.

Modules declare which of their parameters must stay nonnegative in a class attribute ``_nonnegative``
(names of parameters); :func:`nonnegative_parameters` collects them from a model.

    projection = NonnegativeProjection(model)
    handle = projection.attach(optimizer)   # clamps after every optimizer.step()
    projection()                            # or by hand
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["NonnegativeProjection", "nonnegative_parameters"]


def nonnegative_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of `module` and its submodules declared nonnegative (``_nonnegative`` names)."""
    params, seen = [], set()
    for m in module.modules():
        for name in getattr(m, "_nonnegative", ()):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter) and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


class NonnegativeProjection:
    """Projects parameters onto the nonnegative orthant (in place): p <- max(p, 0); for a module, then onto the
    trees of its tree levels (every submodule's ``keep_tree_()``, :meth:`neuralnmf.NNLSLayer.keep_tree_`).

    Args:
        params: a module (its declared nonnegative parameters are used) or an iterable of tensors.
    """

    def __init__(self, params: nn.Module | Iterable[torch.Tensor]):
        self.params = nonnegative_parameters(params) if isinstance(params, nn.Module) else list(params)
        self.trees = [m for m in params.modules() if hasattr(m, "keep_tree_")] if isinstance(params, nn.Module) else []

    @torch.no_grad()
    def __call__(self) -> None:
        groups: dict[tuple, list[torch.Tensor]] = {}
        for p in self.params:  # one multi-tensor clamp per (device, dtype)
            groups.setdefault((p.device, p.dtype), []).append(p)
        for tensors in groups.values():
            torch._foreach_clamp_min_(tensors, 0.0)
        for module in self.trees:
            module.keep_tree_()

    def attach(self, optimizer: torch.optim.Optimizer):
        """Run the projection after every ``optimizer.step()``; returns a handle with ``.remove()``."""
        return optimizer.register_step_post_hook(lambda opt, args, kwargs: self())

    def __repr__(self) -> str:
        return f"NonnegativeProjection({len(self.params)} parameters)"
