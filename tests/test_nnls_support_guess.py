"""The CPU kernel guesses the supports of each block of columns with BLAS-3 work (a few projected Gauss-Seidel
sweeps on the dual problem, csrc/cpu/support_predict.{h,cpp}) and starts the exact per-column solver there.

The guess may only change how long a column takes, never its answer: the solver returns the solution of a
fresh factorization on the support it ends at, so a guessed start must give the same S, to the bit, as a cold
one (init = every variable passive, the solver's own start) wherever the optimal support is unique, and an
optimal S (KKT, scipy's objective) where it is not. The inputs aim at what a guess can get wrong: supports far
from the unconstrained solution (ranks 32 to 256, many negative entries of H b), zero and repeated columns,
columns that are columns of A (degenerate: exact zeros of both x and the dual), planted sparse codes, nearly
collinear dictionaries, magnitudes far apart, several blocks of columns (512 per block).
"""

import pytest
import torch
from conftest import DTYPES, assert_objective_matches_scipy, kkt_residual, make_generator, matrix_with_condition

from neuralnmf import nnls
from neuralnmf.ops import nnls_from_products

pytestmark = pytest.mark.usefixtures("one_thread")

KKT_TOL = {torch.float64: 1e-12, torch.float32: 1e-4}
OBJ_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@pytest.fixture
def gen():
    return make_generator(1817)


def cold(X, A):
    """The solver's own start (every variable passive), which the guess replaces."""
    return nnls(X, A, init=torch.ones(A.shape[1], X.shape[1], dtype=torch.bool))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,k,M", [(500, 32, 1100), (500, 64, 600), (300, 128, 530), (400, 256, 40)])
@pytest.mark.parametrize("data", ["uniform", "gaussian"])
def test_guessed_start_gives_the_cold_start_bits(N, k, M, dtype, data, gen):
    """Uniform data puts the support near k/2 with about k/3 negative entries of H b per column; Gaussian data
    about k/2. The answer is unique: the guessed and the cold start must agree to the bit."""
    make = torch.rand if data == "uniform" else torch.randn
    A = make(N, k, generator=gen, dtype=torch.float64).to(dtype)
    X = make(N, M, generator=gen, dtype=torch.float64).to(dtype)
    S, info = nnls(X, A, return_info=True)
    assert bool((info == 0).all())
    assert torch.equal(S, cold(X, A))
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]
    # the sparse path (products given) guesses too
    AtX = A.T @ X
    assert torch.equal(nnls_from_products(AtX, A), nnls_from_products(AtX, A, init=torch.ones_like(S, dtype=torch.bool)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [32, 96])
def test_degenerate_and_repeated_columns(k, dtype, gen):
    """Zero columns, columns of A itself (the optimum has exact zeros in x and in the dual at once), planted
    sparse codes, a column repeated across the block and magnitudes 1e-150 to 1e150 (float32: 1e-15 to 1e15), in one call."""
    N, e = 300, (150 if dtype == torch.float64 else 15)
    A = torch.rand(N, k, generator=gen, dtype=torch.float64)
    planted = torch.rand(k, 200, generator=gen, dtype=torch.float64) * (torch.rand(k, 200, generator=gen) < 0.1)
    parts = [
        torch.rand(N, 300, generator=gen, dtype=torch.float64),
        torch.zeros(N, 40, dtype=torch.float64),
        A[:, torch.arange(60) % k],
        A @ planted,
        torch.rand(N, 1, generator=gen, dtype=torch.float64).expand(N, 100),
        torch.rand(N, 60, generator=gen, dtype=torch.float64) * torch.logspace(-e, e, 60, dtype=torch.float64),
    ]
    X = torch.cat(parts, dim=1)[:, torch.randperm(760, generator=gen)]
    X, A = X.to(dtype), A.to(dtype)
    S = nnls(X, A)
    assert bool((S >= 0).all()) and bool(torch.isfinite(S).all())
    amax = X.abs().amax(0).double()
    scale = torch.where(amax > 0, amax, torch.ones_like(amax))
    assert kkt_residual(X / scale.to(dtype), A, S / scale.to(dtype)) <= KKT_TOL[dtype]
    assert_objective_matches_scipy(X / scale.to(dtype), A, S / scale.to(dtype), OBJ_TOL[dtype])
    ref = cold(X, A)
    # zero columns: S = 0 exactly; elsewhere the same objective as the cold start (supports of degenerate
    # columns may differ by variables that are zero at the optimum)
    zero = X.abs().amax(0) == 0
    assert bool((S[:, zero] == 0).all())
    obj = ((X - A @ S).double() / scale).pow(2).sum(0)
    obj_ref = ((X - A @ ref).double() / scale).pow(2).sum(0)
    assert float((obj - obj_ref).abs().max()) <= OBJ_TOL[dtype]
    # repeated columns get one answer, wherever they sit among the blocks
    rep = (X == X[:, [int((X[0] == X[0].mode().values).nonzero()[0])]]).all(0)
    assert int(rep.sum()) >= 100 and bool((S[:, rep] == S[:, rep][:, :1]).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e3, 1e6])
