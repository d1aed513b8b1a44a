"""Forward solve: optimality (KKT, objective vs scipy), degenerate inputs, scales, warm start, batching."""

import warnings

import pytest
import torch
from conftest import (
    DTYPES,
    assert_objective_matches_scipy,
    kkt_residual,
    make_generator,
    matrix_with_condition,
    scipy_nnls,
)

import neuralnmf
from neuralnmf import NNLSConvergenceWarning, nnls
from neuralnmf.ops import nnls_from_products

KKT_TOL = {torch.float64: 1e-12, torch.float32: 1e-4}
OBJ_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}

SHAPES = [(1, 1, 1), (5, 1, 7), (7, 3, 1), (20, 5, 40), (50, 8, 60), (100, 16, 50), (200, 32, 40), (300, 64, 20),
          (4, 9, 30), (10, 40, 12)]  # the last two have k > N


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,k,M", SHAPES)
@pytest.mark.parametrize("data", ["uniform", "gaussian"])
def test_matches_scipy_and_kkt(N, k, M, dtype, data, gen):
    if data == "uniform":  # the topic-model case: nonnegative A and X
        A = torch.rand(N, k, generator=gen, dtype=torch.float64).to(dtype)
        X = torch.rand(N, M, generator=gen, dtype=torch.float64).to(dtype)
    else:  # general sign, negative X included
        A = torch.randn(N, k, generator=gen, dtype=torch.float64).to(dtype)
        X = torch.randn(N, M, generator=gen, dtype=torch.float64).to(dtype)
    S, info = nnls(X, A, return_info=True)
    assert S.shape == (k, M) and S.dtype == dtype
    assert bool((info >= 0).all())
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]
    assert_objective_matches_scipy(X, A, S, OBJ_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1e1, 1e2, 1e3])
def test_precision_with_condition_number(dtype, cond, gen):
    """KKT to round-off in float64; about 1e-6 (claimed: <= 1e-4) in float32 for cond(A) <= 1e3."""
    A = matrix_with_condition(400, 32, cond, gen, dtype)
    X = torch.randn(400, 300, generator=gen, dtype=torch.float64).to(dtype)
    S = nnls(X, A)
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]
    if dtype == torch.float32:  # the float32 answer is the float64 answer of the same data, to ~cond * 1e-8
        S64 = nnls(X.double(), A.double())
        assert (S.double() - S64).norm() / S64.norm() <= cond * 1e-7


def _degenerate_dictionary(kind, gen):
    A = torch.rand(30, 10, generator=gen, dtype=torch.float64)
    if kind == "zero_columns":
        A[:, [1, 4, 9]] = 0
    elif kind == "duplicate_columns":
        A[:, 3] = A[:, 0]
        A[:, 7] = A[:, 0]
        A[:, 8] = 2 * A[:, 5]  # parallel, not equal
    elif kind == "k_greater_than_n":
        A = torch.rand(6, 10, generator=gen, dtype=torch.float64)
    elif kind == "all_zero":
        A = torch.zeros(30, 10, dtype=torch.float64)
    elif kind == "rank_one":
        A = torch.rand(30, 1, generator=gen, dtype=torch.float64) @ torch.rand(1, 10, generator=gen, dtype=torch.float64)
    return A


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["zero_columns", "duplicate_columns", "k_greater_than_n", "all_zero", "rank_one"])
def test_degenerate_dictionaries(kind, dtype, gen):
    A = _degenerate_dictionary(kind, gen)
    X = torch.cat([torch.randn(A.shape[0], 20, generator=gen, dtype=torch.float64),
                   torch.rand(A.shape[0], 20, generator=gen, dtype=torch.float64)], 1)
    A, X = A.to(dtype), X.to(dtype)
    S, info = nnls(X, A, return_info=True)
    assert bool(torch.isfinite(S).all())
    assert bool((info >= 0).all()), "degenerate input must still converge (pivoting or its fallback)"
    assert kkt_residual(X, A, S) <= 10 * KKT_TOL[dtype]
    assert_objective_matches_scipy(X, A, S, OBJ_TOL[dtype])
    if kind == "zero_columns":
        assert bool((S[[1, 4, 9]] == 0).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_data_columns(dtype, gen):
    A = torch.rand(20, 6, generator=gen, dtype=dtype)
    X = torch.rand(20, 10, generator=gen, dtype=dtype)
    X[:, [0, 3, 9]] = 0
    S = nnls(X, A)
    assert bool((S[:, [0, 3, 9]] == 0).all())
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]


