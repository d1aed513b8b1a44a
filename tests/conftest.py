"""Shared helpers: problem generators and the KKT residual every optimality test measures."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

DTYPES = [torch.float64, torch.float32]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small problems: on a shared 2-core machine two threads on tiny matrices
    mostly wait for each other (up to 40x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def matrix_with_condition(N: int, k: int, cond: float, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """(N, k) matrix with singular values log-spaced from 1 to 1/cond (N >= k)."""
    U, _ = torch.linalg.qr(torch.randn(N, k, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(cond), k, dtype=torch.float64)
    return ((U * s) @ V.T).to(dtype)


def kkt_residual(X: torch.Tensor, A: torch.Tensor, S: torch.Tensor) -> float:
    """Largest relative violation of the KKT conditions of min_{S>=0} ||X - A S||, in float64.

    With y = A^T (A S - X): dual feasibility y >= 0, stationarity y = 0 on the support of S. Each column's
    violation is relative to max_i ||a_i|| * (||x_j|| + ||A s_j||), the size of the terms y is made of.
    Primal feasibility (S >= 0) is asserted, not measured: it must hold exactly.
    """
    X, A, S = X.double(), A.double(), S.double()
    assert bool((S >= 0).all()), "S has negative entries"
    assert bool(torch.isfinite(S).all()), "S is not finite"
    AS = A @ S
    y = A.mT @ (AS - X)
    col = torch.linalg.vector_norm(A, dim=-2).amax(-1, keepdim=True).unsqueeze(-1)
    scale = col * (torch.linalg.vector_norm(X, dim=-2, keepdim=True) + torch.linalg.vector_norm(AS, dim=-2, keepdim=True))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    dual = (-y).clamp_min(0) / scale
    stationarity = (y.abs() * (S > 0)) / scale
    if y.numel() == 0:
        return 0.0
    return max(dual.max().item(), stationarity.max().item())


def objective(X, A, S) -> np.ndarray:
    """Per-column ||x_j - A s_j||^2 in float64."""
    return ((X.double() - A.double() @ S.double()) ** 2).sum(-2).numpy()


def scipy_nnls(X: torch.Tensor, A: torch.Tensor) -> np.ndarray:
    """Column-by-column scipy.optimize.nnls: the independent reference."""
    An, Xn = A.double().numpy(), X.double().numpy()
    out = np.zeros((An.shape[1], Xn.shape[1]))
    for j in range(Xn.shape[1]):
        out[:, j] = scipy.optimize.nnls(An, Xn[:, j], maxiter=50 * max(An.shape[1], 1))[0]
    return out


def assert_objective_matches_scipy(X, A, S, rtol):
    """Our objective is no worse than scipy's (up to rtol of the data's energy) for every column."""
    ref = torch.from_numpy(scipy_nnls(X, A))
    ours, theirs = objective(X, A, S), objective(X, A, ref)
    energy = (X.double() ** 2).sum(0).numpy() + 1e-300
    excess = (ours - theirs) / energy
    assert excess.max() <= rtol, f"objective worse than scipy by {excess.max():.3e} (relative)"


@pytest.fixture
def gen():
    return make_generator(1234)
