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


def test_float32_data_with_a_singular_gram_is_solved_optimally():
    # hypothesis found it: float32 X, A with more columns than rows (singular Gram, the Lawson-Hanson fallback).
    # The float32 product A^T x left b outside the Gram's range, and the codes ran to 3e9 (KKT residual 0.4-0.8).
    X = torch.tensor([[6.7756, 0.0260, 7.8966, 0.1206, 1.4554], [1.0262, 5.1577, 1.3578, 1.7041, 3.8002],
                      [1.8728, 1.9716, 4.3316, 8.6776, 5.1344], [8.7504, 8.5658, 9.3593, 2.8303, 1.9923],
                      [6.3681, 4.3852, 9.1797, 7.7214, 4.6867]])
    A = torch.tensor([
        [-1.4035, -1.4412, -1.2621, 0.6589, 1.8787, 1.1116, 1.0219, -0.6425, 0.3813, -1.8117, -0.6400, 1.9269,
         -0.6509, 0.9738],
        [0.4625, 0.5554, -0.2668, -0.4748, 0.0869, -0.6227, -1.2750, 0.3961, -1.3267, -1.0121, 0.9651, -0.5353,
         0.6814, -1.8332],
        [0.5671, -1.0547, -1.9630, 0.3513, 1.3951, -0.8990, 0.6693, -0.5052, -0.3182, -1.3653, -0.0571, -0.3533,
         0.7379, 0.6481],
        [0.3980, 0.5948, 0.0872, 1.4480, -0.1129, 1.3409, -2.3789, -1.3165, 0.8727, 1.0141, -0.6737, -0.8990,
         0.5267, 0.7047],
        [-0.8285, 0.1745, -0.9860, 0.2766, -0.2721, -2.5398, -0.0297, -0.3984, 1.1786, -0.6859, -0.1108, -0.5605,
         -0.9895, -0.0956]])
    S, info = nnls(X, A, return_info=True)
    assert bool((info >= 0).all())
    assert kkt_residual(X, A, S) <= 1e-4
