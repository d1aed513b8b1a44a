"""Optimizer construction shared by :func:`neuralnmf.fit` and :func:`neuralnmf.tensor.fit_tensor`.

An optimizer is given by name ("adam", "sgd", ...), as a ``torch.optim.Optimizer`` class or as an instance.
For a name or a class, parameter groups that share a learning rate are merged (one multi-tensor kernel per
step instead of one per group) and the fastest implementation the optimizer offers is chosen, unless
``kwargs`` asks for one: ``fused=True`` where torch has a fused kernel for the parameters' device, else
``foreach=True``. On the small dictionaries of Neural NMF the optimizer step is a large share of an epoch.
"""

from __future__ import annotations

import inspect
import math

import torch

__all__ = ["OPTIMIZERS", "build_optimizer", "relative_groups"]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def relative_groups(groups: list[dict]) -> list[dict]:
    """One group per parameter with learning rate ``lr * RMS(parameter)`` (``lr`` for an all-zero parameter).

    Adam-type optimizers move every entry by about ``lr`` per step whatever its scale; scaling by the RMS makes
    that a fixed fraction of the parameter instead. One host read per parameter, when the optimizer is built.
    """
    out = []
    for group in groups:
        for p in group["params"]:
            rms = float(p.detach().double().pow(2).mean().sqrt()) if p.numel() else 0.0
            out.append({"params": [p], "lr": group["lr"] * (rms if rms > 0 and math.isfinite(rms) else 1.0)})
    return out


def build_optimizer(optimizer, groups: list[dict], lr: float, kwargs: dict | None = None, *,
                    caller: str = "fit", relative: bool = False) -> torch.optim.Optimizer:
    """The optimizer for ``groups`` (dicts with "params" and "lr"); an Optimizer instance is returned as is.

    ``relative``: learning rates relative to each parameter's RMS (see :func:`relative_groups`).
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if relative:
        groups = relative_groups(groups)
    cls = OPTIMIZERS.get(optimizer.lower()) if isinstance(optimizer, str) else optimizer
    if cls is None or not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"{caller}: optimizer must be one of {sorted(OPTIMIZERS)}, a torch.optim class or "
                         f"instance, got {optimizer!r}")
    kwargs = dict(kwargs or {})
    merged: dict[float, list] = {}
    for group in groups:
        merged.setdefault(group["lr"], []).extend(group["params"])
    param_groups = [{"params": params, "lr": group_lr} for group_lr, params in merged.items()]
    signature = inspect.signature(cls).parameters
    if "fused" in signature and not ({"fused", "foreach"} & kwargs.keys()):
        try:
            return cls(param_groups, lr=lr, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device, dtype or option set
            pass
    if "foreach" in signature and not ({"fused", "foreach"} & kwargs.keys()):
        kwargs["foreach"] = True
    return cls(param_groups, lr=lr, **kwargs)
