"""Sparse X and the products entry point: same answers and gradients as dense X, X never densified."""

import pytest
import torch
from conftest import kkt_residual

import neuralnmf
from neuralnmf import nnls
from neuralnmf.ops import nnls_from_products


def _sparse_problem(gen, N=60, M=80, k=7, density=0.1, dtype=torch.float64):
    A = torch.rand(N, k, generator=gen, dtype=dtype)
    X = torch.rand(N, M, generator=gen, dtype=dtype) * (torch.rand(N, M, generator=gen) < density)
    return X, A


@pytest.mark.parametrize("layout", ["coo", "csr", "csc"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_equals_dense(layout, dtype, gen):
    X, A = _sparse_problem(gen, dtype=dtype)
    Xs = {"coo": X.to_sparse, "csr": X.to_sparse_csr, "csc": X.to_sparse_csc}[layout]()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    Ad, As = A.clone().requires_grad_(True), A.clone().requires_grad_(True)
    Sd, Ss = nnls(X, Ad), nnls(Xs, As)
    torch.testing.assert_close(Ss, Sd, rtol=tol, atol=tol)
    W = torch.randn(Sd.shape, generator=gen, dtype=dtype)
    (Sd * W).sum().backward()
    (Ss * W).sum().backward()
    torch.testing.assert_close(As.grad, Ad.grad, rtol=10 * tol, atol=10 * tol * Ad.grad.abs().max().item())
    assert kkt_residual(X, A, Ss.detach()) < (1e-12 if dtype == torch.float64 else 1e-4)


def test_sparse_gradcheck_A(gen):
    from test_nnls_grad import strictly_complementary_problem

    X, A, _ = strictly_complementary_problem(10, 4, 6, gen)
    X = X.clamp_min(0)  # sparse data is nonnegative here; the active set is still the planted one or nearby
    Xs = (X * (X > 0.3)).to_sparse()
    A.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: nnls(Xs, a), (A,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_products_entry_point_gradcheck(gen):
    from test_nnls_grad import strictly_complementary_problem

    X, A, _ = strictly_complementary_problem(10, 4, 6, gen)
    AtX = (A.T @ X).requires_grad_(True)
    A.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda b, a: nnls_from_products(b, a), (AtX, A), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_products_reference_equals_compiled(gen):
    X, A = _sparse_problem(gen, density=1.0)
    AtX = torch.stack([A.T @ X, A.T @ X * 2])
    S, info = torch.ops.neuralnmf.nnls_rhs(AtX, A)
    S_ref, info_ref = neuralnmf._reference.nnls_rhs_reference(AtX, A)
    torch.testing.assert_close(S, S_ref, rtol=1e-10, atol=1e-12)
    assert torch.equal(info, info_ref)


def test_sparse_bad_input(gen):
    X, A = _sparse_problem(gen)
    Xs = X.to_sparse()
    with pytest.raises(ValueError, match="gradients with respect to a sparse X"):
        nnls(Xs.clone().requires_grad_(True), A)
    bad = X.clone()
    bad[bad > 0] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(bad.to_sparse(), A)
    with pytest.raises(ValueError, match="rows"):
        nnls(Xs, A[:10])
    with pytest.raises(TypeError, match="dtype"):
        nnls(Xs, A.float())
    with pytest.raises(ValueError, match="AtX contains NaN"):
        torch.ops.neuralnmf.nnls_rhs(torch.full((7, 3), float("nan"), dtype=torch.float64), A)
    with pytest.raises(ValueError, match="rows but A has"):
        torch.ops.neuralnmf.nnls_rhs(torch.ones(5, 3, dtype=torch.float64), A)
