"""The published experiments' exact random starts, drawn from numpy's legacy ``RandomState`` streams.

The library draws its random starts from ``torch.Generator``. The papers drew theirs from numpy, and their
10-trial means are reproduced to all printed digits only from the same numbers; these helpers make them, each
from a *local* ``numpy.random.RandomState`` (numpy's global RNG is never read or changed), and return torch
tensors to pass as ``init`` (protocols §3.3):

* Multi-HNTF: ``np.random.seed(i)`` then ``np.random.rand(r_prev, r)`` per layer -> :func:`numpy_uniform`.
* HNTF-1/2/3: tensorly 0.4.3 ``init='random', random_state=i`` -> :func:`tensorly_random_factors`.
* Standard HNCPD: scikit-learn ``NMF(init='random', random_state=i)`` -> :func:`sklearn_nmf_random_init`.
"""

from __future__ import annotations

import numpy as np
import torch

from .baselines import sklearn_scaled_start

__all__ = ["numpy_uniform", "tensorly_random_factors", "sklearn_nmf_random_init"]


def _tensor(a, dtype, device):
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype=dtype, device=device)


def numpy_uniform(shapes, seed: int, *, dtype=torch.float64, device=None) -> list[torch.Tensor]:
    """Consecutive ``rand(*shape)`` draws from ``RandomState(seed)``: the paper's W starts of Multi-HNTF."""
    rng = np.random.RandomState(seed)
    return [_tensor(rng.rand(*shape), dtype, device) for shape in shapes]


def tensorly_random_factors(shape, rank: int, random_state: int, *, dtype=torch.float64,
                            device=None) -> list[torch.Tensor]:
    """tensorly 0.4.3 ``init='random'``: ``RandomState(random_state).random_sample((I_n, rank))`` per mode."""
    rng = np.random.RandomState(random_state)
    return [_tensor(rng.random_sample((int(s), rank)), dtype, device) for s in shape]


def sklearn_nmf_random_init(X: torch.Tensor, k: int, random_state: int):
    """scikit-learn's ``NMF(init='random', random_state=s)`` start for X (n_samples, n_features) >= 0.

    ``avg = sqrt(mean(X) / k)``; H = |avg * randn(k, n_features)| is drawn first, then
    W = |avg * randn(n_samples, k)|, from ``RandomState(s)``. Returns (W, H) on X's dtype and device.
    """
    rng = np.random.RandomState(random_state)
    return sklearn_scaled_start(X, k, lambda shape: torch.from_numpy(rng.randn(*shape)))
