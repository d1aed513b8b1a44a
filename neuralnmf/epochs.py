"""What :func:`neuralnmf.fit` and :func:`neuralnmf.tensor.fit_tensor` do around their epochs: the progress bar, the
callbacks, early stopping on the loss, and the intra-op threads of the loop (:mod:`neuralnmf.threads`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from ._optional import available, require
from .threads import loop_threads

__all__ = ["progress_bar", "EpochEnd"]


def progress_bar(epochs: int, progress: bool | None, desc: str):
    """A tqdm bar over epochs, or None. By default (``progress=None``) only when stderr is a terminal and tqdm is
    installed (the extra "progress"); ``progress=True`` without tqdm raises ImportError naming the extra."""
    if progress is None:
        progress = sys.stderr.isatty() and available("tqdm")
    if not progress:
        return None
    tqdm = require("tqdm.auto", "progress", "the progress bar (progress=True)").tqdm
    return tqdm(total=epochs, desc=desc, unit="epoch", mininterval=0.5)


class EpochEnd:
    """After each epoch: update the progress bar, run the callbacks, and decide whether to stop.

    Stops when a callback returns True, or once the relative decrease of ``logs["loss"]`` stays below ``tol`` for
    ``patience`` epochs. Use as a context manager around the loop: it runs the loop on the threads that
    :func:`neuralnmf.threads.loop_threads` picks for ``work`` (a step's largest product, multiply-adds; None:
    torch's setting) and closes the bar.
    """

    def __init__(self, epochs: int, progress: bool | None, desc: str, tol: float | None, patience: int,
                 callbacks: Iterable[Callable], work: float | None = None):
        self.threads = loop_threads(work)
        self.bar = progress_bar(epochs, progress, desc)
        self.tol, self.patience, self.callbacks = tol, patience, list(callbacks)
        self.best, self.calm = float("inf"), 0

    @property
    def needs_logs(self) -> bool:
        """Whether the per-epoch values must reach the host every epoch (a bar, callbacks or early stopping)."""
        return self.bar is not None or bool(self.callbacks) or self.tol is not None

    def __call__(self, epoch: int, logs: dict, model) -> bool:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
        stop = any(cb(epoch, logs, model) is True for cb in self.callbacks)
        if self.tol is not None:
            current = logs["loss"]
            self.calm = self.calm + 1 if self.best - current < self.tol * abs(self.best) else 0
            self.best = min(self.best, current)
            stop = stop or self.calm >= self.patience
        return stop

    def __enter__(self) -> "EpochEnd":
        self.threads.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.bar is not None:
                self.bar.close()
        finally:
            self.threads.__exit__(*exc)
