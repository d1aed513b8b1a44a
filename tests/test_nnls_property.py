"""Property-based test: on any random problem, the answer is optimal (KKT) and as good as scipy's."""

import numpy as np
import torch
from conftest import assert_objective_matches_scipy, kkt_residual
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralnmf import nnls


@st.composite
def problems(draw):
    N = draw(st.integers(1, 40))
    k = draw(st.integers(1, 24))
    M = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "gaussian", "sparse", "duplicates", "low_rank"]))
    if kind == "uniform":
        A = rng.random((N, k))
    elif kind == "gaussian":
        A = rng.standard_normal((N, k))
    elif kind == "sparse":
        A = rng.random((N, k)) * (rng.random((N, k)) < 0.3)
    elif kind == "duplicates":
        A = rng.random((N, k))
        A[:, rng.integers(0, k, size=k)] = A[:, rng.integers(0, k, size=k)]
    else:
        r = max(1, min(N, k) // 2)
        A = rng.random((N, r)) @ rng.random((r, k))
    X = rng.standard_normal((N, M)) if draw(st.booleans()) else rng.random((N, M))
    scale = 10.0 ** draw(st.integers(-8, 8))
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    return torch.from_numpy(X * scale).to(dtype), torch.from_numpy(A).to(dtype)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_random_problems_are_solved_optimally(problem):
    X, A = problem
    S, info = nnls(X, A, return_info=True)
    assert bool((info >= 0).all())
    f64 = X.dtype == torch.float64
    assert kkt_residual(X, A, S) <= (1e-10 if f64 else 1e-4)
    assert_objective_matches_scipy(X, A, S, 1e-10 if f64 else 1e-5)
