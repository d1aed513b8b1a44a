"""The input checks of the metrics: tensors, floating point, integer labels, devices, sample masks (the tensor
check is :func:`neuralnmf._checks.check_tensor`, with its advice on converting numpy arrays and lists)."""

from __future__ import annotations

import torch

from .. import _checks


def _tensor(t, name: str) -> torch.Tensor:
    return _checks.check_tensor(t, "metrics", name)


def _floating(t, name: str) -> torch.Tensor:
    _tensor(t, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    return t


def _labels(y, name: str = "y") -> torch.Tensor:
    _tensor(y, name)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices (e.g. torch.long), got {y.dtype}; convert it with "
                        f"{name}.long()")
    return y


def _same_device(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{na} is on {a.device} but {nb} is on {b.device}")


def _sample_mask(mask, n: int, device, name: str) -> torch.Tensor | None:
    if mask is None:
        return None
    _tensor(mask, name)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = use the sample), got {mask.dtype}")
    if mask.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one entry per sample), got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the data is on {device}")
    return mask