@pytest.mark.parametrize("dtype,scales", [(torch.float64, [1e-150, 1e-100, 1e100, 1e150]),
                                          (torch.float32, [1e-30, 1e-15, 1e15, 1e30])])
def test_extreme_scales_are_equivariant(dtype, scales, gen):
    """S(cX, A) = c S(X, A) and S(X, cA) = S(X, A) / c, far outside the range where a Gram matrix fits."""
    A = torch.rand(40, 8, generator=gen, dtype=torch.float64)
    X = torch.randn(40, 30, generator=gen, dtype=torch.float64)
    base = nnls(X, A)
    for c in scales:
        Sx = nnls((X * c).to(dtype), A.to(dtype))
        Sa = nnls(X.to(dtype), (A * c).to(dtype))
        assert bool(torch.isfinite(Sx).all()) and bool(torch.isfinite(Sa).all())
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(Sx.double() / c, base, rtol=tol, atol=tol * base.abs().max().item())
        torch.testing.assert_close(Sa.double() * c, base, rtol=tol, atol=tol * base.abs().max().item())


def test_huge_data_does_not_overflow(gen):
    A = torch.rand(50, 5, generator=gen, dtype=torch.float64)
    X = torch.rand(50, 7, generator=gen, dtype=torch.float64) * 1e307  # A^T X alone would overflow
    S = nnls(X, A)
    assert bool(torch.isfinite(S).all())
    torch.testing.assert_close(S / 1e307, nnls(X / 1e307, A), rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_warm_start_equals_cold_start(dtype, gen):
    A = torch.rand(100, 24, generator=gen, dtype=dtype)
    X = torch.rand(100, 200, generator=gen, dtype=dtype)
    cold = nnls(X, A)
    X2 = X + 0.01 * torch.rand(X.shape, generator=gen, dtype=dtype)
    cold2 = nnls(X2, A)
    for init in (cold, cold > 0, torch.zeros_like(cold), torch.ones_like(cold), torch.rand(cold.shape, generator=gen) > 0.5):
        warm = nnls(X2, A, init=init.to(dtype) if init.dtype != torch.bool else init)
        assert torch.equal(warm > 0, cold2 > 0)
        torch.testing.assert_close(warm, cold2, rtol=1e-10 if dtype == torch.float64 else 1e-5, atol=1e-12)


def test_warm_start_on_degenerate_dictionary_is_cold_start(gen):
    A = _degenerate_dictionary("duplicate_columns", gen)
    X = torch.rand(30, 25, generator=gen, dtype=torch.float64)
    cold = nnls(X, A)
    assert torch.equal(nnls(X, A, init=torch.ones_like(cold)), cold)


def test_nonconvergence_is_reported(gen):
    A = torch.randn(60, 30, generator=gen, dtype=torch.float64)
    X = torch.randn(60, 40, generator=gen, dtype=torch.float64)
    with pytest.warns(NNLSConvergenceWarning, match="iteration bound"):
        S, info = nnls(X, A, max_iter=1, return_info=True)
    assert bool((info == -1).any())
    assert bool((S >= 0).all()) and bool(torch.isfinite(S).all())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nnls(X, A)  # the default bound is enough


@pytest.mark.parametrize("N,k", [(30, 6), (5000, 16)])  # Gram by loops, and by blocks of rows
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inputs_are_not_modified(gen, N, k, dtype):
    A = (10 * torch.rand(N, k, generator=gen, dtype=torch.float64)).to(dtype)  # max |A| > 1: A is rescaled inside
    X = torch.randn(N, 9, generator=gen, dtype=torch.float64).to(dtype)
    init = torch.rand(k, 9, generator=gen, dtype=torch.float64).to(dtype)
    G = torch.randn(k, 9, generator=gen, dtype=torch.float64).to(dtype)
    copies = [t.clone() for t in (A, X, init, G)]
    S = nnls(X, A, init=init)
    AtX = A.T @ X
    AtX_copy = AtX.clone()
    torch.testing.assert_close(nnls_from_products(AtX, A, init=init), S, rtol=1e-4, atol=1e-5)
    torch.ops.neuralnmf.support_solve(G, A, S)
    for t, c in zip((A, X, init, G, AtX), copies + [AtX_copy]):
        assert torch.equal(t, c)


def test_non_contiguous_inputs(gen):
    A = torch.rand(8, 40, generator=gen, dtype=torch.float64).T  # (40, 8), transposed storage
    X = torch.rand(50, 40, generator=gen, dtype=torch.float64).T[:, ::2]  # (40, 25), strided
    torch.testing.assert_close(nnls(X, A), nnls(X.contiguous(), A.contiguous()), rtol=1e-12, atol=1e-14)


def test_empty_shapes(gen):
    A = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    assert nnls(torch.rand(5, 0, dtype=torch.float64), A).shape == (3, 0)
    assert nnls(torch.rand(0, 5, 4, dtype=torch.float64), A).shape == (0, 3, 4)
    assert nnls(torch.rand(5, 4, dtype=torch.float64), torch.rand(5, 0, dtype=torch.float64)).shape == (0, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_equals_per_item(dtype, gen):
    A = torch.rand(3, 30, 6, generator=gen, dtype=dtype)
    X = torch.rand(2, 3, 30, 11, generator=gen, dtype=dtype)
    S = nnls(X, A)  # A broadcast over the leading 2
    assert S.shape == (2, 3, 6, 11)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(S[i, j], nnls(X[i, j], A[j]), rtol=0, atol=0)
    A2 = A[0]  # one dictionary shared by every item
    S2 = nnls(X, A2)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(S2[i, j], nnls(X[i, j], A2), rtol=0, atol=0)
    X1 = X[0, 0]  # one X against a batch of dictionaries
    S3 = nnls(X1, A)
    assert S3.shape == (3, 6, 11)
    for j in range(3):
        torch.testing.assert_close(S3[j], nnls(X1, A[j]), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_equals_compiled(dtype, gen):
    A = torch.rand(80, 12, generator=gen, dtype=dtype)
    X = torch.randn(2, 80, 150, generator=gen, dtype=dtype)
    S, info = torch.ops.neuralnmf.nnls(X, A)
    S_ref, info_ref = neuralnmf._reference.nnls_reference(X, A)
    assert torch.equal(info, info_ref)
    # float32: the kernel accumulates A^T X in float32, the reference in float64; both are float32-accurate
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(S, S_ref, rtol=tol, atol=tol * S_ref.abs().max().item())


@pytest.mark.parametrize("kind", ["zero_columns", "duplicate_columns", "k_greater_than_n"])
def test_reference_handles_degenerate_dictionaries(kind, gen):
    A = _degenerate_dictionary(kind, gen)
    X = torch.rand(A.shape[0], 30, generator=gen, dtype=torch.float64)
    S, info = neuralnmf._reference.nnls_reference(X, A)
    assert bool((info == 0).all())
    assert kkt_residual(X, A, S) <= 1e-10
    assert_objective_matches_scipy(X, A, S, 1e-10)


def test_scipy_reference_itself_agrees():
    """Guard the oracle: scipy's answer satisfies KKT on a generic problem."""
    g = make_generator(7)
    A = torch.rand(40, 6, generator=g, dtype=torch.float64)
    X = torch.randn(40, 10, generator=g, dtype=torch.float64)
    assert kkt_residual(X, A, torch.from_numpy(scipy_nnls(X, A))) <= 1e-10
