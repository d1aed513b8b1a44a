"""Large ranks and long pivoting chains. Written for a per-column solver that kept its Cholesky factor between
pivoting steps and updated it (4b21fbb, reverted in 78e3e31: S must be a function of the final support alone);
the solver on main refactors the support at every step and starts from a BLAS-3 guess of it
(tests/test_nnls_support_guess.py). These tests aim at what such solvers can get wrong: long chains of
exchanges, sets that hover around k/2 (where the solver switches between the factor of G_FF and that of
H_ZZ), large ranks, nearly collinear dictionaries, float32. Every answer is checked against
references that share nothing with the kernel: the KKT conditions, scipy.optimize.nnls, and a fresh
least-squares solve (torch.linalg.lstsq, QR) on the support the kernel found.
"""

import pytest
import torch
from conftest import DTYPES, assert_objective_matches_scipy, kkt_residual, make_generator

import neuralnmf
from neuralnmf import nnls
from neuralnmf.ops import nnls_from_products

KKT_TOL = {torch.float64: 1e-12, torch.float32: 1e-4}
OBJ_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@pytest.fixture
def gen():
    return make_generator(2718)


def fresh_support_solution(X, A, S):
    """For each column, the least-squares solution on the support S found, by QR (lstsq) in float64: what a
    fresh solve on that support gives, independent of any factor the kernel kept."""
    X, A, S = X.double(), A.double(), S.double()
    out = torch.zeros_like(S)
    for j in range(S.shape[1]):
        P = (S[:, j] > 0).nonzero().flatten()
        if P.numel():
            out[P, j] = torch.linalg.lstsq(A[:, P], X[:, j : j + 1], driver="gelsd").solution.flatten()
    return out


def assert_exact(X, A, S, dtype, support_rtol):
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]
    fresh = fresh_support_solution(X, A, S)
    scale = fresh.abs().amax(0, keepdim=True).clamp_min(1e-300)
    err = ((S.double() - fresh).abs() / scale).max().item()
    assert err <= support_rtol, f"differs from a fresh solve on its support by {err:.2e} (relative)"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,k,M", [(500, 64, 60), (300, 128, 25), (400, 256, 8)])
