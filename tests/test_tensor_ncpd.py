"""NCPD: tensorly-0.4.3 multiplicative updates to all printed digits, exact alternating NNLS, CP helpers against
tensorly, masks, N-way tensors, CPTensor interop and bad input. Small problems, one thread."""

import numpy as np
import pytest
import torch

from neuralnmf.datasets import make_synthetic_tensor
from neuralnmf.tensor import (CPTensor, as_factors, cp_to_tensor, khatri_rao, mttkrp, ncpd, ncpd_als, ncpd_mu, svd_init,
                              unfold)
from neuralnmf.tensor.cp import fold


pytestmark = pytest.mark.usefixtures("one_thread")  # small problems: see conftest.one_thread


def low_rank(shape, rank, seed=0, noise=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    F = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    X = cp_to_tensor(F) + noise * torch.rand(shape, generator=g, dtype=torch.float64)
    return X.to(dtype), F


def rel(X, cp):
    return (torch.linalg.vector_norm(X - cp_to_tensor(cp[1], cp[0])) / torch.linalg.vector_norm(X)).item()


def test_mu_reproduces_tensorly_043_on_the_papers_tensor():
    # protocols §3.2: the rank-7 error printed in every notebook, against the clean and the noisy tensor
    data = make_synthetic_tensor()
    cp = ncpd_mu(data.X, 7)
    assert isinstance(cp, CPTensor) and cp.rank == 7 and tuple(cp.shape) == (40, 40, 40)
    assert rel(data.X_clean, cp) == pytest.approx(0.4543299379741, abs=1e-11)
    assert rel(data.X, cp) == pytest.approx(0.2774291903373, abs=1e-11)


def test_synthetic_tensor_matches_the_papers_generator():
    data = make_synthetic_tensor()
    noise = 0.4 * np.abs(np.random.RandomState(14).randn(40, 40, 40))
    assert torch.equal(data.X, data.X_clean + torch.from_numpy(noise))
    assert data.ranks == (7, 4, 2) and data.hierarchy == [[0, 0, 1, 1, 2, 2, 3], [0, 0, 1, 1]]
    assert sorted(torch.unique(data.X_clean).tolist()) == [0.0, 0.75, 2.0, 3.5]
    assert float(data.X_clean[0, 0, 0]) == 3.5 and float(data.X_clean[30, 36, 30]) == 2.0
    for level in range(3):  # every topic box lies where the clean tensor is nonzero
        T = cp_to_tensor(data.factors(level))
        assert bool((data.X_clean[T > 0] > 0).all())
    four = make_synthetic_tensor(noise=0.0, ndim=4)  # the 4th mode repeats the 3rd mode's ranges
    assert four.X.shape == (40,) * 4 and torch.equal(torch.diagonal(four.X, dim1=2, dim2=3), data.X_clean)
    assert [len(f) for f in four.boxes] == [7, 4, 2] and len(four.factors(0)) == 4


def test_cp_helpers_agree_with_tensorly():
    tl = pytest.importorskip("tensorly")
    g = torch.Generator().manual_seed(0)
    F = [torch.rand(s, 3, generator=g, dtype=torch.float64) for s in (4, 5, 6, 2)]
    X = torch.rand(4, 5, 6, 2, generator=g, dtype=torch.float64)
    with tl.backend_context("pytorch"):
        assert torch.allclose(cp_to_tensor(F), tl.cp_to_tensor((torch.ones(3, dtype=torch.float64), F)))
        for n in range(4):
            assert torch.equal(unfold(X, n), tl.unfold(X, n))
            assert torch.equal(fold(unfold(X, n), n, X.shape), X)
            assert torch.allclose(khatri_rao(F, skip=n), tl.tenalg.khatri_rao(F, skip_matrix=n))
            assert torch.allclose(mttkrp(X, F, n), tl.unfold(X, n) @ tl.tenalg.khatri_rao(F, skip_matrix=n))
    assert torch.allclose(unfold(cp_to_tensor(F), 2), F[2] @ khatri_rao(F, skip=2).mT)


def test_cptensor_in_and_out():
    tl = pytest.importorskip("tensorly")
    X, F = low_rank((5, 6, 7), 3)
    w = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    cp_in = CPTensor((w, F))
    factors = as_factors(cp_in)
    assert torch.allclose(cp_to_tensor(factors), cp_to_tensor(F, w))  # weights absorbed in the first factor
    out = ncpd_mu(X, 3, init=cp_in, max_iter=0)
    assert isinstance(out, CPTensor) and torch.equal(out.weights, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(cp_to_tensor(out.factors), cp_to_tensor(F, w))
    assert torch.equal(F[0], as_factors(F)[0]) and as_factors(F)[0] is not F[0]  # copies, never the input
    with tl.backend_context("pytorch"):
        assert torch.allclose(tl.cp_to_tensor(ncpd_als(X, 3)), cp_to_tensor(ncpd_als(X, 3).factors))


@pytest.mark.parametrize("method", ["mu", "als"])
@pytest.mark.parametrize("shape", [(6, 7, 8), (5, 4, 6, 3), (9, 8)])
def test_nway_shapes_and_fit(method, shape):
    X, _ = low_rank(shape, 3, noise=0.01)
    cp, errors = ncpd(X, 3, method=method, init="random", seed=1, max_iter=200, tol=0, return_errors=True)
    assert [tuple(f.shape) for f in cp.factors] == [(s, 3) for s in shape]
    assert all(bool((f >= 0).all()) for f in cp.factors)
    assert errors.shape == (200,) and errors[-1] < errors[0]
    assert rel(X, cp) < (0.02 if method == "als" else 0.1)


def test_als_never_increases_the_error_and_beats_100_multiplicative_updates():
    data = make_synthetic_tensor()
    _, e_als = ncpd_als(data.X, 7, return_errors=True, tol=0)
    assert bool((e_als[1:] <= e_als[:-1] + 1e-12).all())
    assert e_als[-1] < rel(data.X, ncpd_mu(data.X, 7))  # 0.2750 vs 0.2774 (noisy tensor)


@pytest.mark.parametrize("batched", [False, True])
def test_als_block_update_is_the_exact_nnls_minimizer(batched):
    from neuralnmf.tensor.ncpd import _nnls_rows

    g = torch.Generator().manual_seed(3)
    K = torch.rand(30, 4, generator=g, dtype=torch.float64)
    Xn = torch.randn(6, 30, generator=g, dtype=torch.float64)  # rows of X_(n); negative entries force zeros
    if batched:  # per-row Gram matrices, as with a mask
        w = (torch.rand(6, 30, generator=g) > 0.2).double()
        G = torch.einsum("pr,ip,ps->irs", K, w, K)
        B = torch.einsum("ip,pr->ir", w * Xn, K)
    else:
        G, B = K.mT @ K, Xn @ K
    F = _nnls_rows(G, B)
    grad = (G @ F.unsqueeze(-1)).squeeze(-1) - B if batched else F @ G - B  # gradient of f^T G f / 2 - b^T f
    assert bool((F >= 0).all()) and bool((F == 0).any())
    assert float(grad.min()) > -1e-9 and float((grad * F).abs().max()) < 1e-9  # KKT


@pytest.mark.parametrize("method", ["mu", "als"])
def test_masked_entries_are_ignored(method):
    X, _ = low_rank((6, 7, 5), 2, noise=0.05, seed=2)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(X.shape, generator=g) > 0.3
    garbage = torch.where(mask, X, torch.full_like(X, float("nan")))
    other = torch.where(mask, X, torch.full_like(X, 1e3))
    a = ncpd(garbage, 2, method=method, data_mask=mask, max_iter=300)
    b = ncpd(other, 2, method=method, data_mask=mask, max_iter=300)
    for fa, fb in zip(a.factors, b.factors):
        assert torch.equal(fa, fb)
    # the hidden entries are predicted from the observed ones
    full = ncpd(X, 2, method=method, max_iter=300)
    hidden = ~mask
    err = (cp_to_tensor(a.factors) - X)[hidden].norm() / X[hidden].norm()
    assert err < 0.1
    ones = torch.ones_like(X, dtype=torch.bool)
    assert torch.allclose(cp_to_tensor(ncpd(X, 2, method=method, data_mask=ones, max_iter=300).factors),
                          cp_to_tensor(full.factors))


def test_svd_init_is_deterministic_absolute_singular_vectors():
    X, _ = low_rank((5, 6, 7), 2)
    F = svd_init(X, 2)
    for n, f in enumerate(F):
        U = torch.linalg.svd(unfold(X, n), full_matrices=False)[0][:, :2]
        assert torch.allclose(f, U.abs(), atol=1e-10)
    wide = svd_init(X, 6, generator=torch.Generator().manual_seed(0))  # rank above I_0 = 5: random columns
    assert wide[0].shape == (5, 6) and bool((wide[0] >= 0).all())


def test_float32_and_dtype_kept():
    X, _ = low_rank((5, 6, 7), 2, dtype=torch.float32)
    for method, bound in (("mu", 0.05), ("als", 0.01)):  # exact rank 2: 100 MU steps reach 0.024, ALS 0.002
        cp = ncpd(X, 2, method=method)
        assert all(f.dtype == torch.float32 for f in cp.factors)
        assert rel(X, cp) < bound


def test_bad_input_raises_clear_errors():
    X, _ = low_rank((4, 5, 6), 2)
    with pytest.raises(ValueError, match="negative"):
        ncpd_mu(X - 1, 2)
    with pytest.raises(ValueError, match="rank must be positive"):
        ncpd_mu(X, 0)
    with pytest.raises(TypeError, match="rank must be an integer"):
        ncpd_als(X, 2.5)
    with pytest.raises(ValueError, match="mask must have the shape"):
        ncpd_mu(X, 2, data_mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        ncpd_mu(X, 2, data_mask=torch.full(X.shape, 0.5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        ncpd_mu(X.clone().fill_(float("nan")), 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        ncpd_mu(X.long(), 2)
    with pytest.raises(ValueError, match="at least 2 modes"):
        ncpd_mu(X[0, 0], 2)
    with pytest.raises(ValueError, match=r"init\[1\] must have shape \(5, 2\)"):
        ncpd_mu(X, 2, init=[torch.rand(4, 2, dtype=torch.float64), torch.rand(6, 2, dtype=torch.float64),
                            torch.rand(6, 2, dtype=torch.float64)])
    with pytest.raises(ValueError, match="init must be 'svd', 'random'"):
        ncpd_mu(X, 2, init="nndsvd")
    with pytest.raises(ValueError, match="method must be one of"):
        ncpd(X, 2, method="hals")
    with pytest.raises(ValueError, match="seed or generator"):
        ncpd_mu(X, 2, seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ncpd_mu(X.numpy(), 2)
    with pytest.raises(ValueError, match="negative entries"):
        as_factors([-torch.ones(4, 2, dtype=torch.float64)] * 3)
    before = X.clone()
    ncpd_als(X, 2, max_iter=3)
    assert torch.equal(X, before)  # inputs never modified


def test_works_without_tensorly():
    import subprocess
    import sys

    code = ("import sys; sys.modules['tensorly'] = None\n"  # makes `import tensorly` fail
            "import torch\n"
            "from neuralnmf.datasets import make_hierarchical_tensor\n"
            "from neuralnmf.tensor import CPTensor, ncpd, cp_to_tensor\n"
            "d = make_hierarchical_tensor((2, 2), (1, 1))\n"
            "cp = ncpd(d.X, 2, method='als')\n"
            "w, f = cp\n"
            "assert isinstance(cp, CPTensor) and cp.rank == 2 and cp.shape == (4, 4, 4)\n"
            "assert torch.allclose(cp_to_tensor(cp.factors, cp.weights), cp_to_tensor(f, w))\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
