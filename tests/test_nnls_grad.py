"""Backward pass: finite differences (gradcheck), the support-restricted least-squares formula, batching."""

import pytest
import torch
from conftest import make_generator

import neuralnmf
from neuralnmf import nnls


def strictly_complementary_problem(N, k, M, gen, batch=(), margin=0.5):
    """X, A whose NNLS solution S* is known, with margin on both sides of every complementarity pair.

    Choose A, S* (about half zeros, the rest >= margin) and duals Y* (>= margin off the support, 0 on it);
    then X = A S* - A G^{-1} Y* makes A^T (A S* - X) = Y*, so S* is optimal and a finite-difference step
    never changes the active set.
    """
    A = torch.rand(*batch, N, k, generator=gen, dtype=torch.float64) + 0.1 * torch.eye(N, k, dtype=torch.float64)
    support = torch.rand(*batch, k, M, generator=gen) < 0.5
    S = torch.where(support, margin + torch.rand(*batch, k, M, generator=gen, dtype=torch.float64), 0.0)
    Y = torch.where(support, 0.0, margin + torch.rand(*batch, k, M, generator=gen, dtype=torch.float64))
    G = A.mT @ A
    X = A @ S - A @ torch.linalg.solve(G, Y)
    return X, A, S


def test_constructed_problem_has_the_planted_solution(gen):
    X, A, S = strictly_complementary_problem(12, 5, 7, gen)
    torch.testing.assert_close(nnls(X, A), S, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("N,k,M", [(8, 3, 5), (15, 6, 4), (6, 6, 3)])
def test_gradcheck_X_and_A(N, k, M, gen):
    X, A, _ = strictly_complementary_problem(N, k, M, gen)
    X.requires_grad_(True)
    A.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, a: nnls(x, a), (X, A), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_A_only_batched_shared_dictionary(gen):
    X, A, _ = strictly_complementary_problem(10, 4, 3, gen)
    Xb = torch.stack([X, X * 1.5])  # a second item with the same active set
    A.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: nnls(Xb, a), (A,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_batched_dictionaries(gen):
    X, A, _ = strictly_complementary_problem(9, 4, 3, gen, batch=(2,))
    X.requires_grad_(True)
    A.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, a: nnls(x, a), (X, A), eps=1e-6, atol=1e-6, rtol=1e-5)


def _support_least_squares(X, A, support):
    """S restricted to a fixed support, by a differentiable normal-equation solve, column by column."""
    cols = []
    for j in range(X.shape[1]):
        P = support[:, j]
        s = torch.zeros(A.shape[1], dtype=X.dtype)
        if P.any():
            AP = A[:, P]
            s = s.index_put((P.nonzero().squeeze(1),), torch.linalg.solve(AP.T @ AP, AP.T @ X[:, j]))
        cols.append(s)
    return torch.stack(cols, 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_equal_the_support_least_squares_formula(dtype, gen):
    """An independent derivation: on a fixed support, S_P = (A_P^T A_P)^{-1} A_P^T X; autograd through it."""
    A = torch.rand(40, 10, generator=gen, dtype=torch.float64).to(dtype)
    X = torch.rand(40, 25, generator=gen, dtype=torch.float64).to(dtype)
    W = torch.randn(10, 25, generator=gen, dtype=torch.float64).to(dtype)  # a random linear loss
    Xa, Aa = X.clone().requires_grad_(True), A.clone().requires_grad_(True)
    (nnls(Xa, Aa) * W).sum().backward()
    support = nnls(X, A) > 0
    Xb, Ab = X.double().requires_grad_(True), A.double().requires_grad_(True)
    (_support_least_squares(Xb, Ab, support) * W.double()).sum().backward()
    tol = 1e-9 if dtype == torch.float64 else 2e-3
    torch.testing.assert_close(Xa.grad.double(), Xb.grad, rtol=tol, atol=tol * Xb.grad.abs().max().item())
    torch.testing.assert_close(Aa.grad.double(), Ab.grad, rtol=tol, atol=tol * Ab.grad.abs().max().item())


def test_dX_skipped_when_X_needs_no_grad(gen):
    X, A, _ = strictly_complementary_problem(10, 4, 6, gen)
    A.requires_grad_(True)
    nnls(X, A).sum().backward()
    assert X.grad is None and A.grad is not None


def test_zero_columns_get_zero_gradient(gen):
    """Off-support entries (S = 0) pass no gradient, like ReLU at 0; an all-zero data column has S = 0."""
    A = torch.rand(20, 5, generator=gen, dtype=torch.float64)
    X = torch.rand(20, 6, generator=gen, dtype=torch.float64)
    X[:, 2] = 0
    Xr = X.clone().requires_grad_(True)
    S = nnls(Xr, A)
    (S * torch.randn(S.shape, generator=gen, dtype=torch.float64)).sum().backward()
    assert bool((Xr.grad[:, 2] == 0).all())


def test_support_solve_matches_reference(gen):
    A = torch.rand(30, 12, generator=gen, dtype=torch.float64)
    X = torch.rand(3, 30, 50, generator=gen, dtype=torch.float64)
    S = nnls(X, A)
    grad = torch.randn(S.shape, generator=gen, dtype=torch.float64)
    V = torch.ops.neuralnmf.support_solve(grad, A, S)
    V_ref = neuralnmf._reference.support_solve_reference(grad, A, S)
    torch.testing.assert_close(V, V_ref, rtol=1e-9, atol=1e-11)
    assert bool((V[S == 0] == 0).all())


def test_support_solve_on_singular_support_is_minimum_norm(gen):
    """Duplicate columns both on the support (possible for a user-given S): the minimum-norm solution."""
    A = torch.rand(10, 3, generator=gen, dtype=torch.float64)
    A[:, 1] = A[:, 0]
    S = torch.ones(3, 1, dtype=torch.float64)
    grad = torch.tensor([[1.0], [1.0], [0.5]], dtype=torch.float64)
    V = torch.ops.neuralnmf.support_solve(grad, A, S)
    expect = torch.linalg.pinv(A.T @ A, hermitian=True) @ grad
    torch.testing.assert_close(V, expect, rtol=1e-8, atol=1e-10)


def test_gradient_through_degenerate_dictionary_is_finite(gen):
    A = torch.rand(15, 6, generator=gen, dtype=torch.float64)
    A[:, 4] = A[:, 1]
    A[:, 5] = 0
    A.requires_grad_(True)
    X = torch.rand(15, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    nnls(X, A).pow(2).sum().backward()
    assert bool(torch.isfinite(A.grad).all()) and bool(torch.isfinite(X.grad).all())


def test_double_backward_is_refused(gen):
    X, A, _ = strictly_complementary_problem(8, 3, 4, gen)
    A.requires_grad_(True)
    (g,) = torch.autograd.grad(nnls(X, A).sum(), A, create_graph=True)
    with pytest.raises(Exception, match="double backward"):
        g.sum().backward()


def test_float32_backward_keeps_dtype():
    g = make_generator(3)
    A = torch.rand(20, 4, generator=g).requires_grad_(True)
    X = torch.rand(20, 7, generator=g).requires_grad_(True)
    nnls(X, A).sum().backward()
    assert A.grad.dtype == torch.float32 and X.grad.dtype == torch.float32