@pytest.mark.parametrize("data", ["uniform", "gaussian"])
def test_large_ranks(N, k, M, dtype, data, gen):
    """k = 64 to 256: supports near k/2 (uniform data) switch sides and take several exchanges."""
    if data == "uniform":
        A = torch.rand(N, k, generator=gen, dtype=torch.float64).to(dtype)
        X = torch.rand(N, M, generator=gen, dtype=torch.float64).to(dtype)
    else:
        A = torch.randn(N, k, generator=gen, dtype=torch.float64).to(dtype)
        X = torch.randn(N, M, generator=gen, dtype=torch.float64).to(dtype)
    S, info = nnls(X, A, return_info=True)
    assert bool((info == 0).all())  # block principal pivoting itself converged: no fallback hid a wrong update
    support = (S > 0).sum(0).double()
    assert support.min() >= 1 and support.max() < k  # both sides of the factor are exercised
    assert_exact(X, A, S, dtype, 1e-9 if dtype == torch.float64 else 1e-2)
    if dtype == torch.float64:
        assert_objective_matches_scipy(X, A, S, OBJ_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_warm_starts_far_from_the_answer(dtype, gen):
    """A warm start on the complement of the support (and on every index, and on none) makes the solver
    exchange many indices over many steps, each an update of the kept factor; the answer is the cold one."""
    N, k, M = 400, 96, 40
    A = torch.rand(N, k, generator=gen, dtype=torch.float64).to(dtype)
    X = torch.rand(N, M, generator=gen, dtype=torch.float64).to(dtype)
    cold = nnls(X, A)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for init in (cold == 0, torch.ones_like(cold, dtype=torch.bool), torch.zeros_like(cold, dtype=torch.bool),
                 torch.rand(cold.shape, generator=gen) > 0.8):
        warm, info = nnls(X, A, init=init, return_info=True)
        assert bool((info >= 0).all())
        assert torch.equal(warm > 0, cold > 0)
        torch.testing.assert_close(warm, cold, rtol=tol, atol=tol * cold.abs().max().item())
    assert_exact(X, A, cold, dtype, 1e-9 if dtype == torch.float64 else 1e-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_codes_with_many_pivots(dtype, gen):
    """X = A S_true + noise with mixed-sign A: the unconstrained solution's positive set is far from the
    support, so the pivoting runs several full exchanges (and the backup rule) on a dictionary of rank 64."""
    N, k, M = 200, 64, 80
    A = torch.randn(N, k, generator=gen, dtype=torch.float64)
    S_true = torch.rand(k, M, generator=gen, dtype=torch.float64) * (torch.rand(k, M, generator=gen) < 0.2)
    X = A @ S_true + 0.3 * torch.randn(N, M, generator=gen, dtype=torch.float64)
    A, X = A.to(dtype), X.to(dtype)
    S, info = nnls(X, A, return_info=True)
    assert bool((info >= 0).all())
    assert_exact(X, A, S, dtype, 1e-9 if dtype == torch.float64 else 1e-2)
    if dtype == torch.float64:
        assert_objective_matches_scipy(X, A, S, OBJ_TOL[dtype])


# (kind, KKT bound, objective bound vs scipy). At 1e-7 apart the Gram matrix is singular to working precision
# (cond(A) ~ 5e8) and Lawson-Hanson solves every column on normal equations: scipy's QR on A itself is more
# accurate there, by ~1e-10 of the data's energy.
COLLINEAR = [("near_duplicates_1e-4", 1e-11, 1e-12), ("near_duplicates_1e-7", 1e-9, 5e-10),
             ("low_rank", 1e-9, 1e-10), ("k_greater_than_n", 1e-9, 1e-10)]


@pytest.mark.parametrize("kind,kkt_tol,obj_tol", COLLINEAR)
def test_nearly_collinear_dictionaries(kind, kkt_tol, obj_tol, gen):
    """Updates meet tiny Schur complements (near-duplicate columns, rank deficiency): whatever path the solver
    takes (a rebuild, the other side, Lawson-Hanson), the answer is optimal."""
    if kind.startswith("near_duplicates"):
        eps = float(kind.split("_")[-1])
        A = torch.rand(300, 64, generator=gen, dtype=torch.float64)
        A[:, 32:48] = A[:, 0:16] * (1 + eps * torch.rand(300, 16, generator=gen, dtype=torch.float64))
    elif kind == "low_rank":
        A = torch.rand(300, 20, generator=gen, dtype=torch.float64) @ torch.rand(20, 64, generator=gen,
                                                                                dtype=torch.float64)
    else:
        A = torch.rand(40, 96, generator=gen, dtype=torch.float64)
    X = torch.rand(A.shape[0], 30, generator=gen, dtype=torch.float64)
    S, info = nnls(X, A, return_info=True)
    assert bool((info >= 0).all())
    assert kkt_residual(X, A, S) <= kkt_tol
    assert_objective_matches_scipy(X, A, S, obj_tol)


def test_products_path_matches_data_path(gen):
    """nnls_from_products (A^T X given) runs the same solver on the same right-hand sides: same supports, and
    the same S to round-off."""
    A = torch.rand(500, 128, generator=gen, dtype=torch.float64)
    X = torch.rand(500, 50, generator=gen, dtype=torch.float64)
    S = nnls(X, A)
    S2 = nnls_from_products(A.T @ X, A)
    assert torch.equal(S > 0, S2 > 0)
    torch.testing.assert_close(S2, S, rtol=1e-9, atol=1e-12)


def test_reference_agrees_at_rank_128(gen):
    """The pure-torch reference (batched masked Cholesky, no updates) gives the same answer."""
    A = torch.rand(400, 128, generator=gen, dtype=torch.float64)
    X = torch.rand(400, 30, generator=gen, dtype=torch.float64)
    S = nnls(X, A)
    S_ref, info_ref = neuralnmf._reference.nnls_reference(X, A)
    assert bool((info_ref >= 0).all())
    torch.testing.assert_close(S, S_ref, rtol=1e-9, atol=1e-12 * S_ref.abs().max().item())