def test_nearly_collinear_dictionaries(cond, dtype, gen):
    """H = G^-1 with large entries makes the Gauss-Seidel sweeps slow and the guess poor: the exact solve must
    still reach the KKT point from it."""
    N, k, M = 200, 48, 700
    A = matrix_with_condition(N, k, cond, gen).abs().to(dtype)
    X = torch.rand(N, M, generator=gen, dtype=torch.float64).to(dtype)
    S = nnls(X, A)
    assert kkt_residual(X, A, S) <= (1e-10 if dtype == torch.float64 else 1e-3)
    assert_objective_matches_scipy(X[:, :80], A, S[:, :80], OBJ_TOL[dtype] * (10 if cond > 1e4 else 1))
    if dtype == torch.float64:
        torch.testing.assert_close(S, cold(X, A), rtol=1e-8, atol=1e-10)


def test_warm_start_equals_cold_to_the_bit(gen):
    """The Neural NMF training loop warm-starts from the previous supports: same bits as a fresh call."""
    A = torch.rand(500, 64, generator=gen, dtype=torch.float64)
    X = torch.rand(500, 900, generator=gen, dtype=torch.float64)
    S = nnls(X, A)
    assert torch.equal(nnls(X, A, init=S), S)
    assert torch.equal(nnls(X, A, init=S > 0), S)
    # and a column's answer does not depend on the other columns of its block (given the products: from X, the
    # GEMM A^T X itself may round a column differently with another column count)
    AtX = A.T @ X
    S = nnls_from_products(AtX, A)
    perm = torch.randperm(900, generator=gen)
    assert torch.equal(nnls_from_products(AtX[:, perm], A), S[:, perm])
    assert torch.equal(nnls_from_products(AtX[:, 500:537], A), S[:, 500:537])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e3, 1e4, 10**4.5])
def test_float32_guess_on_a_nearly_singular_gram(cond, dtype, gen):
    """The guess runs in float32 whatever the input dtype (H = G^-1 rounded to float32, entries up to cond(G)),
    so with cond(G) = cond(A)^2 from 1e6 to 1e9, still below the point where H is dropped (1e10), its sweeps see
    a badly rounded H. The exact solve must still end where the cold start does: the same bits."""
    N, k, M = 400, 64, 1300  # three tiles of 512 columns, the last one short
    A = matrix_with_condition(N, k, cond, gen).abs().to(dtype)
    X = torch.rand(N, M, generator=gen, dtype=torch.float64).to(dtype)
    # the guess runs only where the unconstrained solutions have >= 4 negative entries per column on average
    u = torch.linalg.lstsq(A.double(), X.double()).solution
    assert float((u < 0).sum(0).double().mean()) >= 8
    S, info = nnls(X, A, return_info=True)
    assert bool((info == 0).all())
    assert torch.equal(S, cold(X, A))
    assert kkt_residual(X, A, S) <= (1e-8 if dtype == torch.float64 else 1e-2)
