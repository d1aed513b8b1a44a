"""How many intra-op threads (``torch.set_num_threads``) the training loops of :func:`neuralnmf.fit` and
:func:`neuralnmf.tensor.fit_tensor` use.

A small problem cannot use threads: its products and solves take microseconds, and every parallel region waits
for all of torch's threads. When another process keeps a core busy, that wait is a scheduler time slice: a 3-layer
fit of the 90 x 87 toy matrix took 87.5 s for 500 epochs with torch's 2 threads and 5.8-10.1 s with one
(benchmarks/bench_threads.py and benchmarks/RESULTS.md have the measurements). So, by default, a loop whose
largest product per step is small (fewer than :data:`SMALL_WORK` multiply-adds: samples per step x features x the
first rank, stored entries for sparse data) runs on one thread, and torch's setting is restored after it; larger
problems keep torch's setting. :func:`set_loop_threads` fixes the count instead, as scikit-learn leaves it to
threadpoolctl: ``set_loop_threads(1)`` when several jobs share the cores, ``set_loop_threads(0)`` for torch's
own setting whatever the size.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["SMALL_WORK", "set_loop_threads", "get_loop_threads", "step_work", "loop_threads"]

SMALL_WORK = 2**24
"""Multiply-adds of a training step's largest product (about 17 million) below which the loops run on one thread:
such a product takes a few milliseconds on one core, the order of what a thread waits for a busy core."""

_setting: int | None = None


def set_loop_threads(threads: int | None) -> None:
    """The intra-op threads of the training loops: None (the default) chooses by problem size (one thread below
    :data:`SMALL_WORK`, torch's setting above), 0 keeps torch's setting, n >= 1 uses n threads."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise ValueError(f"set_loop_threads: threads must be None or an int >= 0, got {threads!r}")
    global _setting
    _setting = threads


def get_loop_threads() -> int | None:
    """What :func:`set_loop_threads` set (None: by problem size)."""
    return _setting


def step_work(x, width: int, batch_size: int | None = None) -> float | None:
    """Multiply-adds of ``x @ A`` for one step's batch of x (samples, ...) and A (..., width): stored entries of a
    sparse x, all entries of a dense one, times ``width``. None when x is not a tensor (a source of batches)."""
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        return None
    if x.layout == torch.sparse_coo:
        entries = x._nnz()
    elif x.layout != torch.strided:
        entries = x.values().numel()
    else:
        entries = x.numel()
    samples = max(int(x.shape[0]), 1)
    rows = samples if not batch_size else min(int(batch_size), samples)
    return entries * rows / samples * int(width)


def threads_for(work: float | None) -> int:
    """The thread count of a loop whose steps' largest product is ``work`` multiply-adds (None: unknown)."""
    if _setting is not None:
        return _setting if _setting > 0 else torch.get_num_threads()
    if work is not None and work < SMALL_WORK:
        return 1
    return torch.get_num_threads()


@contextlib.contextmanager
def loop_threads(work: float | None):
    """Run the block on :func:`threads_for` (work) intra-op threads; torch's setting is restored after it."""
    before = torch.get_num_threads()
    chosen = threads_for(work)
    if chosen != before:
        torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
