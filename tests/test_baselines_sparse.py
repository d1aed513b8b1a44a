"""nmf_mu / ssnmf_mu on a sparse x: the same factors as the dense path (which forms the residual explicitly), and
x is never densified (no dense tensor of x's size is ever made; an x whose dense form cannot exist still fits)."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from neuralnmf.baselines import nmf_mu, ssnmf_mu

pytestmark = pytest.mark.usefixtures("one_thread")


def sparse_data(M=60, N=80, density=0.3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(M, N, dtype=torch.float64, generator=g)
    x[torch.rand(M, N, generator=g) > density] = 0
    return x.to(dtype)


def labels(M=60, c=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (M,), generator=g), torch.rand(M, generator=g) < 0.5


def close(a, b, rtol=1e-9):
    scale = b.abs().max()
    assert float((a - b).abs().max()) <= rtol * float(scale), float((a - b).abs().max() / scale)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_nmf_equals_dense(layout):
    x = sparse_data()
    xs = x.to_sparse() if layout == "coo" else x.to_sparse_csr()
    dense, sparse = nmf_mu(x, 4, max_iter=300, seed=1), nmf_mu(xs, 4, max_iter=300, seed=1)
    assert sparse.n_iter == dense.n_iter == 300
    close(sparse.A, dense.A)
    close(sparse.S, dense.S)
    close(sparse.history, dense.history)  # the expansion of ||X - A S||^2 vs the explicit residual
    assert sparse.A.layout == torch.strided and sparse.A.dtype == torch.float64


def test_sparse_nmf_early_stop_and_given_init_match_dense():
    x = sparse_data(seed=3)
    g = torch.Generator().manual_seed(5)
    init = (torch.rand(80, 5, dtype=torch.float64, generator=g), torch.rand(5, 60, dtype=torch.float64, generator=g))
    dense = nmf_mu(x, 5, max_iter=2000, tol=1e-5, check_every=1, init=init)
    sparse = nmf_mu(x.to_sparse(), 5, max_iter=2000, tol=1e-5, check_every=1, init=init)
    assert 1 < sparse.n_iter == dense.n_iter < 2000
    close(sparse.A, dense.A)
    close(sparse.S, dense.S)


def test_sparse_ssnmf_semi_supervised_equals_dense():
    x = sparse_data()
    y, lm = labels()
    kw = dict(label_mask=lm, lam=0.7, max_iter=300, seed=2, tol=1e-7, check_every=1)
    dense, sparse = ssnmf_mu(x, 4, y, **kw), ssnmf_mu(x.to_sparse(), 4, y, **kw)
    assert sparse.n_iter == dense.n_iter
    for a, b in [(sparse.A, dense.A), (sparse.S, dense.S), (sparse.B, dense.B), (sparse.history, dense.history)]:
        close(a, b)
    assert torch.equal(sparse.predict(), dense.predict())


def test_sparse_float32_and_uncoalesced_duplicates():
    x = sparse_data(dtype=torch.float32)
    idx = x.nonzero().T
    vals = x[idx[0], idx[1]]
    # every stored entry split into two halves: an uncoalesced COO tensor equal to x
    dup = torch.sparse_coo_tensor(torch.cat([idx, idx], 1), torch.cat([vals / 2, vals / 2]), x.shape)
    dense, sparse = nmf_mu(x, 3, max_iter=100, seed=0), nmf_mu(dup, 3, max_iter=100, seed=0)
    assert sparse.A.dtype == torch.float32
    close(sparse.A, dense.A, rtol=1e-4)
    close(sparse.S, dense.S, rtol=1e-4)


class LargestDense(TorchDispatchMode):
    """Records the largest number of elements of any dense tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
        return out


def test_no_dense_tensor_of_the_size_of_x_is_made():
    M, N = 300, 20000
    g = torch.Generator().manual_seed(0)
    nnz = 3000
    idx = torch.stack([torch.randint(0, M, (nnz,), generator=g), torch.randint(0, N, (nnz,), generator=g)])
    xs = torch.sparse_coo_tensor(idx, torch.rand(nnz, dtype=torch.float64, generator=g), (M, N)).coalesce()
    y = torch.randint(0, 4, (M,), generator=g)
    with LargestDense() as probe:  # the probe itself sees a densification
        xs.to_dense()
    assert probe.largest == M * N
    for call in [lambda: nmf_mu(xs, 5, max_iter=20, seed=0, tol=1e-6),
                 lambda: ssnmf_mu(xs, 5, y, max_iter=20, seed=0, tol=1e-6)]:
        with LargestDense() as probe:
            call()
        assert probe.largest <= 5 * N  # the dictionary (N, k) is the largest dense tensor


def test_an_x_whose_dense_form_cannot_exist_still_fits():
    M = N = 1_000_000  # dense float64: 8 TB
    g = torch.Generator().manual_seed(1)
    nnz = 5000
    idx = torch.stack([torch.randint(0, M, (nnz,), generator=g), torch.randint(0, N, (nnz,), generator=g)])
    xs = torch.sparse_coo_tensor(idx, torch.rand(nnz, dtype=torch.float64, generator=g), (M, N))
    with pytest.raises(RuntimeError):  # densifying really fails here
        xs.to_dense()
    res = nmf_mu(xs, 2, max_iter=3, seed=0)
    assert res.A.shape == (N, 2) and res.S.shape == (2, M) and bool(torch.isfinite(res.history).all())


def test_sparse_bad_input():
    x = sparse_data()
    with pytest.raises(ValueError, match="data_mask is not supported with a sparse x"):
        nmf_mu(x.to_sparse(), 3, max_iter=1, data_mask=torch.ones(60, 80, dtype=torch.bool))
    neg = x.clone()
    neg[x > 0] = -neg[x > 0]
    with pytest.raises(ValueError, match="x has negative entries"):
        nmf_mu(neg.to_sparse(), 3, max_iter=1)
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        ssnmf_mu(nan.to_sparse(), 3, labels()[0], max_iter=1)
    with pytest.raises(TypeError, match="float32 or float64"):
        nmf_mu(torch.ones(4, 5, dtype=torch.long).to_sparse(), 2, max_iter=1)
    with pytest.raises(TypeError, match="dense \\(strided\\) or sparse COO/CSR"):
        nmf_mu(x.to_sparse_csc(), 3, max_iter=1)


def test_sparse_input_is_not_modified():
    xs = sparse_data().to_sparse()
    before = (xs.indices().clone(), xs.values().clone())
    nmf_mu(xs, 3, max_iter=10, seed=0)
    assert torch.equal(xs.indices(), before[0]) and torch.equal(xs.values(), before[1])
