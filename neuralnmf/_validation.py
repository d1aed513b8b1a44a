"""The checks of op results on devices that cannot raise from a kernel, and the switch that turns them off.

The CPU kernel raises on NaN/Inf input itself (a check is cheap there). A CUDA kernel cannot raise without stopping
the host until the GPU is done, so the CUDA ops report instead: columns whose right-hand side is NaN/Inf get
``info == -2`` and a NaN column of S (every column, when A is not finite). :func:`check_info` turns that into
``ValueError`` and warns about ``info == -1`` with one host synchronisation per call, while validation is on (the
default); training loops that want zero host synchronisations turn it off (:func:`set_validation`,
:func:`validation`).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

__all__ = ["NNLSConvergenceWarning", "set_validation", "validation", "validation_enabled", "check_info",
           "INFO_NOT_CONVERGED", "INFO_NON_FINITE"]


class NNLSConvergenceWarning(RuntimeWarning):
    """Some columns hit the iteration bound: their S is feasible (>= 0) but not certified optimal."""


# --- validation of device results ---------------------------------------------------------------------------

INFO_NOT_CONVERGED = -1  # iteration bound hit: S feasible, not certified optimal
INFO_NON_FINITE = -2  # CUDA only: the column's right-hand side is NaN/Inf (X or A); its S is NaN

_validation = True


def set_validation(enabled: bool) -> None:
    """Turn the checks of :func:`nnls` results on non-CPU devices on or off (process-wide; default on).

    On: NaN/Inf in X or A raises ``ValueError`` and columns at the iteration bound warn, as on the CPU, at the
    cost of one host synchronisation per call. Off: no synchronisation at all; bad columns come back as NaN
    with ``info == -2`` (see ``return_info``). The CPU path always checks (it costs nothing there).
    """
    global _validation
    _validation = bool(enabled)


def validation_enabled() -> bool:
    """Whether :func:`nnls` checks results on non-CPU devices (see :func:`set_validation`)."""
    return _validation


@contextlib.contextmanager
def validation(enabled: bool):
    """Context manager form of :func:`set_validation`, restoring the previous setting on exit::

        with neuralnmf.ops.validation(False):  # a training loop without host synchronisations
            ...
    """
    previous = _validation
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def _warn_not_converged(failed: int, total: int, max_iter) -> None:
    warnings.warn(
        f"nnls: {failed} of {total} columns hit the iteration bound (max_iter={max_iter}); "
        "their S is feasible but not certified optimal",
        NNLSConvergenceWarning,
        stacklevel=3,
    )


def _check_device_result(A: torch.Tensor, info: torch.Tensor, max_iter, data: str = "X") -> None:
    """Raise / warn as the CPU kernel does, from a device op's info, with one host synchronisation. ``data``
    names the input the columns come from (X, or AtX for :func:`nnls_from_products`)."""
    a_bad = (~torch.isfinite(A)).any()
    x_bad = (info == INFO_NON_FINITE).any()
    failed = (info == INFO_NOT_CONVERGED).sum()
    a_bad, x_bad, failed = torch.stack([a_bad.long(), x_bad.long(), failed.long()]).tolist()
    if a_bad:  # first: a bad A makes every column -2
        raise ValueError("nnls: A contains NaN or Inf")
    if x_bad:
        raise ValueError(f"nnls: {data} contains NaN or Inf")
    if failed:
        _warn_not_converged(failed, info.numel(), max_iter)


def check_info(A: torch.Tensor, info: torch.Tensor, max_iter, data: str = "X") -> None:
    """After an op: warn about columns at the iteration bound (CPU), or raise/warn from a device op's info."""
    if torch.compiler.is_compiling():
        return
    if info.device.type == "cpu":  # the CPU kernel raised on bad input already
        if info.numel() and int(info.min()) < 0:
            _warn_not_converged(int((info < 0).sum()), info.numel(), max_iter)
    elif _validation and info.device.type != "meta":
        _check_device_result(A, info, max_iter, data)
